"""The Job-spec half of the contract: ``spec.suspend`` and the fields the bridge honours
(``backoffLimit``, ``activeDeadlineSeconds``, ``podFailurePolicy``), checked the way the
Kubernetes API server would check them, so ``tenantctl validate`` catches what ``kubectl apply``
would reject and what the bridge cannot run (parallel or indexed Jobs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .contract_model import (
    EXIT_CODE_OPERATORS,
    MAX_BACKOFF_LIMIT,
    MAX_EXIT_CODE_VALUES,
    MAX_POD_FAILURE_RULES,
    POD_FAILURE_ACTIONS,
    PodFailureRule,
    ProblemCollector,
)

RULE_FIELDS = ("action", "onExitCodes", "onPodConditions")
EXIT_CODE_FIELDS = ("containerName", "operator", "values")
CONDITION_FIELDS = ("type", "status")


def _unknown_fields(
    c: ProblemCollector, path: str, obj: Mapping[str, Any], known: tuple[str, ...]
) -> bool:
    """Report fields Kubernetes does not know here (usually a mis-indented line); True if any."""
    unknown = [key for key in obj if key not in known]
    for key in unknown:
        c.add(
            f"{path}.{key}",
            f"unknown field {key!r} (Kubernetes knows {', '.join(known)})",
            "check the indentation: the field probably belongs one level deeper or higher",
        )
    return bool(unknown)


def _is_int(value: Any) -> bool:
    # YAML booleans are ints in Python; a ``true`` is never a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_exit_codes(
    c: ProblemCollector, path: str, raw: Any
) -> tuple[str | None, str | None, tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        c.add(path, "onExitCodes must be a mapping", "give operator: In|NotIn and values: [..]")
        return None, None, ()
    _unknown_fields(c, path, raw, EXIT_CODE_FIELDS)
    container = raw.get("containerName")
    if container is not None and not isinstance(container, str):
        c.add(f"{path}.containerName", "containerName must be a string", "name a container")
        container = None
    operator = raw.get("operator")
    if operator not in EXIT_CODE_OPERATORS:
        c.add(
            f"{path}.operator",
            f"operator {operator!r} is not In or NotIn",
            "use operator In for the codes that trigger the action, or NotIn",
        )
        operator = None
    values = raw.get("values")
    codes: list[int] = []
    if not isinstance(values, list) or not values:
        c.add(
            f"{path}.values",
            "values must be a non-empty list of exit codes",
            "list the exit codes, e.g. values: [42]",
        )
        return container, operator, ()
    if len(values) > MAX_EXIT_CODE_VALUES:
        c.add(
            f"{path}.values",
            f"{len(values)} exit codes; Kubernetes allows at most {MAX_EXIT_CODE_VALUES}",
            "use NotIn with the complement, or fewer codes",
        )
    for index, value in enumerate(values):
        vpath = f"{path}.values[{index}]"
        if not _is_int(value):
            c.add(vpath, f"exit code {value!r} is not an integer", "use whole numbers 0-255")
            continue
        if operator == "In" and value == 0:
            c.add(
                vpath,
                "exit code 0 is not allowed with operator In (Kubernetes rule: a successful "
                "container never triggers a rule)",
                "remove 0 from the list",
            )
        if value in codes:
            c.add(vpath, f"exit code {value} is listed twice", f"list {value} once")
        elif codes and value < codes[-1]:
            c.add(vpath, "exit codes must be in ascending order (Kubernetes rule)", "sort the list")
        codes.append(value)
    return container, operator, tuple(sorted(set(codes)))


def _container_names(pod_spec: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for key in ("initContainers", "containers"):
        items = pod_spec.get(key)
        if isinstance(items, list):
            names += [
                i["name"]
                for i in items
                if isinstance(i, Mapping) and isinstance(i.get("name"), str)
            ]
    return names


def _check_pod_failure_policy(
    c: ProblemCollector, spec: Mapping[str, Any], pod_spec: Mapping[str, Any]
) -> tuple[PodFailureRule, ...]:
    if "podFailurePolicy" not in spec or spec["podFailurePolicy"] is None:
        return ()
    path = "spec.podFailurePolicy"
    policy = spec["podFailurePolicy"]
    if not isinstance(policy, Mapping) or not isinstance(policy.get("rules"), list):
        c.add(path, "podFailurePolicy must be a mapping with a rules list", "give rules: [..]")
        return ()
    restart = pod_spec.get("restartPolicy")
    if restart != "Never":
        c.add(
            "spec.template.spec.restartPolicy",
            f"restartPolicy is {restart!r}, but a podFailurePolicy requires Never "
            "(Kubernetes rule)",
            "set spec.template.spec.restartPolicy: Never",
        )
    rules_raw = policy["rules"]
    if len(rules_raw) > MAX_POD_FAILURE_RULES:
        c.add(
            f"{path}.rules",
            f"{len(rules_raw)} rules; Kubernetes allows at most {MAX_POD_FAILURE_RULES}",
            "merge rules",
        )
    rules: list[PodFailureRule] = []
    for index, rule in enumerate(rules_raw):
        checked = _check_rule(c, f"{path}.rules[{index}]", rule, pod_spec)
        if checked is not None:
            rules.append(checked)
    return tuple(rules)


def _check_rule(
    c: ProblemCollector, rpath: str, rule: Any, pod_spec: Mapping[str, Any]
) -> PodFailureRule | None:
    """One podFailurePolicy rule; None when it has no valid action (its problems are added)."""
    if not isinstance(rule, Mapping):
        c.add(rpath, "a rule must be a mapping", "give action and onExitCodes/onPodConditions")
        return None
    action = _check_action(c, rpath, rule.get("action"))
    _unknown_fields(c, rpath, rule, RULE_FIELDS)
    has_codes = rule.get("onExitCodes") is not None
    conditions_raw = rule.get("onPodConditions")
    has_conditions = conditions_raw not in (None, [])
    if has_codes == has_conditions:
        c.add(
            rpath,
            "a rule needs exactly one of onExitCodes and onPodConditions",
            "keep one of them (split the rule in two if you need both)",
        )
    container: str | None = None
    operator: str | None = None
    values: tuple[int, ...] = ()
    if has_codes:
        container, operator, values = _check_exit_codes(
            c, f"{rpath}.onExitCodes", rule["onExitCodes"]
        )
        names = _container_names(pod_spec)
        if container is not None and names and container not in names:
            c.add(
                f"{rpath}.onExitCodes.containerName",
                f"no container named {container!r} in the pod template",
                f"use one of {', '.join(names)}, or remove containerName to match any",
            )
    conditions = _check_pod_conditions(c, rpath, conditions_raw) if has_conditions else []
    if action is None:
        return None
    return PodFailureRule(
        action=action,
        container_name=container,
        operator=operator,
        values=values,
        on_pod_conditions=tuple(conditions),
    )


def _check_action(c: ProblemCollector, rpath: str, action: Any) -> str | None:
    """The rule's action, or None when Kubernetes would reject it (FailIndex is reported but
    kept: Kubernetes accepts it, the bridge cannot honour it)."""
    if action not in POD_FAILURE_ACTIONS:
        c.add(
            f"{rpath}.action",
            f"action {action!r} is not one of {', '.join(POD_FAILURE_ACTIONS)}",
            "use FailJob to stop retrying, Ignore to not count the failure, or Count",
        )
        return None
    if action == "FailIndex":
        c.add(
            f"{rpath}.action",
            "FailIndex needs an Indexed Job with backoffLimitPerIndex, which the bridge "
            "does not run",
            "use FailJob",
        )
    return str(action)


def _check_pod_conditions(
    c: ProblemCollector, rpath: str, conditions_raw: Any
) -> list[dict[str, Any]]:
    if not isinstance(conditions_raw, list):
        c.add(f"{rpath}.onPodConditions", "must be a list", "give [{type: DisruptionTarget}]")
        return []
    conditions: list[dict[str, Any]] = []
    for cindex, cond in enumerate(conditions_raw):
        if not isinstance(cond, Mapping) or not isinstance(cond.get("type"), str):
            c.add(
                f"{rpath}.onPodConditions[{cindex}]",
                "a pod condition needs a type",
                "e.g. {type: DisruptionTarget}",
            )
        elif _unknown_fields(c, f"{rpath}.onPodConditions[{cindex}]", cond, CONDITION_FIELDS):
            pass
        elif cond.get("status", "True") not in ("True", "False", "Unknown"):
            c.add(
                f"{rpath}.onPodConditions[{cindex}].status",
                f"status {cond.get('status')!r} is not True, False or Unknown",
                'use status: "True" (the default)',
            )
        else:
            conditions.append(dict(cond))
    return conditions


def check_job_spec(
    c: ProblemCollector, job: Mapping[str, Any]
) -> tuple[int, int | None, tuple[PodFailureRule, ...]]:
    spec = job.get("spec")
    if not isinstance(spec, Mapping):
        c.add(
            "spec.suspend",
            "the Job has no spec, so it is not suspended",
            "add spec.suspend: true and the pod template",
        )
        return 6, None, ()
    _check_suspend(c, spec)
    backoff_limit = _check_backoff_limit(c, spec)
    deadline = _check_deadline(c, spec)
    _check_one_pod_at_a_time(c, spec)
    template = spec.get("template")
    template_spec = template.get("spec") if isinstance(template, Mapping) else None
    pod_spec: Mapping[str, Any] = template_spec if isinstance(template_spec, Mapping) else {}
    restart = pod_spec.get("restartPolicy")
    if restart is not None and restart not in ("Never", "OnFailure"):
        c.add(
            "spec.template.spec.restartPolicy",
            f"restartPolicy {restart!r} is not allowed in a Job (Kubernetes rule)",
            "use Never: the bridge counts each failed pod as one attempt",
        )
    rules = _check_pod_failure_policy(c, spec, pod_spec)
    return backoff_limit, deadline, tuple(rules)


def _check_suspend(c: ProblemCollector, spec: Mapping[str, Any]) -> None:
    suspend = spec.get("suspend")
    if suspend is True:
        return
    if suspend is None:
        message = "spec.suspend is missing: the Job would run by itself as soon as it is applied"
    elif suspend is False:
        message = "spec.suspend is false: the Job would run by itself"
    else:
        message = f"spec.suspend is {suspend!r}, not the boolean true"
    c.add(
        "spec.suspend",
        message,
        "set spec.suspend: true; the bridge runs the pod template, Kubernetes must not",
    )


def _check_backoff_limit(c: ProblemCollector, spec: Mapping[str, Any]) -> int:
    """The Job's backoffLimit, or Kubernetes' default 6 when it is absent or invalid."""
    if spec.get("backoffLimit") is None:
        return 6
    raw = spec["backoffLimit"]
    if not _is_int(raw) or raw < 0:
        c.add(
            "spec.backoffLimit",
            f"backoffLimit {raw!r} is not a non-negative integer",
            "use a whole number of retries, e.g. 2; Kubernetes' default is 6",
        )
        return 6
    if raw > MAX_BACKOFF_LIMIT:
        c.add(
            "spec.backoffLimit",
            f"backoffLimit {raw} is more than {MAX_BACKOFF_LIMIT} retries",
            f"use at most {MAX_BACKOFF_LIMIT}; a job failing that often will not recover",
        )
        return 6
    return int(raw)


def _check_deadline(c: ProblemCollector, spec: Mapping[str, Any]) -> int | None:
    if spec.get("activeDeadlineSeconds") is None:
        return None
    raw = spec["activeDeadlineSeconds"]
    if not _is_int(raw) or raw <= 0:
        c.add(
            "spec.activeDeadlineSeconds",
            f"activeDeadlineSeconds {raw!r} is not a positive integer",
            "use a number of seconds greater than 0, or remove it",
        )
        return None
    return int(raw)


def _check_one_pod_at_a_time(c: ProblemCollector, spec: Mapping[str, Any]) -> None:
    # The bridge runs exactly one pod at a time: parallel or indexed Jobs mean something else.
    for key in ("parallelism", "completions"):
        value = spec.get(key)
        if value is not None and value != 1:
            c.add(
                f"spec.{key}",
                f"{key} is {value!r}; the bridge runs one pod per attempt",
                f"remove spec.{key} or set it to 1",
            )
    mode = spec.get("completionMode")
    if mode not in (None, "NonIndexed"):
        c.add(
            "spec.completionMode",
            f"completionMode {mode!r} is not supported by the bridge",
            "remove spec.completionMode",
        )
