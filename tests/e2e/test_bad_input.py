"""Poison at the door: every value a ClickHouse column cannot hold is refused by the ingestion
API (a 400 naming the field, inside the 207 for batches), while the good events beside it, and
another project's sent at the same time, are stored. OTLP exports of the wrong shape are 400, a
gzip bomb is 413, bad model definitions are 400 and never stored, and a catastrophic pattern
matches in linear time."""

import asyncio
import gzip
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.admin import new_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
STAMP = "2026-11-22T10:00:00Z"


@pytest.fixture(scope="module")
def other_auth(stack: Stack) -> tuple[str, str]:
    """The keys of a second project, whose good events go out beside the first one's poison."""
    return new_project(stack, "bad-input")


def envelope(kind: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": kind, "timestamp": STAMP, "body": body, **extra}


def trace_event(trace_id: str) -> dict[str, Any]:
    return envelope("trace-create", {"id": trace_id, "name": "good"})


def generation(trace_id: str, **body: Any) -> dict[str, Any]:
    return envelope("generation-create", {"id": uuid.uuid4().hex, "traceId": trace_id, **body})


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"child": value}
    return value


async def stored(stack: Stack, auth: tuple[str, str], path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth) as client:
        response = await eventually(lambda: client.get(path), lambda r: r.status_code == 200)
    return response.json()  # type: ignore[no-any-return]


POISON = {
    "cost at the Decimal64(12) limit": (
        lambda t: generation(t, costDetails={"total": 1_000_000}), "costDetails.total"),
    "negative promptVersion": (
        lambda t: generation(t, promptName="p", promptVersion=-1), "body.promptVersion"),
    "promptVersion past UInt16": (
        lambda t: generation(t, promptName="p", promptVersion=65536), "body.promptVersion"),
    "usage summing past 2^64": (
        lambda t: generation(t, usageDetails={"a": 2**63 - 1, "b": 2**63 - 1, "c": 2}),
        "usageDetails must sum"),
    "year 0999": (lambda t: {**trace_event(t), "timestamp": "0999-01-01T00:00:00Z"}, "timestamp"),
    "year 10000": (lambda t: generation(t, startTime="10000-01-01T00:00:00Z"), "body.startTime"),
    "empty id": (lambda t: generation(t, id=""), "body.id"),
    "id with control characters": (
        lambda t: generation(t, id="a\r\nb\x00"), "body.id: must have no control characters"),
    "nested 300 deep": (lambda t: generation(t, input=nested(300)), "input is nested deeper"),
    "score value of the wrong type": (
        lambda t: envelope("score-create", {"name": "s", "traceId": t, "value": [1]}),
        "body.value"),
}  # fmt: skip


@pytest.mark.parametrize("kind", POISON)
async def test_poison_is_refused_and_the_good_events_beside_it_are_stored(
    stack: Stack, other_auth: tuple[str, str], kind: str
) -> None:
    make_poison, named = POISON[kind]
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    poison = make_poison(mine)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=other_auth) as other,
    ):
        response, _ = await asyncio.gather(
            client.post("/api/public/ingestion", json={"batch": [poison, trace_event(mine)]}),
            other.post("/api/public/ingestion", json={"batch": [trace_event(theirs)]}),
        )
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert (error["id"], error["status"], error["message"]) == (
        poison["id"], 400, "Invalid request data",
    )  # fmt: skip
    assert named in error["error"]
    assert (await stored(stack, AUTH, f"/api/public/traces/{mine}"))["name"] == "good"
    assert (await stored(stack, other_auth, f"/api/public/traces/{theirs}"))["name"] == "good"


async def test_timestamps_spread_over_many_months_are_all_stored(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    spread = [
        generation(trace_id, startTime=f"{2000 + i // 12}-{i % 12 + 1:02}-15T00:00:00Z")
        for i in range(120)
    ]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post(
            "/api/public/ingestion", json={"batch": [trace_event(trace_id), *spread]}
        )
        assert response.json()["errors"] == []
        trace = await eventually(
            lambda: client.get(f"/api/public/traces/{trace_id}"),
            lambda r: r.status_code == 200 and len(r.json()["observations"]) == 120,
        )
    assert trace.json()["name"] == "good"


async def test_a_score_past_the_columns_is_refused_alone(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    scores = [
        {"name": "ok", "traceId": trace_id, "value": 1},
        {"name": "bad", "traceId": "a\nb", "value": 1},
        {"name": "old", "traceId": trace_id, "value": 1, "timestamp": "0999-01-01T00:00:00Z"},
    ]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/scores", json=scores)
    body = response.json()
    assert (response.status_code, body["accepted"], body["rejected"]) == (207, 1, 2)


def otlp_json(trace_id: str, **attribute_value: Any) -> dict[str, Any]:
    span = {
        "traceId": trace_id, "spanId": uuid.uuid4().hex[:16], "name": "good",
        "startTimeUnixNano": "1764547200000000000", "endTimeUnixNano": "1764547201000000000",
        "attributes": [{"key": "gen_ai.request.model", "value": attribute_value}],
    }  # fmt: skip
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "e2e"}, "spans": [span]}]}]}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"boolValue": "yes"}, "boolValue"),
        ({"intValue": {"low": "x"}}, "intValue"),
        ({"doubleValue": "many"}, "not a number"),
        ({"arrayValue": "x"}, "arrayValue"),
    ],
)
async def test_otlp_json_of_the_wrong_types_is_400_and_others_are_stored(
    stack: Stack, other_auth: tuple[str, str], value: dict[str, Any], named: str
) -> None:
    bad, good = uuid.uuid4().hex, uuid.uuid4().hex
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=other_auth) as other,
    ):
        refused, accepted = await asyncio.gather(
            client.post("/api/public/otel/v1/traces", json=otlp_json(bad, **value)),
            other.post("/api/public/otel/v1/traces", json=otlp_json(good, stringValue="gpt-4o")),
        )
    assert refused.status_code == 400 and named in refused.json()["error"]
    assert accepted.status_code == 200
    assert (await stored(stack, other_auth, f"/api/public/traces/{good}"))["name"] == "good"


