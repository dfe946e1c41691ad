"""The released versions (tests/releases.json) and their source, from git.

A release records, in tests/releases.json, the SHA-256 of every migration and committed
history it shipped: from then on those files are frozen (tests/test_releases.py), and the
upgrade check (tests/test_upgrade.py) runs the release's code from git."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent.parent
MANIFEST = ROOT / "tests" / "releases.json"
HISTORIES = ROOT / "tests" / "histories"
MIGRATIONS = ROOT / "store" / "migrations"


def released() -> dict[str, Any]:
    """Version -> {"migrations": {file: sha256}, "histories": {file: sha256}}, oldest first
    (none before the first release is cut)."""
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    return loaded


def latest() -> str:
    return list(released())[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def release_commit(version: str) -> str:
    """The commit of `version`: its tag `v<version>` where the clone has tags, else the
    first commit whose pyproject.toml declares that version (the release commit); or any
    commit git knows by that name (a developer's `make upgrade-check FROM=<commit>`)."""
    for name in (f"v{version}", None, version):
        if name is None:
            found = _git("log", "--reverse", "--format=%H", "-S", f'version = "{version}"', "--", "pyproject.toml")
            if found:
                return found.splitlines()[0]
            continue
        with contextlib.suppress(subprocess.CalledProcessError):
            return _git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    raise LookupError(f"no commit of release {version}: no tag v{version}, no pyproject.toml with it, no such commit")


def extract(version: str, into: Path) -> Path:
    """The release's files, as git holds them at its commit, under `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", release_commit(version)], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def record(version: str) -> dict[str, Any]:
    """The manifest entry of `version` as the tree holds it now: every migration, and
    every history under tests/histories/<version>/ (`make release` writes it)."""
    folder = HISTORIES / version
    histories = sorted(folder.glob("*.json"))
    if not histories:
        raise SystemExit(f"tests/histories/{version}/ holds no history: make histories HISTORIES_INTO={version}")
    return {
        "migrations": {p.name: sha256(p) for p in sorted(MIGRATIONS.glob("*.sql"))},
        "histories": {p.name: sha256(p) for p in histories},
    }


if __name__ == "__main__":
    import sys

    [version] = sys.argv[1:]
    manifest = released()
    if version in manifest:
        raise SystemExit(f"{version} is released already: its entry is frozen")
    manifest[version] = record(version)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"tests/releases.json: {version} recorded")
