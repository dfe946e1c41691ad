"""Layers that do not reach up: the API does not import the worker to connect, the SMTP
pool does not import the mailer that uses it, the service layer none of the routes that
use it. Checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("module", "never"),
    [
        ("starter.api", {"worker"}),
        ("starter.cli", {"worker", "uvloop"}),
        ("activities.smtp_pool", {"activities.mail"}),
        ("partners.temporal_client", {"worker", "starter", "activities", "store"}),
        ("store.persons", {"activities", "starter", "workflows", "worker"}),
        ("store.reads", {"activities", "starter", "workflows", "worker"}),
        # The service layer serves the routes, the pages and the CLI: it imports none of them.
        *(
            (
                f"starter.service.{name}",
                {"starter.portal", "starter.events_api", "starter.pages", "starter.api", "starter.cli", "worker"},
            )
            for name in ("partners", "invitations", "members", "webhooks")
        ),
    ],
)
def test_a_module_does_not_import_a_higher_layer(module: str, never: set[str]) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    reached = sorted(set(loaded) & never)
    assert not reached, f"{module} imports {reached}"
