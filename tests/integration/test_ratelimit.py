"""Per-project rate limits against the real Redis: the buckets, their isolation, the 429 a limited
request gets, and the limiter stepping aside when Redis is down."""

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis

from services.gateway import clients
from services.gateway.auth import Authenticator
from services.gateway.keys import hash_secret
from services.gateway.ratelimit import Bucket, Limit, RateLimiter, connect
from services.gateway.server import build_app
from services.gateway.state import GatewayState
from services.gateway.store import ApiKey, KeyScope, Project
from tests.integration.conftest import ENV, unique
from tests.support.fakes import InMemoryProjectStore, NoCache

# So slow that no token comes back during a test: the outcome never depends on timing.
NO_REFILL = 0.001


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    client = redis.from_url(ENV["GATEWAY_REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
async def namespace(client: redis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its buckets are deleted afterwards."""
    name = unique("test.ratelimit")
    yield name
    keys = [key async for key in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)


def limiter(client: redis.Redis, namespace: str, burst: int = 3) -> RateLimiter:
    limits = {bucket: Limit(NO_REFILL, burst) for bucket in Bucket}
    return RateLimiter(client, limits, namespace=namespace)


async def test_a_project_gets_its_burst_then_waits(client: redis.Redis, namespace: str) -> None:
    limits = limiter(client, namespace)
    allowed = [await limits.retry_after("p1", Bucket.INGESTION) for _ in range(3)]
    assert allowed == [None, None, None]
    retry_after = await limits.retry_after("p1", Bucket.INGESTION)
    # One token comes back after 1 / 0.001 s.
    assert retry_after is not None and 990 <= retry_after <= 1000


async def test_projects_and_kinds_of_route_have_buckets_of_their_own(
    client: redis.Redis, namespace: str
) -> None:
    limits = limiter(client, namespace, burst=1)
    assert await limits.retry_after("p1", Bucket.INGESTION) is None
    assert await limits.retry_after("p1", Bucket.INGESTION) is not None
    assert await limits.retry_after("p2", Bucket.INGESTION) is None
    assert await limits.retry_after("p1", Bucket.API) is None


async def test_every_replica_draws_from_the_same_bucket(
    client: redis.Redis, namespace: str
) -> None:
    replicas = [limiter(client, namespace, burst=4) for _ in range(2)]
    outcomes = [await replicas[n % 2].retry_after("p1", Bucket.API) for n in range(6)]
    assert outcomes[:4] == [None] * 4
    assert all(outcome is not None for outcome in outcomes[4:])


async def test_a_rate_of_zero_is_no_limit(client: redis.Redis, namespace: str) -> None:
    limits = RateLimiter(client, {Bucket.API: Limit(0, 0)}, namespace=namespace)
    for _ in range(20):
        assert await limits.retry_after("p1", Bucket.API) is None
    assert [key async for key in client.scan_iter(f"{namespace}:*")] == []


async def test_without_redis_requests_go_through() -> None:
    down = connect("redis://127.0.0.1:1/0")
    limits = RateLimiter(down, {Bucket.API: Limit(NO_REFILL, 1)})
    for _ in range(3):
        assert await limits.retry_after("p1", Bucket.API) is None
    await down.aclose()


@pytest.fixture
async def gateway(client: redis.Redis, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app with a limit of two requests per project and kind of route."""
    store = InMemoryProjectStore()
    store.projects["p1"] = Project("p1", "Project One", "o1", "Org One", {}, None)
    store.keys_by_hash[hash_secret("sk-1", "salt")] = ApiKey("pk-1", KeyScope.PROJECT, "o1", "p1")
    backends = clients.connect(*["127.0.0.1:1"] * 4, token="integration-internal-token")
    state = GatewayState(
        store=store,  # type: ignore[arg-type]
        authenticator=Authenticator(store, "salt", cache_seconds=30),  # type: ignore[arg-type]
        backends=backends,
        backend_timeout=1.0,
        version="9.9.9",
        prompt_cache=NoCache(),  # type: ignore[arg-type]
        rate_limiter=limiter(client, namespace, burst=2),
    )
    transport = httpx.ASGITransport(app=build_app(state, 1024))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http
    await backends.close()


async def test_over_the_limit_is_429_in_langfuse_shape_with_retry_after(
    gateway: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"pk-1:sk-1").decode()}
    statuses = [(await gateway.get("/api/public/projects", headers=auth)).status_code]
    statuses.append((await gateway.get("/api/public/projects", headers=auth)).status_code)
    limited = await gateway.get("/api/public/projects", headers=auth)
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert limited.json() == {"message": "Rate limit exceeded", "error": "TooManyRequestsError"}
    assert int(limited.headers["Retry-After"]) >= 1
    # Bad credentials are refused before the limit, so they cannot use up a project's bucket.
    wrong = {"Authorization": "Basic " + base64.b64encode(b"pk-1:wrong").decode()}
    assert (await gateway.get("/api/public/projects", headers=wrong)).status_code == 401
