"""Prometheus metrics of one aggregator, rendered at `GET /metrics` (api/health_api.py).

Each app owns its registry (`Metrics`, in the AppContext) rather than prometheus_client's
process-wide default one, so several aggregators in one process (the tests) never count into each
other. Only the ingest latency is observed as it happens (the writer calls `observe_ingest`);
everything else is read from the counters and queues the aggregator keeps anyway, at scrape time,
so the hot paths carry no metric code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

INGEST_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: the group-commit window is 20 ms, so most batches land in the first few buckets;
the tail shows a database that has slowed down."""


@dataclass(frozen=True)
class Reading:
    """The values a scrape reads from the running aggregator (see `Metrics.bind`)."""

    frames_stored: int = 0
    batches: int = 0
    batch_failures: int = 0
    engines_connected: int = 0
    ws_clients: int = 0
    writer_queue: int = 0
    ws_queued_frames: int = 0
    ws_queued_bytes: int = 0
    engine_held_bytes: int = 0


@dataclass
class Metrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=False)
    )
    ingest_latency: Histogram = field(init=False)
    database_errors: Counter = field(init=False)
    nats_errors: Counter = field(init=False)
    _read: Callable[[], Reading] = field(default=Reading)

    def __post_init__(self) -> None:
        self.ingest_latency = Histogram(
            "setpoint_ingest_latency_seconds",
            "From a frame handed to the writer to the commit of its transaction (before its Ack)",
            buckets=INGEST_BUCKETS,
            registry=self.registry,
        )
        self.database_errors = Counter(
            "setpoint_database_errors",
            "Database calls outside ingest that failed (readiness checks)",
            registry=self.registry,
        )
        self.nats_errors = Counter(
            "setpoint_nats_errors",
            "NATS failures: connection errors, publishes dropped or failed, failed requests",
            registry=self.registry,
        )
        self.registry.register(_Live(self))

    def bind(self, read: Callable[[], Reading]) -> None:
        """Where scrapes read the live values from (set up once the app's parts exist)."""
        self._read = read

    def observe_ingest(self, seconds: float) -> None:
        self.ingest_latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live:
    """A custom collector: the values are read when scraped, not pushed on every change."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # names are checked at registration only for collectors that describe

    def collect(self) -> Iterable[Metric]:
        r = self._metrics._read()
        yield _counter(
            "setpoint_ingest_frames", "Engine frames stored (committed)", r.frames_stored
        )
        yield _counter("setpoint_ingest_batches", "Group-commit transactions committed", r.batches)
        yield _counter(
            "setpoint_ingest_batch_failures",
            "Group-commit transactions that failed (the engines resend); database errors",
            r.batch_failures,
        )
        yield _gauge(
            "setpoint_engines_connected", "Engines linked to this node", r.engines_connected
        )
        yield _gauge("setpoint_ws_clients", "Browser and script /ws connections", r.ws_clients)
        yield _gauge(
            "setpoint_writer_queue_depth",
            "Submissions waiting for the writer's next transaction",
            r.writer_queue,
        )
        yield _gauge(
            "setpoint_ws_queued_frames",
            "Changes waiting to be sent to /ws clients",
            r.ws_queued_frames,
        )
        yield _gauge(
            "setpoint_ws_queued_bytes",
            "Bytes of changes waiting for /ws clients",
            r.ws_queued_bytes,
        )
        yield _gauge(
            "setpoint_engine_held_bytes",
            "Bytes of engine frames held beyond a missing sequence number",
            r.engine_held_bytes,
        )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
