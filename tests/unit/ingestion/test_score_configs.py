"""Scores naming a configId, checked against the config before they are acknowledged."""

from typing import Any

import grpc
import orjson
import pytest

from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache
from services.ingestion.batch import EventError
from services.ingestion.score_configs import (
    UNAVAILABLE,
    ScoreConfig,
    ScoreConfigs,
    apply_config,
    check_scores,
    config_ids_of_batch,
    config_ids_of_scores,
)


def config(data_type: str, **fields: Any) -> ScoreConfig:
    defaults: dict[str, Any] = {"id": "c1", "name": "quality", "data_type": data_type,
                                "is_archived": False, "min_value": None, "max_value": None,
                                "categories": {}}  # fmt: skip
    return ScoreConfig(**{**defaults, **fields})


NUMERIC = config("NUMERIC", min_value=0.0, max_value=1.0)
CATEGORICAL = config("CATEGORICAL", categories={"good": 1, "bad": 0})
BOOLEAN = config("BOOLEAN", categories={"True": 1, "False": 0})
TEXT = config("TEXT")


def score(value: Any, **fields: Any) -> dict[str, Any]:
    return {"id": "s1", "traceId": "t1", "name": "quality", "configId": "c1", "value": value,
            **fields}  # fmt: skip


def reason(score_: dict[str, Any], config_: ScoreConfig | None) -> str:
    with pytest.raises(EventError) as raised:
        apply_config(score_, config_, "c1")
    assert (raised.value.status, raised.value.message) == (400, "Invalid request data")
    return raised.value.error


def test_a_missing_data_type_is_the_configs() -> None:
    for config_, value in ((NUMERIC, 0.5), (BOOLEAN, 1), (TEXT, "fine"), (CATEGORICAL, "good")):
        checked = score(value)
        apply_config(checked, config_, "c1")
        assert checked["dataType"] == config_.data_type


def test_a_category_is_stored_with_its_number_and_its_label() -> None:
    checked = score("good", dataType="CATEGORICAL")
    apply_config(checked, CATEGORICAL, "c1")
    assert (checked["value"], checked["stringValue"]) == (1, "good")


def test_numeric_bounds_are_inclusive() -> None:
    for value in (0, 0.5, 1):
        apply_config(score(value), NUMERIC, "c1")
    apply_config(score(-1e9), config("NUMERIC"), "c1")  # no bounds: anything goes


@pytest.mark.parametrize(
    ("score_", "config_", "expected"),
    [
        (score(0.5), None, "score config 'c1' not found"),
        (score(0.5), config("NUMERIC", is_archived=True), "is archived"),
        (score(0.5, name="other"), NUMERIC, "name 'other' must be the config's name 'quality'"),
        (score(0.5, dataType="BOOLEAN"), NUMERIC, "BOOLEAN does not match the config's NUMERIC"),
        (score("good", dataType="CATEGORICAL"), NUMERIC, "does not match the config's NUMERIC"),
        (score(1.5), NUMERIC, "value 1.5 is above the config's maximum 1.0"),
        (score(-0.1), NUMERIC, "value -0.1 is below the config's minimum 0.0"),
        (score("0.5"), NUMERIC, "a NUMERIC score needs a number"),
        (score(2), BOOLEAN, "a BOOLEAN score is 0 or 1"),
        (score("True"), BOOLEAN, "a BOOLEAN score needs a number"),
        (score("great"), CATEGORICAL, "not one of the config's categories: 'good', 'bad'"),
        (score(1), CATEGORICAL, "a CATEGORICAL score needs a string"),
        (score(""), TEXT, "a TEXT score has 1-500 characters"),
        (score("x" * 501), TEXT, "a TEXT score has 1-500 characters"),
        (score(3), TEXT, "a TEXT score needs a string"),
    ],
)  # fmt: skip
def test_every_violation_is_refused_with_its_reason(
    score_: dict[str, Any], config_: ScoreConfig | None, expected: str
) -> None:
    assert expected in reason(score_, config_)


def score_event(body: dict[str, Any]) -> events_pb2.IngestionEvent:
    return events_pb2.IngestionEvent(
        type=events_pb2.EVENT_TYPE_SCORE_CREATE, body_json=orjson.dumps(body)
    )


