from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings, env
from libs.common.kafka import KafkaCluster


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptsConfig(GrpcServiceSettings):
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    kafka_namespace: str = env("KAFKA_NAMESPACE", "")
    grpc_port: int = 50053

    @property
    def kafka(self) -> KafkaCluster:
        return KafkaCluster(self.kafka_bootstrap_servers, self.kafka_namespace)


def load_prompts_config() -> PromptsConfig:
    return config.load(PromptsConfig, "PROMPTS_")
