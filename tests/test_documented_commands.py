"""The `temporal` commands docs/operations.md and the README give operators work as
written: run with the real CLI against the dev server, with the page's placeholders
filled in. Every payload is encrypted, summaries included: a command that shows one
reads it through the operators' codec endpoint, and none stops at "could not decode"."""

from __future__ import annotations

import os
import re
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devstack.binaries import temporal_cli
from tests.helpers.cli import run
from tests.helpers.receiver import receiving
from tests.helpers.stack import Stack, holder

ROOT = Path(__file__).parent.parent
# Commands that change a deployment's builds or a workflow's course: shown, not run here
# (tests/test_upgrade.py and tests/test_webhooks.py run their like).
NOT_RUN = ("set-current-version", "delete-version", "describe-version", "workflow signal")


def documented() -> list[str]:
    """Every `temporal` command of an `sh` block, its continuation lines joined."""
    commands: list[str] = []
    for page in (ROOT / "docs" / "operations.md", ROOT / "README.md"):
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.S):
            for command in re.sub(r"\\\n\s*", " ", block).splitlines():
                command = command.strip()
                if command.startswith(("temporal ", ".venv/bin/temporal ")):
                    commands.append(command)
    return commands


def test_the_pages_give_the_commands_operators_need() -> None:
    commands = documented()
    assert len(commands) >= 10
    showing = [c for c in commands if re.search(r"workflow (show|metadata|describe)|schedule describe", c)]
    shown_in_clear = [c for c in showing if "--codec-endpoint" not in c and "encrypted:" not in c]
    assert showing and not shown_in_clear, f"a command that shows a payload without the codec: {shown_in_clear}"


async def test_every_documented_command_runs_as_written(scheduled_stack: Stack, dev_env: WorkflowEnvironment) -> None:
    dev_stack = scheduled_stack  # the schedules' commands among them
    partner = await dev_stack.active_partner()
    invitation = (await dev_stack.invite(partner, f"docs@{partner.domain}")).json()
    async with receiving() as receiver:
        hooks = f"/v1/enterprises/{partner.enterprise}/webhooks"
        hook = await dev_stack.http.post(hooks, json={"url": receiver.url}, headers=holder(partner.enterprise))
        assert hook.status_code == 201, hook.text
        filled = {
            "invitation-<id>": f"invitation-{invitation['id']}",
            "partner-onboarding-<id>": f"partner-onboarding-{partner.id}",
            "<partner id>": partner.id,
            "webhook-<endpoint id>": f"webhook-{hook.json()['id']}",
            "webhook-<endpoint-id>": f"webhook-{hook.json()['id']}",
            '\'EnterpriseId="acme"': f'\'EnterpriseId="{partner.enterprise}"',
            'EnterpriseId="acme"': f'EnterpriseId="{partner.enterprise}"',
            "http://127.0.0.1:8001/codec": f"{dev_stack.operator_url}/codec",
            ".venv/bin/temporal ": f"{temporal_cli()} ",
        }
        env = {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "CODEC_AUTH_TOKEN": "",
            "PATH": f"{Path(temporal_cli()).parent}:{os.environ['PATH']}",
        }
        ran = 0
        for command in documented():
            if any(skipped in command for skipped in NOT_RUN):
                continue
            line = command.split("  #", 1)[0]
            for placeholder, value in filled.items():
                line = line.replace(placeholder, value)
            assert "<" not in line, f"a placeholder the test does not fill: {line}"
            code, out, err = await run("bash", "-c", line, env=env)
            if "encrypted:" in command:  # the page shows what the CLI says without the codec
                assert "binary/encrypted" in out + err or code != 0, (line, out[:500])
                continue
            assert code == 0, f"{command}\n{err[-800:]}"
            assert "could not decode" not in out + err and "binary/encrypted" not in out, (command, out[:800])
            ran += 1
        assert ran >= 8
