"""Score reads (v2 pages, v3 cursors) and deletions of scores and traces."""

import uuid
from typing import Any

import aioboto3
import httpx

from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack
from tests.e2e.event_log import LoggedEvents
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)


async def traced(client: httpx.AsyncClient) -> str:
    trace_id = uuid.uuid4().hex
    batch = {"batch": [
        {"id": f"{trace_id}-t", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
         "body": {"id": trace_id, "name": "scored"}},
        {"id": f"{trace_id}-s", "type": "span-create", "timestamp": "2026-11-22T10:00:00Z",
         "body": {"id": f"{trace_id}-span", "traceId": trace_id}},
    ]}  # fmt: skip
    (await client.post("/api/public/ingestion", json=batch)).raise_for_status()
    return trace_id


async def scores_of(client: httpx.AsyncClient, trace_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/public/v2/scores", params={"traceId": trace_id})
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_scores_read_back_in_v2_and_v3_shapes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = await traced(client)
        scores = [
            {"traceId": trace_id, "name": "accuracy", "value": 0.5},
            {"traceId": trace_id, "name": "label", "value": "good"},
            {"traceId": trace_id, "observationId": f"{trace_id}-span", "name": "ok",
             "value": 1, "dataType": "BOOLEAN"},
        ]  # fmt: skip
        assert (await client.post("/api/public/scores", json=scores)).status_code == 202
        v2 = await eventually(lambda: scores_of(client, trace_id), lambda s: len(s) == 3)
        by_name = {s["name"]: s for s in v2}
        assert by_name["accuracy"]["dataType"] == "NUMERIC" and by_name["accuracy"]["value"] == 0.5
        assert by_name["label"]["dataType"] == "CATEGORICAL"
        assert by_name["label"]["stringValue"] == "good"
        assert (by_name["ok"]["dataType"], by_name["ok"]["stringValue"]) == ("BOOLEAN", "True")
        one = (await client.get(f"/api/public/v2/scores/{by_name['ok']['id']}")).json()
        assert one["observationId"] == f"{trace_id}-span"

        params: dict[str, Any] = {"traceId": trace_id, "limit": 2}
        first = (await client.get("/api/public/v3/scores", params=params)).json()
        params["cursor"] = first["meta"]["cursor"]
        rest = (await client.get("/api/public/v3/scores", params=params)).json()
    v3 = first["data"] + rest["data"]
    assert len(v3) == 3 and "cursor" not in rest["meta"]
    subjects = {s["name"]: s["subject"] for s in v3}
    assert subjects["accuracy"] == {"kind": "trace", "id": trace_id}
    assert subjects["ok"] == {"kind": "observation", "id": f"{trace_id}-span", "traceId": trace_id}
    assert {s["name"]: s["value"] for s in v3}["ok"] is True


async def test_deleting_a_score_and_a_trace_hides_them(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = await traced(client)
        created = await client.post(
            "/api/public/scores", json={"traceId": trace_id, "name": "x", "value": 1}
        )
        score_id = created.json()["id"]
        await eventually(lambda: scores_of(client, trace_id), lambda s: len(s) == 1)
        assert (await client.delete(f"/api/public/scores/{score_id}")).status_code == 202
        assert await scores_of(client, trace_id) == []
        assert (await client.get(f"/api/public/v2/scores/{score_id}")).status_code == 404

        deleted = await client.delete(f"/api/public/traces/{trace_id}")
        assert deleted.json() == {"message": "Trace deleted successfully"}
        assert (await client.get(f"/api/public/traces/{trace_id}")).status_code == 404
        assert (await client.get(f"/api/public/observations/{trace_id}-span")).status_code == 404

        other = await traced(client)
        await eventually(
            lambda: client.get(f"/api/public/traces/{other}"), lambda r: r.status_code == 200
        )
        bulk = await client.request("DELETE", "/api/public/traces", json={"traceIds": [other]})
        assert bulk.json() == {"message": "Traces deleted successfully"}
        assert (await client.get(f"/api/public/traces/{other}")).status_code == 404
        bad = await client.request("DELETE", "/api/public/traces", json={"traceIds": "x"})
        assert bad.status_code == 400


async def test_deleting_a_trace_removes_its_events_from_the_event_log(stack: Stack) -> None:
    session = aioboto3.Session(
        aws_access_key_id=stack.env["S3_ACCESS_KEY"],
        aws_secret_access_key=stack.env["S3_SECRET_KEY"],
        region_name=stack.env["S3_REGION"],
    )
    bucket = stack.env["INGESTION_S3_BUCKET"]
    async with (
        session.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"]) as s3,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client,
    ):
        logged = LoggedEvents(s3, bucket, PROJECT_ID)
        # Both traces in one request: they share its event-log object.
        deleted, kept = uuid.uuid4().hex, uuid.uuid4().hex
        batch = [
            {"id": f"{t}-{kind}", "type": kind, "timestamp": "2026-11-22T10:00:00Z",
             "body": {"id": t} if kind == "trace-create" else {"id": f"{t}-s", "traceId": t}}
            for t in (deleted, kept)
            for kind in ("trace-create", "span-create")
        ]  # fmt: skip
        (await client.post("/api/public/ingestion", json={"batch": batch})).raise_for_status()
        assert await logged.count(deleted) == 2 and await logged.count(kept) == 2
        await eventually(
            lambda: client.get(f"/api/public/traces/{deleted}"), lambda r: r.status_code == 200
        )
        (await client.delete(f"/api/public/traces/{deleted}")).raise_for_status()
        await eventually(lambda: logged.count(deleted), lambda count: count == 0)
        assert await logged.count(kept) == 2


async def test_score_lists_filter_by_the_user_of_the_scored_trace(stack: Stack) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        mine, other = await traced(client), await traced(client)
        trace = {"id": f"{mine}-user", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
                 "body": {"id": mine, "userId": user}}  # fmt: skip
        (await client.post("/api/public/ingestion", json={"batch": [trace]})).raise_for_status()
        for trace_id in (mine, other):
            score = {"traceId": trace_id, "name": "by-user", "value": 1}
            (await client.post("/api/public/scores", json=score)).raise_for_status()

        async def of_user() -> list[dict[str, Any]]:
            response = await client.get("/api/public/v2/scores", params={"userId": user})
            return response.json()["data"]  # type: ignore[no-any-return]

        [score] = await eventually(of_user, lambda found: len(found) == 1)
    assert score["traceId"] == mine


async def test_a_late_event_of_a_deleted_trace_starts_it_afresh(stack: Stack) -> None:
    """The writer still remembered the trace when it was deleted: the late event merged into
    that memory and wrote the deleted fields back."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = await traced(client)
        await eventually(
            lambda: client.get(f"/api/public/traces/{trace_id}"), lambda r: r.status_code == 200
        )
        (await client.delete(f"/api/public/traces/{trace_id}")).raise_for_status()
        late = {"id": f"{trace_id}-late", "type": "trace-create",
                "timestamp": "2026-11-22T10:00:01Z",
                "body": {"id": trace_id, "userId": "u"}}  # fmt: skip
        (await client.post("/api/public/ingestion", json={"batch": [late]})).raise_for_status()
        found = await eventually(
            lambda: client.get(f"/api/public/traces/{trace_id}"), lambda r: r.status_code == 200
        )
    trace = found.json()
    assert trace["userId"] == "u"
    assert not trace["name"] and trace["observations"] == []
