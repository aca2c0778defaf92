"""Everything the orchestrator does with Argo Workflows: submit a Workflow (:mod:`.submit`), read
its nodes (:mod:`.nodes`) and outcome (:mod:`.outcome`), follow one to its end (:mod:`.follow`,
the one place that waits for a Workflow) and publish each finished Workflow's result once
(:mod:`.tracker`)."""
