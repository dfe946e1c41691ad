"""The operators' alerting rules (deploy/prometheus/alerts.yml) and on-call dashboard
(deploy/grafana/partners-on-call.json): valid (Prometheus's own promtool parses every
query), the rules unit-tested and each with its runbook, and both reading only series the
running service exports."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import shutil
from pathlib import Path

import asyncpg
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from partners import collector
from partners.models import RetentionInput
from partners.settings import Settings
from partners.temporal_client import connect_client, metrics_runtime
from tests.helpers.cli import run
from tests.helpers.metrics import scrape
from tests.helpers.receiver import receiving
from tests.helpers.stack import holder, partner_user, running_stack
from tests.test_mail_feedback import dsn, report
from worker import record_pauses_on
from workflows.retention import RetentionWorkflow

ROOT = Path(__file__).parent.parent
RULES = ROOT / "deploy" / "prometheus"
# Series that exist once their first event happened, which this test does not cause:
# a webhook endpoint disabled after WEBHOOK_RETRY_FOR, a workflow task that failed (the
# SDK's own counter). Each is named where it is counted.
FIRST_EVENT_ONLY = {
    "partners_webhook_endpoints_disabled_total": ROOT / "activities" / "webhook_delivery.py",
    "temporal_workflow_task_execution_failed_total": None,  # the Temporal SDK's
}


def _alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "partners-on-call.json").read_text())
    return [str(target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def _series_read() -> set[str]:
    queries = [str(rule["expr"]) for rule in _alerts()] + _dashboard_queries()
    return {name for query in queries for name in re.findall(r"\b(?:partners|temporal)_[a-z_]+\b", query)}


async def test_the_dashboard_is_grafanas_and_every_query_parses(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "partners-on-call.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries" and panel["targets"] and set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert all(t["refId"] and t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    # Each query as a recording rule, Grafana's $__rate_interval as a window: promtool parses it.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": query.replace("$__rate_interval", "5m")}
        for i, query in enumerate(_dashboard_queries())]}]}  # fmt: skip
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    code, out, err = await run(_promtool(), "check", "rules", str(tmp_path / "queries.yml"))
    assert code == 0, out + err


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: make test installs Debian's prometheus (.ci/promtool)"
    return found


async def test_the_rules_are_valid_and_fire_on_what_they_are_about() -> None:
    code, out, err = await run(_promtool(), "check", "rules", str(RULES / "alerts.yml"))
    assert code == 0, out + err
    code, out, err = await run(_promtool(), "test", "rules", str(RULES / "alerts.test.yml"))
    assert code == 0 and "SUCCESS" in out, out + err
    tested = {t["alertname"] for case in yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
              for t in case["alert_rule_test"] if t["exp_alerts"]}  # fmt: skip
    assert tested == {str(rule["alert"]) for rule in _alerts()}, "each alert has a case where it fires"


def test_each_alert_has_its_runbook() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in _alerts():
        name = str(rule["alert"])
        assert f"#### {name}" in operations, f"no runbook section for {name}"
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"  # type: ignore[index]


@pytest.mark.servers
async def test_every_series_an_alert_reads_is_exported(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """A working day in miniature: an onboarding, an access check, a relay that refuses
    us once, an address the relay refuses, a hard bounce, a webhook endpoint, a pruning
    run. Then the workers' and the API's metric endpoints hold every series the rules read."""
    worker_port, api_port = free_port(), free_port()
    settings = Settings(temporal_address=dev_env.client.service_client.config.target_host)
    runtime = metrics_runtime(worker_port, "127.0.0.1")
    record_pauses_on(runtime)  # as the worker's main does
    client = await connect_client(settings, runtime)
    async with (
        running_stack(dev_env, pool, mail, client=client, api_metrics_port=api_port) as stack,
        receiving() as receiver,
    ):
        partner = await stack.active_partner()
        hooks = f"/v1/enterprises/{partner.enterprise}/webhooks"
        await stack.http.post(hooks, json={"url": receiver.url}, headers=holder(partner.enterprise))
        await stack.http.get(
            "/v1/access/check",
            params={"enterprise_id": partner.enterprise, "kind": "product", "ref": "maps"},
            headers=partner_user(partner.admin),
        )
        stack.mail.refuse_next_senders(1)  # a configuration fault, retried
        await stack.invite(partner, f"late@{partner.domain}")
        stack.mail.refuse_recipient(f"gone@{partner.domain}")
        await stack.invite(partner, f"gone@{partner.domain}")
        [mail_to_bounce] = await stack.delivered(f"late@{partner.domain}")
        await report(stack, mail_to_bounce.sender, dsn(mail_to_bounce.sender, f"late@{partner.domain}", "5.1.1"))
        queue = stack.settings.temporal_task_queue
        await stack.client.execute_workflow(
            RetentionWorkflow.run, RetentionInput(), id=f"retention-{worker_port}", task_queue=queue
        )
        with collector.timed():  # as the worker's and the API's run() do
            gc.collect()  # a full collection: its pause in both processes' histograms
        wanted = _series_read() - set(FIRST_EVENT_ONLY)
        async with asyncio.timeout(60):  # the SDK exports on its own schedule
            while missing := wanted - _names(await scrape(worker_port)) - _names(await scrape(api_port)):
                await asyncio.sleep(0.5)
        assert not missing
        async with asyncio.timeout(60):
            while "partners_gc_pause_milliseconds_count" not in _names(await scrape(worker_port)):
                await asyncio.sleep(0.5)
        api_pauses = [
            line
            for line in (await scrape(api_port)).splitlines()
            if line.startswith("partners_gc_pause_milliseconds_count")
        ]
        assert api_pauses and float(api_pauses[0].split()[-1]) >= 1
    for name, source in FIRST_EVENT_ONLY.items():
        assert source is None or name.removesuffix("_total") in source.read_text(), name


def _names(metrics: str) -> set[str]:
    lines = [line for line in metrics.splitlines() if line and not line.startswith("#")]
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in lines}
