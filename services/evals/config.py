from dataclasses import dataclass

from libs.common import config
from libs.common.config import ConfigError, GrpcServiceSettings, env
from libs.common.kafka import KafkaClientSettings
from libs.common.secret_box import check_key_setting


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
    # The ingestion service: judge scores and the judge's own generation are ingested there.
    ingestion_addr: str = env("INGESTION_ADDR")
    grpc_port: int = 50054
    # AES-256-GCM key of LLM connection secrets (libs/common/secret_box.py); without it LLM
    # connections cannot be saved and judge jobs cannot run.
    encryption_key: str = ""
    encryption_key_previous: str = ""
    # LLM-as-a-judge jobs: calls in flight per LLM connection, attempts before a job's final
    # error, and the deadline of one call.
    judge_concurrency: int = 32
    judge_max_attempts: int = 5
    judge_timeout_seconds: float = 60.0
    # The judge yields to ingestion (services/evals/writer_load.py): while the query writer is
    # more than this many records (requests' per-partition event groups) behind, jobs are
    # claimed in rounds of at most judge_busy_jobs, one round a second.
    judge_yield_lag_records: int = 50
    judge_busy_jobs: int = 50

    def __post_init__(self) -> None:
        super(EvalsConfig, self).__post_init__()
        check_key_setting("EVALS_ENCRYPTION_KEY", self.encryption_key)
        check_key_setting("EVALS_ENCRYPTION_KEY_PREVIOUS", self.encryption_key_previous)
        if min(self.judge_concurrency, self.judge_max_attempts, self.judge_busy_jobs) < 1:
            raise ConfigError("EVALS_JUDGE_CONCURRENCY, EVALS_JUDGE_MAX_ATTEMPTS and"
                              " EVALS_JUDGE_BUSY_JOBS must be ≥ 1")  # fmt: skip


def load_evals_config() -> EvalsConfig:
    return config.load(EvalsConfig, "EVALS_")
