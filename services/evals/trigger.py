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
from typing import Any

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
    # A create tells the whole entity as its SDK knew it then (a missing field is its default);
    # an update tells only what changed (a missing field is unknown).
    complete: bool


def consumer_settings(kafka: KafkaCluster) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(GROUP),
        topics=(kafka.topic(Topic.INGESTION_EVENTS),),
        max_records=1000,
    )


class RuleCache:
    """The enabled rules by project, reloaded every RELOAD_SECONDS and at once after a change
    through this replica. Read synchronously: `decode` skips the messages of projects without
    rules by their Kafka key (the project; `project:trace` in messages of earlier releases)
    before decompressing anything."""

    def __init__(self, rules: RuleApi) -> None:
        self._rules = rules
        self.by_project: dict[str, ProjectRules] = {}
        self._key_prefixes: tuple[bytes, ...] = ()

    async def reload(self) -> None:
        by_project: defaultdict[str, list[ActiveRule]] = defaultdict(list)
        for rule in await self._rules.active_rules():
            by_project[rule.project_id].append(rule)
        self.by_project = {project: ProjectRules(rules) for project, rules in by_project.items()}
        self._key_prefixes = tuple(f"{project}:".encode() for project in by_project)

    def may_match(self, key: bytes | None) -> bool:
        return key is None or (key + b":").startswith(self._key_prefixes)

    async def run(self, stop: asyncio.Event) -> None:
        """Reloads until `stop`; a failed reload keeps the rules it had."""
        while not stop.is_set():
            try:
                await self.reload()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("rule_reload_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RELOAD_SECONDS)


class Trigger:
    def __init__(self, cache: RuleCache, jobs: JobStore, wake: Callable[[], None]) -> None:
        self._cache = cache
        self._jobs = jobs
        self._wake = wake

    def decode(self, record: Record) -> list[TargetEvent]:
        """The trace and observation events of a message; nothing is decompressed or parsed for
        projects without rules (most messages, usually)."""
        if not self._cache.may_match(record.key):
            return []
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
            complete = event.type == events_pb2.EVENT_TYPE_OBSERVATION_CREATE
            targets.append(TargetEvent(event.project_id, event.trace_id, observation_id,
                                       event.body_json, complete))  # fmt: skip
        return targets

    async def handle(self, batches: Sequence[list[TargetEvent]]) -> None:
        rules = self._cache.by_project
        found: list[Match] = []
        for batch in batches:
            for event in batch:
                project_rules = rules.get(event.project_id)
                if project_rules:
                    found.extend(matching(project_rules, event))
        if found:
            await self._jobs.enqueue(found)
            if any(m.delay_ms == 0 for m in found):
                self._wake()


class ProjectRules:
    """A project's rules by target, each filed under the values of its first `any of` filter
    (name, type, environment, ...): an event is checked against the rules filed under its value
    and those without such a filter, not against every rule of the project."""

    def __init__(self, rules: list[ActiveRule]) -> None:
        self._scanned: dict[str, list[ActiveRule]] = {"observation": [], "trace": []}
        # target -> column -> value -> rules
        self._filed: dict[str, dict[str, dict[Any, list[ActiveRule]]]] = {
            "observation": {}, "trace": {}}  # fmt: skip
        for rule in rules:
            options = next((f for f in rule.filters if f["type"] == "stringOptions"
                            and f["operator"] == "any of" and f["value"]), None)  # fmt: skip
            if options is None:
                self._scanned[rule.target].append(rule)
                continue
            by_value = self._filed[rule.target].setdefault(options["column"], {})
            for value in dict.fromkeys(options["value"]):
                by_value.setdefault(value, []).append(rule)

    def candidates(self, target: str, row: dict[str, Any]) -> list[ActiveRule]:
        found = list(self._scanned[target])
        for column, by_value in self._filed[target].items():
            if column in row:
                found += by_value.get(row[column], ())
            else:  # the event does not tell this column: every rule filed under it
                found += {id(r): r for rules in by_value.values() for r in rules}.values()
        return found


def matching(rules: ProjectRules, event: TargetEvent) -> list[Match]:
    """The jobs one event starts: each rule whose filter it does not contradict, sampled in."""
    try:
        body = orjson.loads(event.body_json)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict) or body.get("environment") == JUDGE_ENVIRONMENT:
        return []
    # What the event tells of each kind of target, worked out once for all rules. Traces are
    # matched on their own events (every SDK's and OTLP's batches carry one), which tell their
    # columns; observation events alone would start a job for every trace of the project.
    if event.observation_id:
        kind, row = "observation", observation_row(body, None, merged=event.complete)
    else:
        kind, row = "trace", trace_row(body, merged=False)
    target = (event.trace_id, event.observation_id)
    found = []
    for rule in rules.candidates(kind, row):
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
