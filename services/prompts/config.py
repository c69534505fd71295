from dataclasses import dataclass

from libs.common import config
from libs.common.config import env


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50053
    metrics_port: int = 0
    drain_seconds: float = 10.0


def load_prompts_config() -> PromptsConfig:
    return config.load(PromptsConfig, "PROMPTS_")
