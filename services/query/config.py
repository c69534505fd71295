from dataclasses import dataclass

from libs.common import config
from libs.common.config import env


@dataclass(frozen=True, slots=True)
class QueryConfig:
    database_url: str
    # chdb://<path> embeds chDB (one process per data directory); clickhouse://user:pass@host:port/db
    # reaches a ClickHouse server over the native protocol. Both run the same SQL.
    clickhouse_url: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50052
    metrics_port: int = 0
    drain_seconds: float = 10.0


def load_query_config() -> QueryConfig:
    return config.load(QueryConfig, "QUERY_")
