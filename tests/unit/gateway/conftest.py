import base64
import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis

from services.gateway import clients
from services.gateway.auth import Authenticator
from services.gateway.keys import hash_secret
from services.gateway.ratelimit import RateLimiter
from services.gateway.server import build_app
from services.gateway.state import GatewayState
from services.gateway.store import ApiKey, KeyScope, Project
from tests.support.fakes import InMemoryProjectStore, NoCache, RecordingPromptsStub

SALT = "unit-salt"
MAX_BODY = 1024


def basic(public_key: str, secret_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def store() -> InMemoryProjectStore:
    store = InMemoryProjectStore()
    store.projects["p1"] = Project("p1", "Project One", "o1", "Org One", {}, None)
    store.keys_by_hash[hash_secret("sk-1", SALT)] = ApiKey("pk-1", KeyScope.PROJECT, "o1", "p1")
    store.keys_by_hash[hash_secret("sk-org", SALT)] = ApiKey(
        "pk-org", KeyScope.ORGANIZATION, "o1", None
    )
    return store


@pytest.fixture
def prompts_stub() -> RecordingPromptsStub:
    return RecordingPromptsStub()


@pytest.fixture
async def state(
    store: InMemoryProjectStore, prompts_stub: RecordingPromptsStub
) -> AsyncIterator[GatewayState]:
    connected = clients.connect(
        "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", token="unit-internal-token"
    )
    backends = dataclasses.replace(connected, prompts=prompts_stub)  # type: ignore[arg-type]
    yield GatewayState(
        store=store,  # type: ignore[arg-type]
        authenticator=Authenticator(store, SALT, cache_seconds=30),  # type: ignore[arg-type]
        backends=backends,
        backend_timeout=1.0,
        version="9.9.9",
        prompt_cache=NoCache(),  # type: ignore[arg-type]
        # No limits: the rate limit's own tests use the real Redis (tests/integration).
        rate_limiter=RateLimiter(redis.Redis(), {}),
    )
    await backends.close()


@pytest.fixture
async def client(state: GatewayState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(state, MAX_BODY))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
