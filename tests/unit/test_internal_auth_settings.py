"""INTERNAL_AUTH_TOKEN: one variable, without a service prefix, required by every service."""

import pytest

from libs.common.config import ConfigError, load
from services.evals.config import EvalsConfig
from services.gateway.config import GatewayConfig

GATEWAY = {
    "GATEWAY_DATABASE_URL": "postgresql://x",
    "GATEWAY_API_KEY_SALT": "salt",
    "GATEWAY_REDIS_URL": "redis://x",
    "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
    **{f"{name}_ADDR": "x:1" for name in ("INGESTION", "QUERY", "PROMPTS", "EVALS")},
}


def test_the_gateway_and_the_backends_read_the_same_variable() -> None:
    token = "a-shared-secret-of-some-length"
    gateway = load(GatewayConfig, "GATEWAY_", {**GATEWAY, "INTERNAL_AUTH_TOKEN": token})
    assert gateway.internal_auth_token == token
    with pytest.raises(ConfigError, match="INTERNAL_AUTH_TOKEN is required"):
        load(EvalsConfig, "EVALS_", {"EVALS_DATABASE_URL": "postgresql://x"})


def test_a_short_token_stops_the_service() -> None:
    with pytest.raises(ConfigError, match="INTERNAL_AUTH_TOKEN must be at least 16 characters"):
        load(GatewayConfig, "GATEWAY_", {**GATEWAY, "INTERNAL_AUTH_TOKEN": "short"})
