"""Worker Versioning on the dev server, as an operator rolls a release out
(docs/operations.md, "Upgrading"): invitations left waiting by build A finish on build B
once B is current and A's workers are gone."""

from __future__ import annotations

import contextlib
import uuid

import asyncpg
import pytest
from temporalio.common import VersioningBehavior
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.ids import invitation_workflow_id, onboarding_workflow_id
from partners.settings import Settings
from tests.helpers.cli import set_current_build
from tests.helpers.stack import Stack, holder, new_enterprise, running_stack, unique_domain
from worker import WORKFLOWS, running_workers


def test_every_workflow_declares_that_it_moves_to_the_current_build() -> None:
    """Auto-upgrade (docs/design.md, "Releases"): a workflow that waits for days does not
    keep the build that started it running; its changes stay replayable by patching."""
    behaviours = {w.__name__: w.__temporal_workflow_definition.versioning_behavior for w in WORKFLOWS}  # type: ignore[attr-defined]
    assert set(behaviours.values()) == {VersioningBehavior.AUTO_UPGRADE}, behaviours


async def _set_current(stack: Stack, settings: Settings) -> None:
    address = stack.env.client.service_client.config.target_host
    await set_current_build(address, settings.worker_deployment_name, settings.build_id)


async def test_invitations_started_on_build_a_finish_on_build_b(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    deployment = f"versioning-{uuid.uuid4().hex[:8]}"
    async with running_stack(dev_env, pool, mail, with_worker=False, worker_deployment_name=deployment) as stack:
        build_a = stack.settings.model_copy(update={"worker_build_id": "A"})
        build_b = stack.settings.model_copy(update={"worker_build_id": "B"})
        async with contextlib.AsyncExitStack() as a:
            await a.enter_async_context(running_workers(stack.client, build_a, stack.stores, schedules=False))
            await _set_current(stack, build_a)
            # On A: a partner whose admin accepted, a member invited, a second partner registered.
            partner = await stack.active_partner()
            member = f"mel@{partner.domain}"
            invited = await stack.invite(partner, member)
            assert invited.status_code == 201, invited.text
            [member_mail] = await stack.delivered(member)
            enterprise, domain = new_enterprise(), unique_domain()
            waiting = await stack.register(enterprise, domain)
            [admin_mail] = await stack.delivered(f"ada@{domain}")

            # The rollout: B's workers up, B made current, A's workers stopped.
            async with running_workers(stack.client, build_b, stack.stores, schedules=False):
                await _set_current(stack, build_b)
                await a.aclose()

                for link in (member_mail.link, admin_mail.link):
                    page = await stack.http.post(f"{link}/accept")
                    assert 'data-outcome="accepted"' in page.text, page.text[:300]
                onboarding = stack.client.get_workflow_handle(onboarding_workflow_id(waiting.json()["id"]))
                invitation = stack.client.get_workflow_handle(invitation_workflow_id(invited.json()["id"]))
                for handle in (onboarding, invitation):
                    await stack.result(handle)
                    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
                    assert info.deployment_version.build_id == "B", info
                    assert info.behavior == VersioningBehavior.AUTO_UPGRADE.value

        shown = await stack.http.get(f"/v1/partners/{waiting.json()['id']}", headers=holder(enterprise))
        assert shown.json()["status"] == "active", shown.text
        joined = "SELECT count(*) FROM members WHERE partner_id = $1::uuid AND email = $2 AND active"
        assert await pool.fetchval(joined, partner.id, member) == 1


@pytest.mark.parametrize("name", ["", "with space", "a:b"])
def test_a_deployment_name_the_server_cannot_route_is_refused_at_start(name: str) -> None:
    with pytest.raises(ValueError, match="worker_deployment_name"):
        Settings(worker_deployment_name=name)
