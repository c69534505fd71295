from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings, env
from libs.common.kafka import KafkaClientSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalsConfig(GrpcServiceSettings, KafkaClientSettings):
    database_url: str
    # Score-config cache generations: the same Redis as INGESTION_REDIS_URL.
    redis_url: str
    # The query service (`host:port`), read without the prefix like the gateway's: evals asks it
    # for what lives in ClickHouse (an observation's trace) and never reads ClickHouse itself.
    query_addr: str = env("QUERY_ADDR")
    # The prompts service, asked whether a prompt version a comment names exists.
    prompts_addr: str = env("PROMPTS_ADDR")
    grpc_port: int = 50054


def load_evals_config() -> EvalsConfig:
    return config.load(EvalsConfig, "EVALS_")
