"""A workflow that asks whether the workflow modules an onboarding runs are the sandbox's
own copies (tests/test_replay.py). From `workflows.onboarding` it follows a chain of
names, each looked up in the module the previous one was defined in (`Invitation` takes
it to invitation_loop, `indexed_alone` to invitation_data), and calls `.now()` on the
last (`datetime`). Inside the sandbox that call is refused; in a module passed through,
allowed.

(It takes its chain as a parameter: mypy 2.4 stops inferring the other tests'
`get_workflow_handle_for` once a workflow whose run takes none is in the project.)"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows import onboarding


@workflow.defn
class SandboxProbe:
    @workflow.run
    async def run(self, chain: list[str]) -> str:
        seen: dict[str, Any] = vars(onboarding)
        *through, clock = chain
        for name in through:
            defined = seen[name]
            seen = (vars(defined)["__init__"] if isinstance(defined, type) else defined).__globals__
        try:
            seen[clock].now()
        except workflow.NondeterminismError:  # the sandbox's RestrictedWorkflowAccessError
            return "refused"
        return "allowed"
