"""Score configs through the gateway and the Python SDK 5, and scores checked against them before
they are acknowledged: on `/ingestion` (that event's 400 inside the 207, the rest kept) and on
`POST /scores`; a config change holds for the very next score; projects never share configs."""

import asyncio
import signal
import uuid
from typing import Any

import httpx
import orjson
import pytest
from langfuse import Langfuse
from langfuse.api import ConfigCategory, NotFoundError

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from libs.common.rpc import check_health, make_channel
from libs.common.scope import ProjectScope
from tests.e2e.admin import new_project
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack, free_port, wait_healthy
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
GOOD_BAD = [{"label": "good", "value": 1}, {"label": "bad", "value": 0}]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/public/score-configs", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def scores_of(client: httpx.AsyncClient, trace_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/public/v2/scores", params={"traceId": trace_id})
    return response.json()["data"]  # type: ignore[no-any-return]


def envelope(body: dict[str, Any], kind: str = "score-create") -> dict[str, Any]:
    return {"id": unique("event"), "type": kind, "timestamp": "2026-11-30T10:00:00Z", "body": body}


async def test_every_data_type_is_created_and_read_back(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        numeric = await create(client, name=unique("accuracy"), dataType="NUMERIC", minValue=0,
                               maxValue=1, description="share of correct answers")  # fmt: skip
        categorical = await create(
            client, name=unique("tone"), dataType="CATEGORICAL", categories=GOOD_BAD
        )
        boolean = await create(client, name=unique("correct"), dataType="BOOLEAN")
        text = await create(client, name=unique("feedback"), dataType="TEXT")
        created = [numeric, categorical, boolean, text]

        assert (numeric["minValue"], numeric["maxValue"]) == (0, 1)
        assert numeric["description"] == "share of correct answers"
        assert categorical["categories"] == GOOD_BAD
        assert boolean["categories"] == [{"label": "True", "value": 1},
                                         {"label": "False", "value": 0}]  # fmt: skip
        assert text["categories"] is None and text["minValue"] is None
        for config in created:
            assert config["projectId"] == "e2e-project" and config["isArchived"] is False
            assert set(config) == {"id", "name", "dataType", "isArchived", "minValue", "maxValue",
                                   "categories", "description", "projectId", "createdAt",
                                   "updatedAt"}  # fmt: skip
            fetched = await client.get(f"/api/public/score-configs/{config['id']}")
            assert fetched.json() == config

        listed = (await client.get("/api/public/score-configs", params={"limit": 100})).json()
        assert {c["id"] for c in created} <= {c["id"] for c in listed["data"]}
        total = listed["meta"]["totalItems"]
        assert listed["meta"] == {"page": 1, "limit": 100, "totalItems": total, "totalPages": 1}
        paged = await client.get("/api/public/score-configs", params={"limit": 1, "page": 2})
        assert paged.json()["meta"]["totalPages"] == total and len(paged.json()["data"]) == 1
        newest = (await client.get("/api/public/score-configs", params={"limit": 1})).json()
        assert newest["data"][0]["id"] == text["id"]  # newest first


async def test_patch_archives_renames_and_rebounds_checked_like_a_create(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        config = await create(client, name=unique("n"), dataType="NUMERIC", minValue=0, maxValue=1)
        path = f"/api/public/score-configs/{config['id']}"
        archived = (await client.patch(path, json={"isArchived": True, "maxValue": 5})).json()
        assert (archived["isArchived"], archived["maxValue"], archived["minValue"]) == (True, 5, 0)
        assert archived["updatedAt"] >= config["updatedAt"]
        assert archived["createdAt"] == config["createdAt"]
        assert (await client.get(path)).json() == archived
        renamed = (await client.patch(path, json={"name": "renamed", "description": "d"})).json()
        assert (renamed["name"], renamed["description"], renamed["isArchived"]) == (
            "renamed", "d", True)  # fmt: skip
        for body in ({"minValue": 9}, {"categories": GOOD_BAD}, {}, {"name": "x" * 1001}):
            refused = await client.patch(path, json=body)
            assert refused.status_code == 400, body
            assert refused.json()["error"] == "InvalidRequestError"
        assert (await client.get(path)).json() == renamed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "n", "dataType": "NUMERIC", "minValue": 2, "maxValue": 1}, "greater than"),
        ({"name": "n", "dataType": "CATEGORICAL"}, "categories are required"),
        ({"name": "n", "dataType": "CATEGORICAL",
          "categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}]},
         "duplicate category label"),
        ({"name": "n", "dataType": "CATEGORICAL",
          "categories": [{"label": "a", "value": 1}, {"label": "b", "value": 1}]},
         "duplicate category value"),
        ({"name": "n", "dataType": "BOOLEAN", "categories": GOOD_BAD}, "set automatically"),
        ({"name": "x" * 1001, "dataType": "TEXT"}, "at most 35 characters"),
        ({"name": "n", "dataType": "DATE"}, "dataType must be one of"),
        ({"dataType": "TEXT"}, "name is required"),
    ],
)  # fmt: skip
async def test_bad_configs_are_400_naming_the_field(
    stack: Stack, body: dict[str, Any], reason: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/score-configs", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidRequestError"
    assert reason in response.json()["message"]


async def test_unknown_configs_and_bad_requests_are_json_errors(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        for method in ("GET", "PATCH"):
            response = await client.request(
                method, "/api/public/score-configs/no-such-config", json={"isArchived": True}
            )
            assert response.status_code == 404
            assert response.json()["error"] == "LangfuseNotFoundError"
        # An id no row can hold (PostgreSQL text has no NUL) is a plain 404 too, or a 400 to change.
        assert (await client.get("/api/public/score-configs/a%00")).status_code == 404
        nul_patch = await client.patch("/api/public/score-configs/a%00", json={"isArchived": True})
        assert nul_patch.status_code in (400, 404)
        not_json = await client.post("/api/public/score-configs", content=b"{name")
        assert not_json.status_code == 400
        too_big = await client.get("/api/public/score-configs", params={"limit": 101})
        assert too_big.status_code == 400


def test_the_python_sdk_5_manages_score_configs(stack: Stack) -> None:
    api = Langfuse(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url,
                   tracing_enabled=False).api  # fmt: skip
    numeric = api.score_configs.create(
        name=unique("sdk-n"), data_type="NUMERIC", min_value=0.0, max_value=10.0
    )
    categories = [ConfigCategory(label=c["label"], value=c["value"]) for c in GOOD_BAD]
    categorical = api.score_configs.create(
        name=unique("sdk-c"), data_type="CATEGORICAL", categories=categories
    )
    boolean = api.score_configs.create(name=unique("sdk-b"), data_type="BOOLEAN")
    text = api.score_configs.create(name=unique("sdk-t"), data_type="TEXT", description="free")
    assert (numeric.min_value, numeric.max_value, numeric.is_archived) == (0.0, 10.0, False)
    assert [(c.label, c.value) for c in categorical.categories or []] == [("good", 1), ("bad", 0)]
    assert [c.label for c in boolean.categories or []] == ["True", "False"]
    assert (text.data_type, text.description) == ("TEXT", "free")
    assert api.score_configs.get_by_id(categorical.id) == categorical
    listed = api.score_configs.get(page=1, limit=100)
    assert {numeric.id, categorical.id, boolean.id, text.id} <= {c.id for c in listed.data}
    archived = api.score_configs.update(numeric.id, is_archived=True)
    assert archived.is_archived is True and archived.max_value == 10.0
    with pytest.raises(NotFoundError):
        api.score_configs.get_by_id("no-such-config")


async def test_sdk5_scores_naming_a_config_are_checked_and_read_back(stack: Stack) -> None:
    public_key, secret_key = new_project(stack)  # a client of its own (the SDK keeps one per key)
    langfuse = Langfuse(public_key=public_key, secret_key=secret_key, host=stack.gateway_url)
    try:
        config = langfuse.api.score_configs.create(
            name=unique("sdk-tone"),
            data_type="CATEGORICAL",
            categories=[
                ConfigCategory(label="good", value=1),
                ConfigCategory(label="bad", value=0),
            ],
        )
        trace_id = langfuse.create_trace_id()
        for value in ("bad", "great"):  # "great" is no category: refused, never stored
            langfuse.create_score(name=config.name, value=value, trace_id=trace_id,
                                  config_id=config.id, data_type="CATEGORICAL")  # fmt: skip
        await asyncio.to_thread(langfuse.flush)

        async def scores() -> list[Any]:
            page = await asyncio.to_thread(langfuse.api.scores.get_many, trace_id=trace_id)
            return list(page.data)

        stored = await eventually(scores, lambda found: len(found) == 1)
        assert (stored[0].value, stored[0].config_id) == ("bad", config.id)
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, auth=(public_key, secret_key)
        ) as c:
            v2 = await scores_of(c, trace_id)
        assert [(s["value"], s["stringValue"]) for s in v2] == [(0, "bad")]
    finally:
        await asyncio.to_thread(langfuse.shutdown)


async def test_violating_scores_are_refused_with_their_reason_and_the_rest_kept(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        numeric = await create(client, name=unique("n"), dataType="NUMERIC", minValue=0,
                               maxValue=1)  # fmt: skip
        categorical = await create(
            client, name=unique("c"), dataType="CATEGORICAL", categories=GOOD_BAD
        )
        boolean = await create(client, name=unique("b"), dataType="BOOLEAN")
        text = await create(client, name=unique("t"), dataType="TEXT")
        archived = await create(client, name=unique("a"), dataType="NUMERIC")
        path = f"/api/public/score-configs/{archived['id']}"
        assert (await client.patch(path, json={"isArchived": True})).status_code == 200
        trace_id = uuid.uuid4().hex

        def scored(config: dict[str, Any], value: Any, **fields: Any) -> dict[str, Any]:
            body = {"traceId": trace_id, "name": config["name"], "configId": config["id"],
                    "value": value, **fields}  # fmt: skip
            return envelope(body)

        valid = {
            "numeric": scored(numeric, 0.75),
            "categorical": scored(categorical, "good"),
            "boolean": scored(boolean, 1, dataType="BOOLEAN"),
            "text": scored(text, "looks right"),
            "unconfigured": envelope({"traceId": trace_id, "name": "free", "value": 3}),
        }
        violating = {
            "wrong data type": (scored(numeric, 1, dataType="BOOLEAN"), "does not match"),
            "out of range": (scored(numeric, 1.5), "above the config's maximum"),
            "unknown category": (scored(categorical, "great"), "not one of the config's categ"),
            "not a boolean": (scored(boolean, 2), "a BOOLEAN score is 0 or 1"),
            "archived config": (scored(archived, 0.5), "is archived"),
            "unknown config": (scored({**numeric, "id": "no-such-config"}, 0.5), "not found"),
            "name mismatch": (scored(numeric, 0.5, name="other"), "must be the config's name"),
        }
        trace = envelope({"id": trace_id, "name": "configured"}, kind="trace-create")
        batch = [trace, *valid.values(), *(event for event, _ in violating.values())]
        response = await client.post("/api/public/ingestion", json={"batch": batch})
        assert response.status_code == 207
        result = response.json()
        assert {s["id"] for s in result["successes"]} == {e["id"] for e in [trace, *valid.values()]}
        assert {s["status"] for s in result["successes"]} == {201}
        errors = {e["id"]: e for e in result["errors"]}
        for case, (event, reason) in violating.items():
            assert errors[event["id"]]["status"] == 400, case
            assert reason in errors[event["id"]]["error"], (case, errors[event["id"]])

        stored = await eventually(lambda: scores_of(client, trace_id), lambda s: len(s) == 5)
    by_name = {score["name"]: score for score in stored}
    assert by_name[numeric["name"]]["value"] == 0.75
    assert by_name[numeric["name"]]["configId"] == numeric["id"]
    assert by_name[numeric["name"]]["dataType"] == "NUMERIC"  # inferred from the config
    category = by_name[categorical["name"]]
    assert (category["dataType"], category["value"], category["stringValue"]) == (
        "CATEGORICAL", 1, "good")  # fmt: skip
    assert (by_name[boolean["name"]]["value"], by_name[boolean["name"]]["stringValue"]) == (
        1, "True")  # fmt: skip
    assert by_name[text["name"]]["dataType"] == "TEXT"
    assert by_name["free"]["value"] == 3


async def test_post_scores_checks_objects_and_array_items(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        config = await create(client, name=unique("n"), dataType="NUMERIC", maxValue=10)
        trace_id = uuid.uuid4().hex
        base = {"traceId": trace_id, "name": config["name"], "configId": config["id"]}
        refused = await client.post("/api/public/scores", json={**base, "value": 11})
        assert refused.status_code == 400
        assert "above the config's maximum" in refused.json()["message"]
        accepted = await client.post("/api/public/scores", json={**base, "value": 10})
        assert accepted.status_code == 200
        mixed = await client.post(
            "/api/public/scores", json=[{**base, "value": 1}, {**base, "value": "high"}]
        )
        assert mixed.status_code == 207
        assert (mixed.json()["accepted"], mixed.json()["rejected"]) == (1, 1)
        assert "needs a number" in mixed.json()["errors"][0]["message"]
        bearer = {"Authorization": f"Bearer {PUBLIC_KEY}"}
        widget = await client.post(
            "/api/public/scores", json={**base, "value": 99}, headers=bearer, auth=None
        )
        assert widget.status_code == 400
        stored = await eventually(lambda: scores_of(client, trace_id), lambda s: len(s) == 2)
    assert sorted(score["value"] for score in stored) == [1, 10]


async def test_a_config_change_holds_for_the_very_next_score(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        config = await create(client, name=unique("n"), dataType="NUMERIC", maxValue=10)
        path = f"/api/public/score-configs/{config['id']}"
        score = {"traceId": uuid.uuid4().hex, "name": config["name"], "configId": config["id"]}

        async def status(value: float) -> int:
            response = await client.post("/api/public/scores", json={**score, "value": value})
            return response.status_code

        assert await status(8) == 200  # the config is now cached by ingestion
        assert (await client.patch(path, json={"maxValue": 5})).status_code == 200
        assert await status(8) == 400
        assert (await client.patch(path, json={"isArchived": True})).status_code == 200
        assert await status(1) == 400
        assert (await client.patch(path, json={"isArchived": False})).status_code == 200
        assert await status(1) == 200


async def test_a_config_change_reaches_every_ingestion_replica_before_it_is_answered(
    stack: Stack,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    replica = stack.start("ingestion", INGESTION_GRPC_PORT=str(port))
    try:
        await eventually(lambda: check_health(address), lambda s: s == "SERVING", timeout=30)
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client,
            make_channel(address, token=stack.env["INTERNAL_AUTH_TOKEN"]) as channel,
        ):
            config = await create(client, name=unique("n"), dataType="NUMERIC", maxValue=10)
            path = f"/api/public/score-configs/{config['id']}"
            score = {"traceId": uuid.uuid4().hex, "name": config["name"], "configId": config["id"]}
            other_replica = ingestion_pb2_grpc.IngestionServiceStub(channel)

            async def errors_on_other_replica(value: float) -> list[str]:
                reply = await other_replica.IngestScores(
                    ingestion_pb2.IngestScoresRequest(body=orjson.dumps({**score, "value": value})),
                    metadata=ProjectScope(PROJECT_ID).metadata(),
                    timeout=10,
                )
                return [error.message for error in reply.errors]

            # Both replicas have checked a score against the config, so both have it cached.
            assert await errors_on_other_replica(8) == []
            assert (await client.post("/api/public/scores", json={**score, "value": 8})).is_success
            assert (await client.patch(path, json={"maxValue": 5})).status_code == 200
            assert "above the config's maximum 5.0" in (await errors_on_other_replica(8))[0]
            assert (await client.patch(path, json={"isArchived": True})).status_code == 200
            assert "is archived" in (await errors_on_other_replica(1))[0]
    finally:
        replica.send_signal(signal.SIGTERM)
        await asyncio.to_thread(replica.wait, 30)


async def test_projects_never_see_or_use_each_others_configs(stack: Stack) -> None:
    public_key, secret_key = new_project(stack)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as mine,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=(public_key, secret_key)) as theirs,
    ):
        config = await create(mine, name=unique("private"), dataType="NUMERIC")
        path = f"/api/public/score-configs/{config['id']}"
        assert (await theirs.get(path)).status_code == 404
        assert (await theirs.patch(path, json={"isArchived": True})).status_code == 404
        listed = (await theirs.get("/api/public/score-configs")).json()
        assert config["id"] not in {c["id"] for c in listed["data"]}
        score = {"traceId": uuid.uuid4().hex, "name": config["name"], "configId": config["id"],
                 "value": 1}  # fmt: skip
        used = await theirs.post("/api/public/scores", json=score)
        assert used.status_code == 400 and "not found" in used.json()["message"]
        assert (await mine.get(path)).json()["isArchived"] is False


async def test_without_evals_only_scores_naming_a_config_wait(stack: Stack) -> None:
    """Runs last: stops the evals service, then starts it again."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = uuid.uuid4().hex
        plain = {"traceId": trace_id, "name": "free", "value": 1}
        configured = {**plain, "configId": unique("never-seen")}
        evals = stack.processes["evals"]
        evals.terminate()
        await asyncio.to_thread(evals.wait, 30)
        try:
            assert (await client.post("/api/public/scores", json=plain)).status_code == 200
            refused = await client.post("/api/public/scores", json=configured)
            assert refused.status_code == 503
            assert refused.json()["error"] == "ServiceUnavailableError"
            batch = {"batch": [envelope(plain), envelope(configured)]}
            result = (await client.post("/api/public/ingestion", json=batch)).json()
            assert len(result["successes"]) == 1
            assert [e["status"] for e in result["errors"]] == [503]
        finally:
            stack.processes["evals"] = stack.start("evals")
            await wait_healthy(stack)
