from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings
from libs.common.kafka import KafkaClientSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryConfig(GrpcServiceSettings, KafkaClientSettings):
    database_url: str
    # chdb://<path> embeds chDB (one process per data directory); clickhouse://user:pass@host:port/db
    # reaches a ClickHouse server over the native protocol. Both run the same SQL.
    clickhouse_url: str
    grpc_port: int = 50052


def load_query_config() -> QueryConfig:
    return config.load(QueryConfig, "QUERY_")
