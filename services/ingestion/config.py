from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings, env
from libs.common.kafka import KafkaCluster


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestionConfig(GrpcServiceSettings):
    s3_bucket: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    kafka_namespace: str = env("KAFKA_NAMESPACE", "")
    s3_endpoint_url: str = env("S3_ENDPOINT_URL", "")
    s3_region: str = env("S3_REGION", "us-east-1")
    s3_access_key: str = env("S3_ACCESS_KEY", "")
    s3_secret_key: str = env("S3_SECRET_KEY", "")
    # Partitions of ingestion.events.v1: the ceiling on parallel query writers.
    events_partitions: int = 4

    @property
    def kafka(self) -> KafkaCluster:
        return KafkaCluster(self.kafka_bootstrap_servers, self.kafka_namespace)


def load_ingestion_config() -> IngestionConfig:
    return config.load(IngestionConfig, "INGESTION_")
