"""What a release shipped stays as it shipped (docs/design.md, "Releases").

tests/releases.json records, per release, the SHA-256 of every migration and committed
history it shipped. A released migration may have run on a production database: editing
it would leave that database different from a fresh one, so a schema change is a new
numbered migration. A released history is what that release's executions look like:
every later build must replay it (tests/test_replay.py), so a workflow change goes behind
`workflow.patched`, and the history is never re-recorded to make a change pass."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.version import Version
from pydantic import SecretStr

from partners.settings import Settings
from partners.version import package_version
from starter.api import create_app
from store.database import open_pool, pending_migrations
from tests.helpers.cli import run
from tests.helpers.releases import HISTORIES, MIGRATIONS, ROOT, latest, released, sha256
from tests.helpers.stack import fresh_database

RELEASES = list(released())


@pytest.mark.parametrize("version", RELEASES)
def test_a_released_migration_is_never_edited(version: str) -> None:
    shipped = released()[version]["migrations"]

    assert shipped, "a release ships its schema"
    for name, digest in shipped.items():
        assert (MIGRATIONS / name).exists(), f"{name} was released in {version}: it cannot be removed"
        assert sha256(MIGRATIONS / name) == digest, (
            f"{name} was released in {version}: a schema change is a new numbered migration"
        )


@pytest.mark.parametrize("version", RELEASES)
def test_a_released_history_is_kept_as_recorded(version: str) -> None:
    """Until CHANGELOG.md says none of the release's executions can be open; then the
    folder goes with its entry here and the patches it needed."""
    shipped = released()[version]["histories"]
    folder = HISTORIES / version

    assert {p.name for p in folder.glob("*.json")} == set(shipped), f"tests/histories/{version} is frozen"
    for name, digest in shipped.items():
        assert sha256(folder / name) == digest, (
            f"{version}/{name} changed: a workflow change goes behind workflow.patched, the history stays"
        )


def test_every_release_is_in_the_changelog_and_the_package_is_the_latest_or_newer() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)

    assert sections[: len(RELEASES)] == list(reversed(RELEASES)), "newest first, each release dated"
    assert Version(package_version()) >= Version(latest())


def test_the_working_tree_at_a_released_version_is_that_release() -> None:
    """A change after a release bumps pyproject.toml's version first (the next one, with
    .dev0): the build id follows it, so its workers never pose as the release's."""
    version = package_version()
    if version not in released():
        pytest.skip(f"{version} is not released: the working tree may differ from every release")
    assert {p.name for p in MIGRATIONS.glob("*.sql")} == set(released()[version]["migrations"])
    assert not (HISTORIES / "unreleased").exists()


def test_the_openapi_document_carries_the_package_version() -> None:
    assert create_app().openapi()["info"]["version"] == package_version()


async def test_the_migration_job_brings_a_fresh_database_up_and_a_process_refuses_one_behind(
    postgres_dsn: str,
) -> None:
    """The API and the worker never migrate (two releases' processes run beside each
    other during a rollout): they refuse a schema that lacks one of their migrations, and
    `partners-migrate`, the one-shot job, applies them, once."""
    dsn = await fresh_database(postgres_dsn, "fresh")
    settings = Settings(database_url=SecretStr(dsn))

    with pytest.raises(SystemExit, match="run `partners-migrate` first"):
        async with open_pool(settings):
            pass

    job = str(Path(sys.executable).parent / "partners-migrate")
    code, out, err = await run(job, env={"DATABASE_URL": dsn})
    assert code == 0, err
    assert out.startswith("applied: 0001_initial.sql, 0002_hardening.sql"), out
    async with open_pool(settings) as pool:
        assert await pending_migrations(pool) == []
        assert await pool.fetchval("SELECT count(*) FROM partners") == 0
    code, out, _ = await run(job, env={"DATABASE_URL": dsn})
    assert (code, out.strip()) == (0, "the schema was up to date")
