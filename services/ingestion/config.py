from dataclasses import dataclass

from libs.common import config
from libs.common.config import ConfigError, GrpcServiceSettings, env
from libs.common.kafka import KafkaClientSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestionConfig(GrpcServiceSettings, KafkaClientSettings):
    s3_bucket: str
    # Scores naming a configId are checked against the config, asked of the evals service and
    # cached under the generation token evals keeps in this Redis (the same as EVALS_REDIS_URL).
    # The address is read without the prefix, like every peer address (dev.env, the chart).
    evals_addr: str = env("EVALS_ADDR")
    redis_url: str
    s3_endpoint_url: str = env("S3_ENDPOINT_URL", "")
    s3_region: str = env("S3_REGION", "us-east-1")
    s3_access_key: str = env("S3_ACCESS_KEY", "")
    s3_secret_key: str = env("S3_SECRET_KEY", "")
    # Partitions of ingestion.events.v1: the ceiling on parallel query writers.
    events_partitions: int = 4
    # A gzip OTLP export expanding past this many bytes is refused with 413.
    max_otlp_bytes: int = 32 * 1024 * 1024
    # PostgreSQL: the event log's index (which objects hold a trace's events, written with every
    # request, so that deleting a trace stays exact) and the media records and links. Required.
    database_url: str
    # The S3 endpoint the SDKs reach, used only to sign media URLs; default S3_ENDPOINT_URL.
    s3_public_endpoint_url: str = ""
    # Largest media accepted (Langfuse's LANGFUSE_S3_MEDIA_MAX_CONTENT_LENGTH default).
    media_max_bytes: int = 1_000_000_000
    # Lifetime of presigned media upload and download URLs.
    media_url_seconds: int = 3600

    def __post_init__(self) -> None:
        super(IngestionConfig, self).__post_init__()
        # S3 takes one PUT of at most 5 GiB; a SigV4 presigned URL lives at most 7 days.
        if not 1 <= self.media_max_bytes <= 5 * 1024**3:
            raise ConfigError("INGESTION_MEDIA_MAX_BYTES must be between 1 and 5 GiB")
        if not 1 <= self.media_url_seconds <= 7 * 86_400:
            raise ConfigError("INGESTION_MEDIA_URL_SECONDS must be between 1 and 604800 (7 days)")


def load_ingestion_config() -> IngestionConfig:
    return config.load(IngestionConfig, "INGESTION_")
