"""Scores that name a `configId` are checked against that config before they are acknowledged
(Langfuse checks them later in its worker and drops the bad ones silently; here the client hears
why). The configs belong to the evals service: fetched from it over gRPC and cached in-process
and in Redis under the project's generation token (libs/common/score_config_cache.py), which evals
replaces after every config change and before answering it. So a score is never checked against
a config as it was before a change that has been answered, on any replica.

Without Redis every lookup asks evals (fresh by definition). Without evals, scores that name a
config get a 503 of their own (not stored; the client retries) and all others go through."""

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import structlog

from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache
from libs.common.scope import ProjectScope
from services.ingestion.batch import EventError

log = structlog.get_logger()

_EVALS_TIMEOUT_SECONDS = 5.0
# Calls to evals at once per replica: a batch naming thousands of unknown configIds must not turn
# into thousands of simultaneous calls.
_MAX_CONCURRENT_FETCHES = 8
_UNKNOWN = b"null"  # cached answer for an id the project has no config for


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    """What a score is checked against, read from the evals service's `ScoreConfig` document."""

    id: str
    name: str
    data_type: str
    is_archived: bool
    min_value: float | None
    max_value: float | None
    categories: Mapping[str, float]  # label -> value

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "ScoreConfig":
        return cls(
            id=document["id"],
            name=document["name"],
            data_type=document["dataType"],
            is_archived=document["isArchived"],
            min_value=document.get("minValue"),
            max_value=document.get("maxValue"),
            categories={c["label"]: c["value"] for c in document.get("categories") or ()},
        )


class ConfigUnavailable:
    """The lookup of a config failed (evals unreachable): its scores are refused with a 503."""


UNAVAILABLE = ConfigUnavailable()
Lookup = Mapping[str, ScoreConfig | None | ConfigUnavailable]


def config_ids_of_batch(items: Iterable[Any]) -> set[str]:
    """The configIds named by the `score-create` events of an ingestion batch (raw items)."""
    return config_ids_of_scores(
        item.get("body")
        for item in items
        if isinstance(item, dict) and item.get("type") == "score-create"
    )


def config_ids_of_scores(bodies: Iterable[Any]) -> set[str]:
    """The configIds named by score bodies (raw, as sent)."""
    return {
        body["configId"]
        for body in bodies
        if isinstance(body, dict) and isinstance(body.get("configId"), str)
    }


def check_scores(events: Iterable[events_pb2.IngestionEvent], configs: Lookup) -> None:
    """Checks the score events that name a config against it and stores what the config implies
    (data type, a category's number) in their bodies; raises EventError for the first violation.
    Events without a config are left as they are, untouched and undecoded."""
    if not configs:
        return
    for event in events:
        if event.type != events_pb2.EVENT_TYPE_SCORE_CREATE:
            continue
        score = orjson.loads(event.body_json)
        config_id = score.get("configId")
        if config_id is None:
            continue
        found = configs.get(config_id)
        if isinstance(found, ConfigUnavailable):
            raise EventError(
                503,
                "Service Unavailable",
                "score configs cannot be read now, retry later",
                event.event_id,
            )
        try:
            apply_config(score, found, config_id)
        except EventError as exc:
            exc.event_id = event.event_id
            raise
        event.body_json = orjson.dumps(score)


def apply_config(score: dict[str, Any], config: ScoreConfig | None, config_id: str) -> None:
    """Langfuse's rules for a score with a config (pure): the config exists and is not archived,
    names agree, data types agree (a missing one is the config's), the value suits the config.
    A category's label is kept as the score's string value and its number as the value."""
    if config is None:
        raise _invalid(f"score config {config_id!r} not found within the project")
    if config.is_archived:
        raise _invalid(f"score config {config_id!r} is archived")
    if score.get("name") != config.name:
        raise _invalid(f"name {score.get('name')!r} must be the config's name {config.name!r}")
    data_type = score.get("dataType") or config.data_type
    if data_type != config.data_type:
        raise _invalid(f"dataType {data_type} does not match the config's {config.data_type}")
    value = score.get("value")
    if data_type in ("NUMERIC", "BOOLEAN"):
        if not _is_number(value):
            raise _invalid(f"a {data_type} score needs a number")
        if data_type == "BOOLEAN" and value not in (0, 1):
            raise _invalid("a BOOLEAN score is 0 or 1")
        if config.min_value is not None and value < config.min_value:
            raise _invalid(f"value {value} is below the config's minimum {config.min_value}")
        if config.max_value is not None and value > config.max_value:
            raise _invalid(f"value {value} is above the config's maximum {config.max_value}")
    elif not isinstance(value, str):
        raise _invalid(f"a {data_type} score needs a string")
    elif data_type == "CATEGORICAL":
        if value not in config.categories:
            labels = ", ".join(repr(label) for label in config.categories)
            raise _invalid(f"value {value!r} is not one of the config's categories: {labels}")
        score["value"], score["stringValue"] = config.categories[value], value
    elif not 1 <= len(value) <= 500:
        raise _invalid("a TEXT score has 1-500 characters")
    score["dataType"] = data_type


class ScoreConfigs:
    """The configs scores name, from evals, cached per project generation."""

    def __init__(self, stub: evals_pb2_grpc.EvalsServiceStub, generations: GenerationCache) -> None:
        self._stub = stub
        self._generations = generations
        self._fetching = asyncio.Semaphore(_MAX_CONCURRENT_FETCHES)

    async def lookup(self, project_id: str, config_ids: set[str]) -> Lookup:
        """Each id's config, None when the project has none by that id, UNAVAILABLE when evals
        could not say. At a cache hit: one Redis GET (the generation) and dict lookups."""
        if not config_ids:
            return {}
        generation = await self._generations.generation(project_id)
        found: dict[str, ScoreConfig | None | ConfigUnavailable] = {}
        missing = []
        for config_id in config_ids:
            cached = None
            if generation is not None:
                cached = await self._generations.get(project_id, generation, config_id)
            if cached is None:
                missing.append(config_id)
            else:
                found[config_id] = _decode(cached)
        fetched = await asyncio.gather(*(self._fetch(project_id, i) for i in missing))
        for config_id, document in zip(missing, fetched, strict=True):
            if document is None:
                found[config_id] = UNAVAILABLE
                continue
            if generation is not None:
                await self._generations.put(project_id, generation, config_id, document)
            found[config_id] = _decode(document)
        return found

    async def _fetch(self, project_id: str, config_id: str) -> bytes | None:
        """The config's document, `_UNKNOWN` when evals has none, None when evals failed."""
        if not config_id:
            return _UNKNOWN
        try:
            async with self._fetching:
                reply = await self._stub.GetScoreConfig(
                    evals_pb2.GetScoreConfigRequest(config_id=config_id),
                    metadata=ProjectScope(project_id).metadata(),
                    timeout=_EVALS_TIMEOUT_SECONDS,
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return _UNKNOWN
            log.warning("score_config_lookup_failed", code=exc.code().name, details=exc.details())
            return None
        return bytes(reply.config_json)


def _decode(document: bytes) -> ScoreConfig | None:
    return None if document == _UNKNOWN else ScoreConfig.from_document(orjson.loads(document))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _invalid(reason: str) -> EventError:
    return EventError(400, "Invalid request data", reason)
