"""The worker: builds the activity classes once, runs the workflows, closes on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import uvloop
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.invitations import InvitationActivities
from activities.mail import Mailer
from activities.partners import PartnerActivities
from activities.reconcile import Reconciler
from activities.retention import RetentionActivities
from activities.smtp_pool import SmtpSettings
from activities.wakeups import WakeUps
from activities.webhook_delivery import WebhookDelivery, webhook_task_queue
from partners import collector, logs, tracing
from partners.codec import EncryptionCodec
from partners.mail_feedback import ReturnPath
from partners.models import InvitationTiming
from partners.settings import Settings
from partners.temporal_client import connect_client, metrics_runtime
from store.database import open_pool
from store.events import PORTAL_ENDPOINT_ID
from store.stores import Stores
from workflows.deactivation import PartnerDeactivationWorkflow
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.reconcile import ReconcileWorkflow, ensure_reconcile_schedule
from workflows.replacement import AdminReplacementWorkflow
from workflows.retention import RetentionWorkflow, ensure_retention_schedule
from workflows.webhooks import WebhookDeliveryWorkflow, start_delivery

log = logging.getLogger("worker")

WORKFLOWS: Sequence[type] = (
    PartnerOnboardingWorkflow,
    InvitationWorkflow,
    AdminReplacementWorkflow,
    PartnerDeactivationWorkflow,
    WebhookDeliveryWorkflow,
    RetentionWorkflow,
    ReconcileWorkflow,
)


@dataclass(frozen=True)
class _Sandbox(SandboxedWorkflowRunner):
    """The SDK's sandbox, which checks a workflow class at every worker's start by running
    its module in a sandbox (about 50 ms for our seven): here once per class and process.
    The restrictions are always `sandbox_runner()`'s, so a second check would find what
    the first found. What this spares is the suite's and the benchmarks' hundreds of
    workers in one process; every run is still checked as before."""

    def prepare_workflow(self, defn: workflow._Definition) -> None:
        if defn.cls not in _CHECKED:
            super().prepare_workflow(defn)
            _CHECKED.add(defn.cls)


_CHECKED: set[type] = set()


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The workflow modules (`workflows`) re-imported in the sandbox for each run, so every
    call they make is checked; our models, pure rules and pydantic imported once and
    shared with it (memory, and first-activation time)."""
    return _Sandbox(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "pydantic", "pydantic_core", "annotated_types", "email_validator", "idna", "partners", "opentelemetry"
        )
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Sandboxed where `WORKFLOW_SANDBOX` asks for it (the suite, a debugging session), plain
    in production (settings.py says why)."""
    return sandbox_runner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def worker_tuning(settings: Settings) -> dict[str, Any]:
    """The Worker options the settings tune (the benchmark gives its baseline the same)."""
    return {
        "workflow_runner": workflow_runner(settings),
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "max_cached_workflows": settings.worker_max_cached_workflows,
    }


def deployment(settings: Settings) -> WorkerDeploymentConfig:
    """The build this worker polls as (Worker Versioning). No default behaviour: every
    workflow declares its own (auto-upgrade, docs/design.md says why), and one that does
    not fails the worker's start."""
    version = WorkerDeploymentVersion(settings.worker_deployment_name, settings.build_id)
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True)


@dataclass(frozen=True)
class Activities:
    """Every activity class of the worker, built here alone over the process's stores:
    thin `@activity.defn` wrappers of the stores, the mail and the webhook deliveries."""

    partners: PartnerActivities
    invitations: InvitationActivities
    retention: RetentionActivities
    mailer: Mailer
    webhooks: WebhookDelivery
    reconciler: Reconciler | None = None  # with a client: `partners reconcile` (R25)

    @classmethod
    def build(cls, settings: Settings, stores: Stores, client: Client | None = None) -> Activities:
        reconciler = Reconciler(stores.reconcile, client, settings, InvitationTiming.of(settings)) if client else None
        return cls(
            partners=PartnerActivities(stores.partners),
            invitations=InvitationActivities(stores.invitations),
            retention=RetentionActivities(stores.retention),
            mailer=Mailer(
                stores.ledger,
                SmtpSettings.from_settings(settings),
                link_base=settings.link_base,
                accept_link=settings.accept_link_template,
                return_path=ReturnPath.of(settings),
                notify_inviters=settings.notify_inviters,
                portal_url=settings.portal_url or None,
            ),
            webhooks=WebhookDelivery(
                stores.webhook_deliveries,
                EncryptionCodec(settings.payload_key_map),  # opens the signing secrets sealed at rest
                timeout=settings.webhook_timeout,
                allow_http=settings.webhook_allow_http,
                allow_private=settings.webhook_allow_private,
            ),
            reconciler=reconciler,
        )

    def of_main_queue(self) -> list[Any]:
        """The workflows' steps: the database's, the mail, a delivery given up."""
        return [
            self.partners.register_partner,
            self.partners.deactivate_partner,
            self.invitations.create_invitation,
            self.invitations.reopen_invitation,
            self.invitations.accept_invitation,
            self.invitations.close_invitation,
            self.invitations.stored_state,
            self.invitations.stored_schedule,
            self.retention.prune,
            self.mailer.send_invitation,
            self.mailer.notify_inviter,
            self.webhooks.give_up,
            *([self.reconciler.reconcile] if self.reconciler else []),
        ]

    async def close(self) -> None:
        await self.webhooks.close()
        await self.mailer.close()


