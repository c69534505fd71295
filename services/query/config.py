from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings, env
from libs.common.kafka import KafkaCluster


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryConfig(GrpcServiceSettings):
    database_url: str
    # chdb://<path> embeds chDB (one process per data directory); clickhouse://user:pass@host:port/db
    # reaches a ClickHouse server over the native protocol. Both run the same SQL.
    clickhouse_url: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    kafka_namespace: str = env("KAFKA_NAMESPACE", "")
    grpc_port: int = 50052

    @property
    def kafka(self) -> KafkaCluster:
        return KafkaCluster(self.kafka_bootstrap_servers, self.kafka_namespace)


def load_query_config() -> QueryConfig:
    return config.load(QueryConfig, "QUERY_")
