import httpx

from services.gateway.state import GatewayState
from tests.support.fakes import InMemoryProjectStore
from tests.unit.gateway.conftest import basic

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
