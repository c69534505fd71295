"""Management routes in-process: failures around a project deletion are retryable 503s, never
500s (the real flows run end to end in tests/e2e/test_management.py)."""

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError

from services.gateway.state import GatewayState
from tests.support.fakes import InMemoryProjectStore
from tests.unit.gateway.conftest import basic

ORG_KEY = basic("pk-org", "sk-org")


class Announcer:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.announced: list[tuple[str, str]] = []

    async def announce(self, org_id: str, project_id: str) -> None:
        if self.error is not None:
            raise self.error
        self.announced.append((org_id, project_id))


@pytest.fixture(autouse=True)
def deletable(store: InMemoryProjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async def mark_project_deleted(org_id: str, project_id: str) -> bool:
        return org_id == "o1" and project_id == "p1"

    monkeypatch.setattr(store, "mark_project_deleted", mark_project_deleted, raising=False)


async def test_a_deletion_answers_202_once_announced(
    client: httpx.AsyncClient, state: GatewayState
) -> None:
    announcer = Announcer()
    state.deletions = announcer  # type: ignore[assignment]
    response = await client.delete("/api/public/projects/p1", headers=ORG_KEY)
    assert response.status_code == 202 and response.json()["success"] is True
    assert announcer.announced == [("o1", "p1")]


async def test_a_broker_that_cannot_take_the_announcement_is_a_503(
    client: httpx.AsyncClient, state: GatewayState
) -> None:
    state.deletions = Announcer(KafkaTimeoutError())  # type: ignore[assignment]
    response = await client.delete("/api/public/projects/p1", headers=ORG_KEY)
    assert response.status_code == 503
    assert response.json()["error"] == "ServiceUnavailableError"


async def test_an_unknown_project_is_a_404_before_anything_is_announced(
    client: httpx.AsyncClient, state: GatewayState
) -> None:
    announcer = Announcer()
    state.deletions = announcer  # type: ignore[assignment]
    response = await client.delete("/api/public/projects/elsewhere", headers=ORG_KEY)
    assert response.status_code == 404 and announcer.announced == []


async def test_a_nul_in_a_path_id_is_a_404_not_a_store_error(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/public/projects/p%001", headers=ORG_KEY)
    assert response.status_code == 404