def build_worker(
    client: Client,
    settings: Settings,
    activities: Activities,
    *,
    task_queue: str | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=list(WORKFLOWS),
        activities=activities.of_main_queue(),
        **worker_tuning(settings),
        deployment_config=deployment(settings),
        # SIGTERM: stop polling, let the activities under way finish within this bound.
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace),
    )


def build_webhook_worker(client: Client, settings: Settings, activities: Activities) -> Worker:
    """The webhook activities' own worker: an endpoint waiting for events holds a slot
    while it sleeps, so there are many slots, and none is the mail's."""
    return Worker(
        client,
        task_queue=webhook_task_queue(settings.temporal_task_queue),
        activities=[activities.webhooks.deliver_next, activities.webhooks.next_events, activities.webhooks.deliver],
        max_concurrent_activities=settings.webhook_max_endpoints,
        # Its queue is the deployment's too: a build made current is current for both.
        deployment_config=deployment(settings),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace),
    )


@contextlib.asynccontextmanager
async def running_workers(
    client: Client, settings: Settings, stores: Stores, *, schedules: bool = True
) -> AsyncIterator[None]:
    """Every worker of the process, polling until the block ends; `schedules`: the
    service's schedules kept as the settings say (the time-skipping test server has none)."""
    activities = Activities.build(settings, stores, client)
    try:
        async with build_worker(client, settings, activities), build_webhook_worker(client, settings, activities):
            await stores.events.reseal_secrets()
            await ensure_portal_webhook(client, settings, stores)
            if schedules:
                await ensure_retention_schedule(client, settings)
                await ensure_reconcile_schedule(client, settings)
            # Sleeping webhook endpoints woken by their enterprise's commits (activities/wakeups.py).
            wakeups = asyncio.create_task(WakeUps(stores.pool, stores.webhook_deliveries, client).run())
            try:
                yield
            finally:
                wakeups.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await wakeups
    finally:
        await activities.close()


async def ensure_portal_webhook(client: Client, settings: Settings, stores: Stores) -> None:
    """PORTAL_WEBHOOK_URL: the portal-wide endpoint, every enterprise's events, kept as
    the settings say at each start; unset, a former one is disabled."""
    url, secret = settings.portal_webhook_url, settings.portal_webhook_secret
    if not url or secret is None:
        await stores.events.disable_portal_endpoint()
        return
    await stores.events.upsert_portal_endpoint(url, secret.get_secret_value())
    await start_delivery(client, settings, PORTAL_ENDPOINT_ID, None)


async def main(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The worker alone: its own pool and client."""
    if settings.smtp_host is None or settings.smtp_port is None:
        raise SystemExit("DATABASE_URL, SMTP_HOST and SMTP_PORT are required to run the worker alone.")
    tracing.configure("partners-worker")
    async with open_pool(settings) as pool:
        runtime = metrics_runtime(settings.worker_metrics_port) if settings.worker_metrics_port else None
        if runtime is not None:
            record_pauses_on(runtime)
        client = await connect_client(settings, runtime)
        await serve(client, settings, Stores.build(pool, settings), stop or asyncio.Event())


def record_pauses_on(runtime: Runtime) -> None:
    """The worker's full collections as `partners_gc_pause_milliseconds` (a histogram) and
    the long ones as `partners_gc_long_pauses_total`, beside the SDK's metrics."""
    meter = runtime.metric_meter
    pauses = meter.create_histogram_float(
        "partners_gc_pause", "Full garbage collections, by how long they held the event loop.", "milliseconds"
    )
    long_pauses = meter.create_counter(
        "partners_gc_long_pauses", "Full garbage collections that held the loop over 100 ms."
    )
    long_pauses.add(0)  # exported from the start: an alert reads a series that exists
    collector.record_pauses(pauses.record, lambda: long_pauses.add(1))


async def serve(client: Client, settings: Settings, stores: Stores, stop: asyncio.Event) -> None:
    """Polls until `stop` is set, then finishes the activities under way."""
    collecting = asyncio.create_task(_collect_every(settings.worker_gc_interval))
    try:
        async with running_workers(client, settings, stores):
            log.info("worker polling task queue %s", settings.temporal_task_queue)
            await stop.wait()
            log.info("worker stopping: finishing activities under way")
    finally:
        collecting.cancel()


async def _collect_every(seconds: float) -> None:
    """A full collection every WORKER_GC_INTERVAL: the cycles of evicted workflows freed."""
    while seconds:
        await asyncio.sleep(seconds)
        gc.collect()


def run() -> None:
    """`partners-worker`: the worker alone, as in production (see docker-compose.yml)."""
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)
        log.info("worker stopped")

    with collector.timed():  # each full collection logged with how long it held the loop
        run_process(_run())
    logs.exit_after_clean_shutdown()


def run_process(main: Coroutine[Any, Any, None]) -> None:
    """A worker process's loop and collector, the floor's too (bench/floor.py): uvloop,
    ~10% less CPU per registration than asyncio's loop; what was imported at start left
    out of the collector's walks, and collections of young objects rarer
    (bench/HISTORY.md#the-fifth-round-2026-12-04-evening)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    uvloop.run(main)


if __name__ == "__main__":
    run()
