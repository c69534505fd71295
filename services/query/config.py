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
    # Entities whose merged state the writer remembers (services/query/recent_state.py), so
    # their next events merge without a read of ClickHouse: ~20,000 SDK-sized ones take
    # ~150 MiB (1-4 KiB inputs and outputs).
    writer_state_entities: int = 20_000


def load_query_config() -> QueryConfig:
    return config.load(QueryConfig, "QUERY_")
