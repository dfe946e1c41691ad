"""`make run`: the whole service in the foreground on embedded defaults.

Each server whose setting is given (DATABASE_URL, TEMPORAL_ADDRESS, SMTP_HOST/SMTP_PORT)
is used as it is; the others are started here and stopped on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

import worker
from devstack.deployment import make_current
from devstack.mailcatcher import MailCatcher, ReceivedMail
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import TemporalDevServer
from partners import logs, search, tracing
from partners.codec import new_key_entry
from partners.settings import Settings
from partners.temporal_client import metrics_runtime
from starter.api import bounce_listener, servers
from starter.wiring import open_services
from store.database import migrate_database

log = logging.getLogger("devstack")
SMTP_PORT = 1025
# Delivery reports and complaints (R24): the local bounce domain's "MX".
BOUNCE_PORT = 2525


def _say(what: str, where: str) -> None:
    print(f"  {what:<22} {where}", flush=True)


def _kept_secret(given: SecretStr | None, path: Path, make: Callable[[], str]) -> SecretStr:
    """The setting when given; else the local run's own, made once and kept in the data
    directory (the payload key beside the histories it encrypted: a new one would leave
    them unreadable)."""
    if given is not None:
        return given
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return SecretStr(path.read_text().strip())


def _print_link(mail: ReceivedMail) -> None:
    # Local run only: the mail catcher stands in for the invitee's mailbox.
    print(f"\n  mail to {', '.join(mail.recipients)}: {mail.subject}\n    {mail.link}\n", flush=True)


DEMO_ENTERPRISE, DEMO_HOLDER = "acme", "holder@acme.example"


async def _demo_console_link(base: str, token: str) -> None:
    """A console link for a demo account holder of `acme`, minted as the portal mints one
    (POST /v1/console/sessions), so a newcomer walks through the how-to at once."""
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Actor-Email": DEMO_HOLDER,
        "X-Actor-Role": "account_holder",
        "X-Actor-Enterprise": DEMO_ENTERPRISE,
    }
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                minted = await http.post("/v1/console/sessions", headers=headers)
                if minted.status_code == 201:
                    break
            await asyncio.sleep(0.1)
        else:
            return
    mint = (
        f"curl -s -X POST {base}/v1/console/sessions -H 'Authorization: Bearer {token}'"
        f" -H 'X-Actor-Email: {DEMO_HOLDER}' -H 'X-Actor-Role: account_holder'"
        f" -H 'X-Actor-Enterprise: {DEMO_ENTERPRISE}'"
    )
    print(f"\n  Console of {DEMO_HOLDER} (enterprise {DEMO_ENTERPRISE}), one use, within 5 minutes:\n"
          f"    {minted.json()['url']}\n  Another link:\n    {mint}\n", flush=True)  # fmt: skip


def _write_local_env(path: Path, settings: Settings) -> None:
    """Where this run's servers listen, for the operator CLI (`python -m starter`)."""
    values = {
        "DATABASE_URL": settings.database_url.get_secret_value() if settings.database_url else "",
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "SMTP_HOST": settings.smtp_host or "",
        "SMTP_PORT": str(settings.smtp_port or ""),
        "PORTAL_API_TOKEN": settings.portal_api_token.get_secret_value() if settings.portal_api_token else "",
        "PAYLOAD_KEYS": settings.payload_keys.get_secret_value() if settings.payload_keys else "",
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


@contextlib.asynccontextmanager
async def _embedded(settings: Settings) -> AsyncIterator[Settings]:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    update: dict[str, object] = {
        "portal_api_token": _kept_secret(
            settings.portal_api_token, data / "portal-api-token", lambda: secrets.token_urlsafe(32)
        ),
        "payload_keys": _kept_secret(settings.payload_keys, data / "payload-keys", lambda: new_key_entry("local-1")),
    }
    # Links (mails, the console) point at this run's API unless PUBLIC_BASE_URL says otherwise.
    if "PUBLIC_BASE_URL" not in os.environ:
        update["public_base_url"] = f"http://{settings.api_host}:{settings.api_port}"
    # The local run delivers webhooks to local receivers (http, loopback) unless told not to.
    for name in ("webhook_allow_http", "webhook_allow_private"):
        if name.upper() not in os.environ:
            update[name] = True
    async with contextlib.AsyncExitStack() as stack:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data / "postgres")
            update["database_url"] = SecretStr(await postgres.start())
            stack.push_async_callback(postgres.stop)
            _say("PostgreSQL", f"embedded, data in {data / 'postgres'}")
        else:
            _say("PostgreSQL", "DATABASE_URL")
        if settings.temporal_address is None:
            temporal = TemporalDevServer(
                db_file=data / "temporal.db",
                search_attributes=search.ALL,
                namespace=settings.temporal_namespace,
                log_file=data / "temporal.log",
                ui_codec_endpoint=f"http://{settings.operator_host}:{settings.operator_port}/codec",
                retention=timedelta(seconds=settings.temporal_namespace_retention),
            )
            await temporal.start()
            stack.push_async_callback(temporal.stop)
            update["temporal_address"] = temporal.address
            _say("Temporal", f"dev server {temporal.address}, state in {data / 'temporal.db'}")
            _say("Temporal UI", f"{temporal.ui_url}  (payloads decoded by the operators' /codec)")
            if not settings.codec_cors_origins:  # the UI's page calls /codec from the browser
                update["codec_cors_origins"] = (
                    f"{temporal.ui_url},{str(temporal.ui_url).replace('127.0.0.1', 'localhost')}"
                )
        else:
            _say("Temporal", settings.temporal_address)
        if settings.smtp_host is None and settings.smtp_port is None:
            catcher = MailCatcher(port=SMTP_PORT, store_dir=data / "mail", on_mail=_print_link)
            catcher.start()
            stack.callback(catcher.stop)
            update.update(smtp_host="127.0.0.1", smtp_port=SMTP_PORT)
            _say("SMTP", f"local catcher 127.0.0.1:{SMTP_PORT}, mails in {data / 'mail'}")
        else:
            update.setdefault("smtp_host", settings.smtp_host or "localhost")
            update.setdefault("smtp_port", settings.smtp_port or 25)
            _say("SMTP", f"{update['smtp_host']}:{update['smtp_port']}")
        if settings.bounce_smtp_port is None:
            update.update(bounce_smtp_port=BOUNCE_PORT, bounce_smtp_host="127.0.0.1")
            if settings.bounce_address is None:
                update["bounce_address"] = "bounces@bounces.localhost"
        resolved = settings.model_copy(update=update)
        _write_local_env(data / "local.env", resolved)
        yield resolved


