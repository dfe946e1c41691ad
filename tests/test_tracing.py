"""Tracing: one trace joins a registration's HTTP request, its workflow, the
registration step and the mail, down to PostgreSQL and SMTP; no span names a person.
The SDK's in-memory exporter stands in for a collector."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners import tracing
from tests.helpers.stack import new_enterprise, running_stack, unique_domain

EXPORTER = InMemorySpanExporter()


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    tracing.install(provider)
    EXPORTER.clear()
    try:
        yield EXPORTER
    finally:
        tracing.uninstall()


def test_traces_are_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.wanted()


async def test_one_trace_joins_the_request_its_workflow_the_registration_and_the_mail(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, traced: InMemorySpanExporter
) -> None:
    base = dev_env.client
    client = Client(
        base.service_client,
        namespace=base.namespace,
        data_converter=base.data_converter,
        interceptors=tracing.interceptors(),
    )
    async with running_stack(dev_env, pool, mail, client=client) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        created = await stack.register(enterprise, domain)
        assert created.status_code == 201, created.text
        await stack.delivered(f"ada@{domain}")
        await asyncio.sleep(0.5)  # the mail activity's span ends after its answer
    spans: list[ReadableSpan] = list(traced.get_finished_spans())
    [request] = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST"]
    assert request.attributes is not None and request.attributes.get("url.path") == "[redacted]"
    assert request.context is not None
    trace_id = request.context.trace_id
    joined = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    names = [s.name for s in joined]
    assert any(n.startswith("RunWorkflow:PartnerOnboardingWorkflow") for n in names), names
    assert any(n.startswith("RunActivity:register_partner") for n in names), names
    assert any(n.startswith("RunActivity:send_invitation") for n in names), names
    assert "smtp send" in names, names
    assert any(s.attributes and "db.system" in s.attributes for s in joined), "PostgreSQL's statements joined"
    # Ids only: neither the admin's address, nor their name, nor the partner's path.
    for span in spans:
        text = repr(dict(span.attributes or {})) + span.name
        assert f"ada@{domain}" not in text and "Ada" not in text and domain not in text, (span.name, text)
        assert enterprise not in text, (span.name, text)  # no path recorded
