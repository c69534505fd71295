from dataclasses import dataclass

from libs.common import config
from libs.common.config import InternalAuthSettings, env
from libs.common.kafka import KafkaClientSettings


@dataclass(frozen=True, slots=True)
class InitSettings:
    """Langfuse's headless-initialization variables: applied (idempotently) at every start."""

    org_id: str = env("LANGFUSE_INIT_ORG_ID", "")
    org_name: str = env("LANGFUSE_INIT_ORG_NAME", "")
    project_id: str = env("LANGFUSE_INIT_PROJECT_ID", "")
    project_name: str = env("LANGFUSE_INIT_PROJECT_NAME", "")
    public_key: str = env("LANGFUSE_INIT_PROJECT_PUBLIC_KEY", "")
    secret_key: str = env("LANGFUSE_INIT_PROJECT_SECRET_KEY", "")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig(KafkaClientSettings, InternalAuthSettings):
    database_url: str
    # Server-side key for hashing API secrets; changing it invalidates every stored key.
    api_key_salt: str
    # The gateway's own Redis keys: the prompt response cache and its generation tokens, and the
    # rate limits' buckets.
    redis_url: str
    ingestion_addr: str = env("INGESTION_ADDR")
    query_addr: str = env("QUERY_ADDR")
    prompts_addr: str = env("PROMPTS_ADDR")
    evals_addr: str = env("EVALS_ADDR")
    http_host: str = "0.0.0.0"
    http_port: int = 3000
    metrics_port: int = 0
    max_body_bytes: int = 5 * 1024 * 1024
    # Slow clients: a connection must send its request headers within this many seconds (of
    # connecting, or of its previous response) and the body within body_timeout_seconds of them.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    auth_cache_seconds: float = 30.0
    # After SIGTERM, /ready fails for this long before the server stops accepting, so load
    # balancers stop routing here first.
    drain_seconds: float = 5.0
    backend_timeout_seconds: float = 30.0
    # Per-project token buckets in Redis (services/gateway/ratelimit.py): requests per second and
    # burst, one pair for ingestion (/ingestion, /otel, POST /scores), one for every other
    # authenticated route. A rate of 0 turns that limit off.
    rate_limit_ingestion_per_second: float = 1000.0
    rate_limit_ingestion_burst: int = 2000
    rate_limit_api_per_second: float = 500.0
    rate_limit_api_burst: int = 1000


def load_gateway_config() -> GatewayConfig:
    return config.load(GatewayConfig, "GATEWAY_")


def load_init_settings() -> InitSettings:
    return config.load(InitSettings, "")
