import httpx

from services.gateway.state import GatewayState
from tests.support.fakes import InMemoryProjectStore
from tests.unit.gateway.conftest import MAX_BODY, basic


async def test_health_needs_no_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/health")
    assert response.status_code == 200
    assert response.json() == {"status": "OK", "version": "9.9.9"}


async def test_health_fails_when_asked_and_the_database_is_down(
    client: httpx.AsyncClient, store: InMemoryProjectStore
) -> None:
    store.healthy = False
    assert (await client.get("/api/public/health")).status_code == 200
    response = await client.get("/api/public/health?failIfDatabaseUnavailable=true")
    assert response.status_code == 503


async def test_ready_fails_while_backends_are_unreachable_and_once_draining(
    client: httpx.AsyncClient, state: GatewayState
) -> None:
    # The unit tests' backends sit at 127.0.0.1:1, where nothing listens (a running stack's
    # /ready answering 200 is tested end to end).
    response = await client.get("/api/public/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "Backend not serving: ingestion, query, prompts, evals"
    assert "127.0.0.1" not in response.text
    state.draining = True
    response = await client.get("/api/public/ready")
    assert (response.status_code, response.json()["status"]) == (503, "Draining")


async def test_projects_has_the_shape_the_sdks_parse(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/projects", headers=basic("pk-1", "sk-1"))
    assert response.json() == {
        "data": [
            {
                "id": "p1",
                "name": "Project One",
                "organization": {"id": "o1", "name": "Org One"},
                "metadata": {},
                "retentionDays": None,
            }
        ]
    }


async def test_unknown_routes_are_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"message": "Route not found", "error": "LangfuseNotFoundError"}


async def test_wrong_method_is_405_json(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/public/health")
    assert response.status_code == 405
    assert response.json()["error"] == "MethodNotAllowedError"


async def test_a_body_over_the_limit_is_413_before_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/public/projects", content=b"x" * (MAX_BODY + 1), headers=basic("pk-1", "sk-1")
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLargeError"
