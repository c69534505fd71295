from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings, env


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptsConfig(GrpcServiceSettings):
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    grpc_port: int = 50053


def load_prompts_config() -> PromptsConfig:
    return config.load(PromptsConfig, "PROMPTS_")
