from dataclasses import dataclass

from libs.common import config
from libs.common.config import GrpcServiceSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalsConfig(GrpcServiceSettings):
    database_url: str
    grpc_port: int = 50054


def load_evals_config() -> EvalsConfig:
    return config.load(EvalsConfig, "EVALS_")
