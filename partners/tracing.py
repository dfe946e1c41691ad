"""Tracing (OpenTelemetry), off unless configured by the standard `OTEL_*` variables: an
OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
`OTEL_TRACES_EXPORTER=otlp`), and not `OTEL_SDK_DISABLED=true`.

One trace follows a request from the API through Temporal (the SDK's TracingInterceptor:
the update, the workflow, its activities) to PostgreSQL and SMTP. Spans carry ids, never
a name or an address: the request's path is replaced by its route template, and SQL
statements are recorded without their parameters.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace

_tracing = False


def wanted() -> bool:
    """Whether the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return exporter == "otlp" or (bool(endpoint) and exporter != "none")


def configure(service: str) -> bool:
    """The process's tracer provider, exporting over OTLP/HTTP as the `OTEL_*` variables
    say, and PostgreSQL's statements traced; False (nothing done) when not asked for."""
    if not wanted():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def install(provider: Any) -> None:
    """Traces on, with this provider (an exporter of the environment's, or a test's)."""
    global _tracing
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor(capture_parameters=False).instrument()  # type: ignore[no-untyped-call]
    _tracing = True


def active() -> bool:
    return _tracing


def uninstall() -> None:
    """Traces off again (a test that turned them on): no interceptor, no middleware, no
    instrumented statements for what is built after."""
    global _tracing
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    _tracing = False


def interceptors() -> list[Any]:
    """The Temporal client's interceptors: the SDK's tracing one while traces are on (the
    worker inherits it from its client)."""
    if not _tracing:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def scrub(span: Any, scope: dict[str, Any]) -> None:
    """An HTTP server span keeps its route template, never the path: a path may carry an
    invitation token or an address (`/invitations/{token}`, `/members/{email}`)."""
    if span is None or not span.is_recording():
        return
    for name in ("http.target", "http.url", "url.path", "url.full", "url.query"):
        span.set_attribute(name, "[redacted]")


def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A request's span is named by its method alone: its path may hold a token."""
    return str(scope.get("method") or "HTTP"), {}


def tracer() -> trace.Tracer:
    return trace.get_tracer("partners")