async def test_a_gzip_bomb_is_413_and_ingestion_goes_on(stack: Stack) -> None:
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024), compresslevel=9)  # ~40 KB on the wire
    trace_id = uuid.uuid4().hex
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        refused = await client.post("/api/public/otel/v1/traces", content=bomb, headers=headers)
        good = gzip.compress(httpx.Request("POST", "/", json=otlp_json(trace_id)).read())
        accepted = await client.post("/api/public/otel/v1/traces", content=good, headers=headers)
    assert refused.status_code == 413
    assert refused.json()["error"] == "PayloadTooLargeError"
    assert accepted.status_code == 200
    assert (await stored(stack, AUTH, f"/api/public/traces/{trace_id}"))["name"] == "good"


DEFAULT_TIER = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
                "prices": {"input": 1e-6}}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"pricingTiers": [{**DEFAULT_TIER, "name": None}]}, "pricingTiers[0].name"),
        ({"inputPrice": "0.001"}, "inputPrice"),
        ({"pricingTiers": [DEFAULT_TIER, {**DEFAULT_TIER, "name": "big", "isDefault": False,
                                          "priority": 1, "conditions": [{
                                              "usageDetailPattern": "(?<=in)put",
                                              "operator": "gt", "value": 1}]}]},
         "usageDetailPattern"),
        ({"inputPrice": 1e-6, "tokenizerId": "openai", "tokenizerConfig": {
            "tokenizerModel": "gpt-4o", "tokensPerMessage": "three"}},
         "tokenizerConfig.tokensPerMessage"),
        ({"inputPrice": 1e-6, "matchPattern": "(a)\\1"}, "matchPattern"),
    ],
)  # fmt: skip
async def test_bad_models_are_400_and_never_stored(
    stack: Stack, fields: dict[str, Any], named: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    body = {"modelName": name, "matchPattern": f"^{name}$", **fields}
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/models", json=body)
        listed = await client.get("/api/public/models", params={"limit": 100})
    assert response.status_code == 400 and named in response.json()["message"]
    assert name not in {m["modelName"] for m in listed.json()["data"]}


async def test_a_duplicate_model_is_refused_not_a_500(stack: Stack) -> None:
    name = f"twice-{uuid.uuid4().hex[:8]}"
    body = {"modelName": name, "matchPattern": f"^{name}$", "inputPrice": 1e-6,
            "startDate": "2026-01-01T00:00:00Z"}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        first = await client.post("/api/public/models", json=body)
        second = await client.post("/api/public/models", json=body)
    assert first.status_code == 200
    assert second.status_code in (400, 409) and name in second.json()["message"]


async def test_a_catastrophic_pattern_matches_in_linear_time(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    body = {"modelName": f"redos-{trace_id[:8]}", "matchPattern": "^(a+)+$", "inputPrice": 1e-6}
    evil, matching = "a" * 50_000 + "!", "a" * 50_000
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        created = await client.post("/api/public/models", json=body)
        assert created.status_code == 200
        batch = [
            trace_event(trace_id),
            generation(trace_id, model=evil, usageDetails={"input": 10}),
            generation(trace_id, model=matching, usageDetails={"input": 10}),
        ]
        await client.post("/api/public/ingestion", json={"batch": batch})
        trace = await eventually(
            lambda: client.get(f"/api/public/traces/{trace_id}"),
            lambda r: r.status_code == 200 and len(r.json()["observations"]) == 2,
        )
        await client.delete(f"/api/public/models/{created.json()['id']}")
    costs = {o["model"][-1]: o["calculatedTotalCost"] for o in trace.json()["observations"]}
    assert costs == {"!": None, "a": pytest.approx(10e-6)}
