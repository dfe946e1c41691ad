"""A workflow that asks whether the workflow modules an onboarding runs are the sandbox's
own copies (tests/test_replay.py): it follows the onboarding's imports down to
`workflows.invitation_data` and calls `datetime.now` as that module sees it. Inside the
sandbox that call is refused; in a module passed through it is allowed."""

from __future__ import annotations

from temporalio import workflow
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError

from workflows import onboarding


@workflow.defn
class SandboxProbe:
    @workflow.run
    async def run(self) -> str:
        invitation_loop = onboarding.Invitation.__init__.__globals__
        invitation_data = invitation_loop["indexed_alone"].__globals__
        try:
            invitation_data["datetime"].now()
        except RestrictedWorkflowAccessError:
            return "refused"
        return "allowed"
