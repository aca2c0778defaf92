"""The Argo expressions of the WorkflowTemplate: how it reads the plan, fans out a wave's jobs,
recurses on the wave index and splits a ``namespace/job`` item back into its parts.

Every expression the template uses is a module constant here (or, for the parallelism levels,
built by :func:`level_condition`), so a reviewer reads them in one place; what they do is
proven on the real Argo controller (``tests/e2e/argo``), their text by the unit tests.
"""

from __future__ import annotations

from bridge.result import EXIT_INFRASTRUCTURE

# The plan is published as a global output so that the recursive ``waves`` template reads it
# from the workflow scope instead of copying 100+ kB into every recursion level's inputs.
PLAN = "workflow.outputs.parameters.plan"
_WAVE = f"jsonpath({PLAN}, '$.waves[' + inputs.parameters.index + ']"
_HAS_WAVES = f"len(jsonpath({PLAN}, '$.waves')) > 0"
_PARALLELISM = "asInt(workflow.parameters.parallelism)"
WAVE_NUMBER = f"{{{{={_WAVE}.wave')}}}}"
# The planner keeps per-job JSON minimal (no "display" key: 2,000 jobs must fit 256 kB), so the
# "namespace/job" label is built here.
_DISPLAY = "{#.namespace + '/' + #.name}"
ABORT_JOBS = (
    f"{{{{=toJson(map(filter({_WAVE}.jobs'), {{#.onFailure != 'continue'}}), {_DISPLAY}))}}}}"
)
CONTINUE_JOBS = (
    f"{{{{=toJson(map(filter({_WAVE}.jobs'), {{#.onFailure == 'continue'}}), {_DISPLAY}))}}}}"
)
NEXT_INDEX = "{{=asInt(inputs.parameters.index) + 1}}"
HAS_NEXT_WAVE = f"{{{{=asInt(inputs.parameters.index) + 1 < len(jsonpath({PLAN}, '$.waves'))}}}}"
# One bridge node per job: the fan-out items are "namespace/job" strings, so Argo names each
# node ``abort-on-failure(0:team-a/schema)``; the bridge template splits the string back into
# namespace and job name.
JOB_NAMESPACE = "{{=split(inputs.parameters.job, '/')[0]}}"
JOB_NAME = "{{=split(inputs.parameters.job, '/')[1]}}"
# Only the bridge's "infrastructure" exit code is retried: the job's own failures (any other
# code), refusals (2) and terminations (143) are final.
INFRA_EXIT_CODE = EXIT_INFRASTRUCTURE
RETRY_EXPRESSION = f"asInt(lastRetry.exitCode) == {INFRA_EXIT_CODE}"


def workflow_parameter(name: str) -> str:
    """``{{workflow.parameters.<name>}}``: a workflow parameter's value, substituted."""
    return f"{{{{workflow.parameters.{name}}}}}"


def level_condition(levels: tuple[int, ...], index: int) -> str:
    """When the wave templates of ``levels[index]`` run: the plan has waves and the
    ``parallelism`` parameter is at least this level and below the next one."""
    conditions = [_HAS_WAVES]
    if index > 0:
        conditions.append(f"{_PARALLELISM} >= {levels[index]}")
    if index + 1 < len(levels):
        conditions.append(f"{_PARALLELISM} < {levels[index + 1]}")
    return "{{=" + " && ".join(conditions) + "}}"