async def main() -> None:
    settings = Settings()
    tracing.configure("partners")  # only where OTEL_* asks for traces
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("Partner onboarding, local run:", flush=True)
    async with _embedded(settings) as settings:
        assert settings.database_url is not None and settings.portal_api_token is not None
        # As the release's migration job does before its API and workers start.
        applied = await migrate_database(settings.database_url.get_secret_value())
        _say("Schema", f"migrated ({', '.join(applied)})" if applied else "up to date")
        runtime = metrics_runtime(settings.worker_metrics_port) if settings.worker_metrics_port else None
        if runtime is not None:
            worker.record_pauses_on(runtime)
        # One bootstrap, as the API's and the tests': the worker shares its pool and client.
        async with open_services(settings, runtime=runtime) as services, contextlib.AsyncExitStack() as listeners:
            # As production: the public listener and the operators', uvicorn's loggers (its
            # access log too) through our redacting handler.
            running = servers(services)
            base = f"http://{settings.api_host}:{settings.api_port}"
            _say("API", f"{base}  (OpenAPI: {base}/docs)")
            _say("Operators", f"http://{settings.operator_host}:{settings.operator_port}  (/codec, /readyz in detail)")
            bounces = await listeners.enter_async_context(bounce_listener(services, running))
            if bounces is not None:
                _say("Bounces", f"SMTP {settings.bounce_smtp_host}:{bounces.port} takes delivery reports and"
                     f" complaints for {settings.bounce_address} (+tag)")  # fmt: skip
            _say("Portal API token", f"{settings.portal_api_token.get_secret_value()}"
                 f"  (also in {settings.data_dir / 'portal-api-token'})")  # fmt: skip
            print("Press Ctrl-C to stop everything.\n", flush=True)
            worker_task = asyncio.create_task(worker.serve(services.client, settings, services.stores, stop))
            api_tasks = {asyncio.create_task(server.serve()) for server in running}
            # As an operator rolls a release out: this build current once its worker polls.
            await make_current(services.client, settings)
            demo = asyncio.create_task(_demo_console_link(base, settings.portal_api_token.get_secret_value()))
            done, _ = await asyncio.wait({worker_task, *api_tasks}, return_when=asyncio.FIRST_COMPLETED)
            demo.cancel()
            stop.set()
            for server in running:
                server.should_exit = True
            await asyncio.gather(worker_task, *api_tasks, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    print("Stopped.", flush=True)


if __name__ == "__main__":
    # Quiet by default: the console shows where things are and the mailed links.
    logs.configure(os.environ.get("LOG_FORMAT", "text"), os.environ.get("LOG_LEVEL", "WARNING"))
    # ...but every request is logged, as production logs it (redacted, through that handler).
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    worker.run_process(main())  # the loop and collector of production's worker, which it hosts
    logs.exit_after_clean_shutdown()  # as the worker's own process ends
