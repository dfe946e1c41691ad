"""The two commands on a fresh machine: `make test` finds a missing browser in its first
second and says the one command that fixes it (or installs it, as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) runs the check as another user")
def test_a_missing_chromium_is_said_at_once_with_the_command_that_fixes_it() -> None:
    started = time.monotonic()
    checked = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(ROOT / ".ci" / "chromium")],
        env={**os.environ, "CHROMIUM": "/nonexistent/chromium"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert checked.returncode == 1
    assert "sudo apt-get install chromium" in checked.stderr
    assert time.monotonic() - started < 2


def test_make_test_checks_chromium_before_it_installs_or_runs_anything() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [prerequisites] = [line for line in makefile.splitlines() if line.startswith("test:")]
    assert prerequisites.split()[1] == "check-chromium", prerequisites
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_missing_promtool_is_said_at_once_with_the_command_that_fixes_it() -> None:
    checked = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(ROOT / ".ci" / "promtool")],
        env={**os.environ, "PROMTOOL": "/nonexistent/promtool"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert checked.returncode == 1
    assert "sudo apt-get install prometheus" in checked.stderr
