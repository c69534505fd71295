from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings
from libs.common.kafka import KafkaClientSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptsConfig(GrpcServiceSettings, KafkaClientSettings):
    database_url: str
    redis_url: str
    grpc_port: int = 50053


def load_prompts_config() -> PromptsConfig:
    return config.load(PromptsConfig, "PROMPTS_")
