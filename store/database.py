"""The asyncpg pool and the versioned SQL migrations.

The schema is brought up to date by `partners-migrate`, once, before a release's API and
workers start (docker-compose.yml's `migrate` job; `make run` and the tests call `migrate`
themselves). The API and the worker never change it: they refuse to start on a schema
behind their build, and run beside one ahead of it (a release's migrations only add what
the release before can ignore: docs/design.md, "Releases")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg

from partners.settings import Settings

log = logging.getLogger(__name__)

# Any constant shared by every process of the service: the lock serialises migrations
# should two migration jobs run at once against one database.
_MIGRATION_LOCK = 7_246_853_910


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool, after asyncpg has rolled back
    a transaction left open: nothing. The service changes no other session state (no
    SET, no cursor; LISTEN only on the worker's listening connection, which UNLISTENs
    before it is released; a session lock only around migrations, released in
    `finally`), so asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET
    ALL) would cost a round trip per transaction for nothing (bench/HISTORY.md#its-cuts)."""


async def create_pool(dsn: str, *, size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, init=_init_connection, reset=_keep_session)
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def open_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The process's one pool, on a schema with every migration of this build applied."""
    if settings.database_url is None:
        raise SystemExit("DATABASE_URL is required (make run writes it to .data/local.env).")
    pool = await create_pool(settings.database_url.get_secret_value(), size=settings.database_pool_size)
    try:
        if missing := await pending_migrations(pool):
            raise SystemExit(
                f"The database lacks migrations {', '.join(missing)} of this build: run `partners-migrate` first."
            )
        yield pool
    finally:
        await pool.close()


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def pending_migrations(pool: asyncpg.Pool) -> list[str]:
    """This build's migrations not applied to the database, by file name."""
    exists = await pool.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = {r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")} if exists else set()
    return [name for version, name, _ in _migrations() if version not in done]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Applies the migrations not yet applied, each in its own transaction; returns them."""
    applied: list[str] = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def migrate_database(dsn: str) -> list[str]:
    """The migration job's work on one connection of its own: the migrations applied."""
    pool = await create_pool(dsn, size=1)
    try:
        return await migrate(pool)
    finally:
        await pool.close()


def run() -> None:
    """`partners-migrate`: the schema brought up to date (DATABASE_URL), then exit 0."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    if settings.database_url is None:
        raise SystemExit("DATABASE_URL is required.")
    applied = asyncio.run(migrate_database(settings.database_url.get_secret_value()))
    print(f"applied: {', '.join(applied)}" if applied else "the schema was up to date")


if __name__ == "__main__":
    run()
