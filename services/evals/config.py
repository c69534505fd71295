from dataclasses import dataclass

from libs.common import config


@dataclass(frozen=True, slots=True)
class EvalsConfig:
    database_url: str
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50054
    metrics_port: int = 0
    drain_seconds: float = 10.0


def load_evals_config() -> EvalsConfig:
    return config.load(EvalsConfig, "EVALS_")
