"""A build made current, as an operator does with `temporal worker deployment
set-current-version` (docs/operations.md, "Upgrading"): for the local run, the tests and
the benchmarks, whose dev server starts with no current build and so dispatches no
workflow task to a versioned worker."""

from __future__ import annotations

import asyncio

from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from partners.settings import Settings


async def make_current(client: Client, settings: Settings, *, within: float = 30) -> None:
    """The settings' build current for their deployment, once its workers have polled
    (the server knows a build from its first poll)."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=settings.worker_deployment_name,
        build_id=settings.build_id,
        identity="devstack",
    )
    async with asyncio.timeout(within):
        while True:
            try:
                await client.workflow_service.set_worker_deployment_current_version(request)
                return
            except RPCError as err:  # the build or the deployment not known yet
                if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    raise
            await asyncio.sleep(0.1)