def test_check_scores_rewrites_only_scores_with_a_config() -> None:
    plain = score_event({"id": "s2", "name": "free", "value": "anything"})
    trace = events_pb2.IngestionEvent(type=events_pb2.EVENT_TYPE_TRACE_CREATE, body_json=b"{ }")
    configured = score_event(score("bad"))
    untouched = (plain.body_json, trace.body_json)
    check_scores([plain, trace, configured], {"c1": CATEGORICAL})
    assert (plain.body_json, trace.body_json) == untouched
    assert orjson.loads(configured.body_json)["value"] == 0
    with pytest.raises(EventError, match="Invalid request data"):
        check_scores([score_event(score("great"))], {"c1": CATEGORICAL})


def test_a_config_evals_could_not_give_is_a_503_for_its_scores_only() -> None:
    with pytest.raises(EventError) as raised:
        check_scores([score_event(score("good"))], {"c1": UNAVAILABLE})
    assert raised.value.status == 503
    check_scores([score_event({"id": "s2", "name": "free", "value": 1})], {"c1": UNAVAILABLE})


def test_config_ids_are_collected_from_raw_items() -> None:
    batch = [
        {"type": "score-create", "body": {"configId": "a"}},
        {"type": "score-create", "body": {"configId": 7}},
        {"type": "trace-create", "body": {"configId": "not-a-score"}},
        {"type": "score-create", "body": "broken"},
        "broken",
    ]
    assert config_ids_of_batch(batch) == {"a"}
    assert config_ids_of_scores([{"configId": "b"}, {"name": "x"}, None]) == {"b"}


class FakeRedis:
    """Just what GenerationCache uses (unit tests open no sockets)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def set(self, key: str, value: str | bytes, nx: bool = False, ex: int = 0) -> None:
        if not (nx and key in self.values):
            self.values[key] = value.encode() if isinstance(value, str) else value


class FakeEvals:
    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents
        self.calls: list[str] = []
        self.down = False

    async def GetScoreConfig(  # noqa: N802
        self, request: evals_pb2.GetScoreConfigRequest, **options: Any
    ) -> evals_pb2.GetScoreConfigResponse:
        self.calls.append(request.config_id)
        if self.down:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None, "down")
        if request.config_id not in self.documents:
            raise grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, None, None, "not found")
        return evals_pb2.GetScoreConfigResponse(
            config_json=orjson.dumps(self.documents[request.config_id])
        )


DOCUMENT = {"id": "c1", "name": "quality", "dataType": "CATEGORICAL", "isArchived": False,
            "minValue": None, "maxValue": None, "description": None, "projectId": "p1",
            "categories": [{"label": "good", "value": 1}, {"label": "bad", "value": 0}],
            }  # fmt: skip


async def test_configs_are_cached_per_generation_and_a_new_generation_refetches() -> None:
    evals, cache = FakeEvals({"c1": DOCUMENT}), GenerationCache(FakeRedis(), "score_configs")  # type: ignore[arg-type]
    configs = ScoreConfigs(evals, cache)  # type: ignore[arg-type]
    first = await configs.lookup("p1", {"c1", "unknown"})
    assert first == {"c1": CATEGORICAL, "unknown": None}
    assert await configs.lookup("p1", {"c1", "unknown"}) == first
    assert sorted(evals.calls) == ["c1", "unknown"]  # the second lookup was all cache hits
    await cache.invalidate("p1")  # what evals does after a change
    evals.documents["c1"] = {**DOCUMENT, "isArchived": True}
    assert (await configs.lookup("p1", {"c1"}))["c1"] == config(
        "CATEGORICAL", categories={"good": 1, "bad": 0}, is_archived=True
    )


async def test_when_evals_is_down_its_configs_are_unavailable_and_not_cached() -> None:
    evals, cache = FakeEvals({"c1": DOCUMENT}), GenerationCache(FakeRedis(), "score_configs")  # type: ignore[arg-type]
    configs = ScoreConfigs(evals, cache)  # type: ignore[arg-type]
    evals.down = True
    assert await configs.lookup("p1", {"c1"}) == {"c1": UNAVAILABLE}
    evals.down = False
    assert await configs.lookup("p1", {"c1"}) == {"c1": CATEGORICAL}
    assert await configs.lookup("p1", set()) == {}
