import httpx
import pytest

from services.gateway.auth import Authenticator, ExpiringLru
from services.gateway.errors import ApiError
from services.gateway.state import GatewayState
from tests.support.fakes import InMemoryProjectStore
from tests.unit.gateway.conftest import SALT, basic

HINT = ". Confirm that you've configured the correct host."


async def test_basic_auth_resolves_the_project(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/projects", headers=basic("pk-1", "sk-1"))
    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "p1"


async def test_missing_header_is_401_with_langfuse_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/projects")
    assert response.status_code == 401
    assert response.json() == {
        "message": "No authorization header" + HINT,
        "error": "UnauthorizedError",
    }


async def test_wrong_secret_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/projects", headers=basic("pk-1", "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "UnauthorizedError"


async def test_malformed_credentials_are_401_not_500(client: httpx.AsyncClient) -> None:
    for header in ["Basic !!!not-base64", "Basic " + "bm9jb2xvbg==", "Token abc", "Basic"]:
        response = await client.get("/api/public/projects", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_a_mismatched_public_key_is_tolerated_like_langfuse(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/public/projects", headers=basic("pk-other", "sk-1"))
    assert response.status_code == 200


async def test_organization_keys_are_refused_on_project_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/projects", headers=basic("pk-org", "sk-org"))
    assert response.status_code == 403
    assert "organization key" in response.json()["message"]


async def test_bearer_public_key_is_refused_outside_score_creation(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/public/projects", headers={"Authorization": "Bearer pk-1"})
    assert response.status_code == 401
    assert response.json()["message"].startswith("Access Scope Denied")


async def test_successful_lookups_are_cached(
    client: httpx.AsyncClient, store: InMemoryProjectStore, state: GatewayState
) -> None:
    for _ in range(5):
        await client.get("/api/public/projects", headers=basic("pk-1", "sk-1"))
    assert store.lookups == 1


async def test_failed_lookups_are_cached_too(
    client: httpx.AsyncClient, store: InMemoryProjectStore
) -> None:
    for _ in range(5):
        await client.get("/api/public/projects", headers=basic("pk-1", "bad"))
    assert store.lookups == 1


async def test_non_ascii_credentials_are_401_not_500(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/public/projects", headers={b"Authorization": "Basic é".encode("latin-1")}
    )
    assert response.status_code == 401


async def test_a_flood_of_bad_credentials_cannot_evict_a_valid_key(
    store: InMemoryProjectStore,
) -> None:
    auth = Authenticator(store, SALT, cache_seconds=30, max_cached=100)  # type: ignore[arg-type]
    valid = basic("pk-1", "sk-1")["Authorization"]
    await auth.authenticate(valid)
    for n in range(1_000):
        with pytest.raises(ApiError):
            await auth.authenticate(basic("pk-1", f"guess-{n}")["Authorization"])
    lookups = store.lookups
    assert (await auth.authenticate(valid)).key.project_id == "p1"
    assert store.lookups == lookups, "the valid key is still cached"
    # Both caches stay within their bound however many distinct headers arrive.
    assert len(auth.failures) == 100 and len(auth.successes) == 1


async def test_a_repeated_bad_credential_costs_one_lookup(store: InMemoryProjectStore) -> None:
    auth = Authenticator(store, SALT, cache_seconds=30)  # type: ignore[arg-type]
    for _ in range(50):
        with pytest.raises(ApiError) as raised:
            await auth.authenticate(basic("pk-1", "wrong")["Authorization"])
        assert raised.value.status == 401
    assert store.lookups == 1


def test_the_cache_evicts_the_least_recently_used_and_expires_entries() -> None:
    cache: ExpiringLru[str] = ExpiringLru(2)
    cache.put("a", "A", until=10)
    cache.put("b", "B", until=10)
    assert cache.get("a", now=0) == "A"  # "b" is now the least recently used
    cache.put("c", "C", until=10)
    assert cache.get("b", now=0) is None
    assert cache.get("a", now=0) == "A"
    assert cache.get("c", now=11) is None
    assert len(cache) == 1
