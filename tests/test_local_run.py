"""`make run` as a newcomer meets it: `python -m devstack` on embedded servers. Its
Temporal UI decodes payloads through the operators' listener; the public port has no codec."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from devstack.net import free_port
from partners.settings import Settings
from tests.helpers.stack import start_console

pytestmark = pytest.mark.servers  # it starts the whole local run

ROOT = Path(__file__).parent.parent
# The local run's fixed ports (Temporal, its UI, the mail catcher): a newcomer's defaults.
FIXED = {"Temporal": 7233, "Temporal UI": 8233, "SMTP catcher": 1025, "Bounces": 2525}


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def _when_up(http: httpx.AsyncClient, url: str) -> Any:
    """The JSON at `url` once it answers 200 (the listeners start a moment after the banner)."""
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(httpx.TransportError):
                answer = await http.get(url)
                if answer.status_code == 200:
                    return answer.json()
            await asyncio.sleep(0.2)


async def test_make_runs_ui_decodes_through_the_operators_listener(tmp_path: Path) -> None:
    taken = [name for name, port in FIXED.items() if not _free(port)]
    assert not taken, f"stop the local run first: {taken} already listening"
    api, operators = free_port(), free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "API_PORT": str(api),
        "OPERATOR_PORT": str(operators),
        "WORKER_METRICS_PORT": "0",
        "API_METRICS_PORT": "0",
    }
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_HOST", "SMTP_PORT", "CODEC_AUTH_TOKEN"):
        env.pop(name, None)
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devstack", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert run.stdout is not None
    try:
        async with asyncio.timeout(60):
            said = b""
            while b"Press Ctrl-C" not in said:
                line = await run.stdout.readline()
                assert line, f"the local run ended: {said.decode()}"
                said += line
        async with httpx.AsyncClient(timeout=10) as http:
            settings = await _when_up(http, f"http://127.0.0.1:{FIXED['Temporal UI']}/api/v1/settings")
            endpoint = settings["Codec"]["Endpoint"]
            assert endpoint == f"http://127.0.0.1:{operators}/codec"
            await _when_up(http, f"http://127.0.0.1:{operators}/readyz")  # a worker polls too
            ui = f"http://127.0.0.1:{FIXED['Temporal UI']}"
            plain = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                                   "data": base64.b64encode(b'"ana@x.example"').decode()}]}  # fmt: skip
            encoded = await http.post(f"{endpoint}/encode", json=plain, headers={"Origin": ui})
            assert encoded.status_code == 200 and encoded.headers["access-control-allow-origin"] == ui
            decoded = await http.post(f"{endpoint}/decode", json=encoded.json(), headers={"Origin": ui})
            assert decoded.json() == plain, "the UI's browser decodes"
            public = await http.post(f"http://127.0.0.1:{api}/codec/decode", json=encoded.json())
            assert (public.status_code, public.json()["code"]) == (404, "not_found")
            assert (await http.get(f"http://127.0.0.1:{api}/readyz")).json() == {"status": "ok"}
            detail = await _when_up(http, f"http://127.0.0.1:{operators}/readyz")
            assert detail["database"] == "ok" and detail["workers"] == "ok"
        # The bounce listener (R24), on the port the banner says, takes reports for the
        # local bounce domain's return paths only.
        assert re.search(rb"Bounces +SMTP 127.0.0.1:2525 ", said), said.decode()
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=FIXED["Bounces"], timeout=10) as smtp:
            await smtp.mail("")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused):
                await smtp.rcpt("someone@bounces.localhost")
        # The demo account holder's console link, minted as the portal would (R19).
        async with asyncio.timeout(30):
            while b"Console of holder@acme.example" not in said:
                said += await run.stdout.readline()
            link = (await run.stdout.readline()).decode().strip()
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await start_console(http, link)).status_code == 303
            opened = await http.get(f"{link.split('/console/')[0]}/console")
            assert opened.status_code == 200 and 'id="slots"' in opened.text, opened.text[:500]
        # Temporal's retention set explicitly, and the retention schedule there (R17).
        temporal = await Client.connect(f"127.0.0.1:{FIXED['Temporal']}")
        namespace = await temporal.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        kept = namespace.config.workflow_execution_retention_ttl.ToTimedelta()
        assert kept == timedelta(seconds=Settings().temporal_namespace_retention) == timedelta(days=7)
        schedule = await temporal.get_schedule_handle("partners-retention").describe()
        assert schedule.schedule.spec.intervals[0].every == timedelta(seconds=Settings().retention_interval)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await run.communicate()
