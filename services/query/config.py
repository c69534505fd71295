from dataclasses import dataclass

from libs.common import config
from libs.common.config import ConfigError, GrpcServiceSettings
from libs.common.kafka import KafkaClientSettings
from libs.common.secret_box import check_key_setting
from services.query.export_targets import parse_networks


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
    # The events (serialized bytes) one writer batch holds at most (services/query/consumer.py):
    # more is cheaper per event, less shows events sooner under load (README, Figures).
    writer_batch_bytes: int = 8 * 1024 * 1024
    # AES-256-GCM key of blob-storage export credentials (libs/common/secret_box.py); without it
    # integrations cannot be saved.
    encryption_key: str = ""
    # The key before QUERY_ENCRYPTION_KEY during a rotation: secrets it sealed still open
    # until `python -m services.query.rotate_secrets` has re-sealed them.
    encryption_key_previous: str = ""
    # An export covers rows written until this long ago: the writer's inserts still on their way.
    export_lag_seconds: float = 300.0
    # Private networks (comma-separated CIDRs) export endpoints may resolve into; public
    # addresses always may (services/query/export_targets.py).
    export_allowed_networks: str = ""

    def __post_init__(self) -> None:
        super(QueryConfig, self).__post_init__()
        check_key_setting("QUERY_ENCRYPTION_KEY", self.encryption_key)
        check_key_setting("QUERY_ENCRYPTION_KEY_PREVIOUS", self.encryption_key_previous)
        try:
            parse_networks(self.export_allowed_networks)
        except ValueError as exc:
            raise ConfigError(f"QUERY_EXPORT_ALLOWED_NETWORKS: {exc}") from exc
        if self.export_lag_seconds < 0:
            raise ConfigError("QUERY_EXPORT_LAG_SECONDS must be ≥ 0")


def load_query_config() -> QueryConfig:
    return config.load(QueryConfig, "QUERY_")
