"""Models: built-in prices are listed, a project model is created, prices new observations ahead
of the built-ins, and is deleted; bad definitions are 400."""

import uuid

import httpx
import pytest

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)


async def generation_cost(client: httpx.AsyncClient, model: str) -> float | None:
    trace_id = uuid.uuid4().hex
    batch = {"batch": [{
        "id": trace_id, "type": "generation-create", "timestamp": "2026-11-22T10:00:00Z",
        "body": {"id": f"{trace_id}-g", "traceId": trace_id, "model": model,
                 "usageDetails": {"input": 1000, "output": 100}},
    }]}  # fmt: skip
    (await client.post("/api/public/ingestion", json=batch)).raise_for_status()
    response = await eventually(
        lambda: client.get(f"/api/public/observations/{trace_id}-g"), lambda r: r.status_code == 200
    )
    cost: float | None = response.json()["calculatedTotalCost"]
    return cost


async def test_project_models_price_ahead_of_the_built_ins(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        listed = (await client.get("/api/public/models", params={"limit": 100})).json()
        assert listed["meta"]["totalItems"] >= 167
        gpt = next(m for m in listed["data"] if m["modelName"] == "gpt-4o")
        assert gpt["isLangfuseManaged"] is True and gpt["inputPrice"] == 2.5e-06

        assert await generation_cost(client, "gpt-4o") == pytest.approx(0.0035)
        created = await client.post(
            "/api/public/models",
            json={"modelName": "my-gpt", "matchPattern": "(?i)^gpt-4o$",
                  "inputPrice": 0.001, "outputPrice": 0.002},
        )  # fmt: skip
        assert created.status_code == 200
        model = created.json()
        assert model["isLangfuseManaged"] is False
        assert model["prices"] == {"input": {"price": 0.001}, "output": {"price": 0.002}}
        assert (await client.get(f"/api/public/models/{model['id']}")).json()["id"] == model["id"]
        assert await generation_cost(client, "gpt-4o") == pytest.approx(1000 * 0.001 + 100 * 0.002)

        assert (await client.delete(f"/api/public/models/{model['id']}")).status_code == 200
        assert (await client.get(f"/api/public/models/{model['id']}")).status_code == 404
        assert (await client.delete(f"/api/public/models/{gpt['id']}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"matchPattern": "x"},
        {"modelName": "m", "matchPattern": "("},
        {"modelName": "m", "matchPattern": "m", "totalPrice": 1, "inputPrice": 1},
        {"modelName": "m", "matchPattern": "m", "inputPrice": -1},
        {"modelName": "m", "matchPattern": "m", "pricingTiers": [{"name": "a", "prices": {}}]},
    ],
)
async def test_bad_model_definitions_are_400(stack: Stack, body: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/models", json=body)
    assert response.status_code == 400
