"""The LLM-as-a-judge trigger: a consumer of `ingestion.events.v1` in its own group
(`evals.judge`), so neither ingestion nor the query writer waits for it, and a slow judge only
delays jobs, never events. Each event of a trace or observation is matched against the project's
enabled rules (held in memory, reloaded every few seconds and after every change made through this
replica) on what the event itself tells; a match (or a filter the event cannot decide) enqueues a
durable job (services/evals/jobs.py), which judges the merged state after the rule's delay and
checks the whole filter again. Sampling is decided by a hash of the rule and the target, so a
replay or a later event of the same target decides the same way. Judge traces are never judged."""

import asyncio
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
import orjson
import structlog

from libs.common.event_batches import decode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, KafkaCluster, Record, Topic
from services.evals.jobs import JobStore, Match
from services.evals.judge import JUDGE_ENVIRONMENT
from services.evals.rule_filters import matches, observation_row, trace_row
from services.evals.rules import ActiveRule, RuleApi

log = structlog.get_logger()

GROUP = "evals.judge"
RELOAD_SECONDS = 2.0
_OBSERVATION_EVENTS = {
    events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
    events_pb2.EVENT_TYPE_OBSERVATION_UPDATE,
}


@dataclass(frozen=True, slots=True)
class TargetEvent:
    project_id: str
    trace_id: str
    observation_id: str  # '' for a trace event
    body_json: bytes


def consumer_settings(kafka: KafkaCluster) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(GROUP),
        topics=(kafka.topic(Topic.INGESTION_EVENTS),),
        max_records=1000,
    )


class RuleCache:
    """The enabled rules by project; `changed` forces a reload on the next batch."""

    def __init__(self, rules: RuleApi) -> None:
        self._rules = rules
        self._by_project: dict[str, list[ActiveRule]] = {}
        self._loaded_at = float("-inf")

    def changed(self) -> None:
        self._loaded_at = float("-inf")

    async def current(self) -> dict[str, list[ActiveRule]]:
        now = asyncio.get_running_loop().time()
        if now - self._loaded_at >= RELOAD_SECONDS:
            by_project: defaultdict[str, list[ActiveRule]] = defaultdict(list)
            for rule in await self._rules.active_rules():
                by_project[rule.project_id].append(rule)
            self._by_project, self._loaded_at = dict(by_project), now
        return self._by_project


class Trigger:
    def __init__(self, cache: RuleCache, jobs: JobStore, wake: Callable[[], None]) -> None:
        self._cache = cache
        self._jobs = jobs
        self._wake = wake

    def decode(self, record: Record) -> list[TargetEvent]:
        """The trace and observation events of a message; nothing is parsed for projects
        without rules (most events, usually)."""
        try:
            batch = decode_event_batch(record.value or b"")
        except Exception as exc:
            raise InvalidMessage(f"not an IngestionEventBatch: {exc}") from exc
        targets = []
        for event in batch.events:
            if event.type == events_pb2.EVENT_TYPE_TRACE_CREATE:
                observation_id = ""
            elif event.type in _OBSERVATION_EVENTS:
                observation_id = event.entity_id
            else:
                continue
            targets.append(
                TargetEvent(event.project_id, event.trace_id, observation_id, event.body_json)
            )
        return targets

    async def handle(self, batches: Sequence[list[TargetEvent]]) -> None:
        rules = await self._cache.current()
        if not rules:
            return
        found: list[Match] = []
        for batch in batches:
            for event in batch:
                project_rules = rules.get(event.project_id)
                if project_rules:
                    found.extend(_matches(project_rules, event))
        if found:
            await self._jobs.enqueue(found)
            if any(m.delay_ms == 0 for m in found):
                self._wake()


def _matches(rules: list[ActiveRule], event: TargetEvent) -> list[Match]:
    try:
        body = orjson.loads(event.body_json)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict) or body.get("environment") == JUDGE_ENVIRONMENT:
        return []
    found = []
    for rule in rules:
        if rule.target == "observation":
            if not event.observation_id:
                continue
            row = observation_row(body, None, merged=False)
            target = (event.trace_id, event.observation_id)
        else:
            # Any event of a trace may complete it; only a trace-create tells its own columns.
            row = trace_row(body, merged=False) if not event.observation_id else {}
            target = (event.trace_id, "")
        if matches(rule.filters, row) is False or not sampled(rule, *target):
            continue
        found.extend(
            Match(event.project_id, rule.id, evaluator_id, *target, rule.delay_ms)
            for evaluator_id in rule.evaluator_ids
        )
    return found


def sampled(rule: ActiveRule, trace_id: str, observation_id: str) -> bool:
    if rule.sampling >= 1:
        return True
    digest = hashlib.blake2b(f"{rule.id}\0{trace_id}\0{observation_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest()) / 2**64 < rule.sampling


async def reload_periodically(cache: RuleCache, stop: asyncio.Event) -> None:
    """Keeps the cache warm when no events arrive (so the first event after a quiet spell does
    not pay for the load)."""
    while not stop.is_set():
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await cache.current()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RELOAD_SECONDS)
