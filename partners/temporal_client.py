"""The Temporal client every process connects with (the worker, the API, the CLI, the
benchmark), and the runtime that exports the SDK's metrics: shared, so that the API does
not import the worker to connect."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from partners import collector, tracing
from partners.codec import data_converter
from partners.settings import Settings


async def connect_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The one way every process connects: same address, namespace and data converter
    (pydantic payloads, encrypted with PAYLOAD_KEYS)."""
    address = settings.temporal_address or "localhost:7233"
    try:
        return await Client.connect(
            address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings.payload_key_map),
            runtime=runtime,
            interceptors=tracing.interceptors(),  # a worker built on this client inherits them
        )
    except RuntimeError as err:
        # The SDK says "Failed client connect" as a bare RuntimeError: name it for callers.
        raise ConnectionError(f"Temporal at {address} did not answer: {err}") from err


# From invitation to acceptance takes minutes to days: 1 minute to 14 days, in ms.
ACCEPTANCE_BUCKETS_MS = [60_000.0 * minutes for minutes in (1, 10, 60, 360, 1440, 3 * 1440, 7 * 1440, 14 * 1440)]


def metrics_runtime(port: int, host: str = "0.0.0.0") -> Runtime:  # noqa: S104 (scraped from other hosts)
    """The SDK's own metrics (task latencies, slots, polls...) and our business counters,
    on one Prometheus endpoint."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{host}:{port}",
                counters_total_suffix=True,
                unit_suffix=True,
                histogram_bucket_overrides={
                    "partners_invitation_acceptance_delay": ACCEPTANCE_BUCKETS_MS,
                    "partners_gc_pause": collector.PAUSE_BUCKETS_MS,
                },
            )
        )
    )
