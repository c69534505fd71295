"""Prometheus metrics shared by every process, served on a per-process `/metrics` port."""

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_SECONDS = Histogram(
    "obs_rpc_seconds",
    "gRPC handler latency",
    ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_SECONDS = Histogram(
    "obs_http_seconds",
    "Gateway request latency",
    ["route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge(
    "obs_consumer_lag",
    "Records between the high watermark and the consumer position",
    ["group", "topic", "partition"],
)
CONSUMED = Counter(
    "obs_consumed_records", "Records handled or dead-lettered, and committed", ["group", "topic"]
)
DEAD_LETTERED = Counter("obs_dead_lettered_records", "Records sent to a DLQ", ["group", "topic"])
CONSUMER_TRANSIENT_ERRORS = Counter(
    "obs_consumer_transient_errors",
    "Handler, dead-letter or commit attempts that failed on an infrastructure error (retried)",
    ["group", "error"],
)
HEALTH_FAILING = Gauge(
    "obs_health_failing", "1 while a health check (store ping or consumer) fails", ["check"]
)

RETENTION_DELETED = Counter(
    "obs_retention_deleted",
    "Rows or objects the retention pass deleted (libs/common/retention.py)",
    ["service", "store"],
)
RETENTION_ANNOUNCED = Counter(
    "obs_retention_announced", "Project retention cutoffs the gateway announced"
)


def serve_metrics(port: int) -> None:
    """Serve `/metrics` from a daemon thread; port 0 disables it (tests run many processes)."""
    if port:
        start_http_server(port, addr="0.0.0.0")
