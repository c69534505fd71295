"""EventWriter: the query service's Kafka consumer (`query.clickhouse-writer`). Each batch is
merged per entity into the entity's state (remembered from this writer's last write of it,
services/query/recent_state.py, or else read back from ClickHouse in one query per kind) and
written in one insert per table; offsets are committed only afterwards (libs.common.kafka). The
merge does not depend on the order or batching of events (services/query/rows.py), so a replay
or a crash between insert and commit changes nothing. A record holding a value no column can
hold (one that skipped ingestion's checks, libs.common.limits) is refused when decoded: it goes
straight to the DLQ. When a batch still cannot be written (a project model whose prices do not
compute), the consumer calls `write` again with halves of it until the record at fault is
alone, and dead-letters that one."""

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import clickhouse_driver.errors
import orjson
import structlog

from libs.common import limits
from libs.common.event_batches import decode_event_batch, event_batch_size
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import (
    WRITER_GROUP,
    ConsumerSettings,
    InvalidMessage,
    KafkaCluster,
    Record,
    Topic,
)
from libs.common.timestamps import from_timestamp
from libs.common.transient import is_transient
from services.query.entities import DATETIME, ENTITIES
from services.query.models import ModelCatalogs
from services.query.pricing import Catalog, Priced, price
from services.query.recent_state import Key, RecentState
from services.query.rows import (
    Change,
    Merged,
    from_stored,
    merge,
    parse_time,
    stored_row,
    usage_with_total,
)
from services.query.store import TraceStore
from services.query.tokens import count_usage

log = structlog.get_logger()

_KINDS = {
    events_pb2.EVENT_TYPE_TRACE_CREATE: "trace",
    events_pb2.EVENT_TYPE_OBSERVATION_CREATE: "observation",
    events_pb2.EVENT_TYPE_OBSERVATION_UPDATE: "observation",
    events_pb2.EVENT_TYPE_SCORE_CREATE: "score",
}
_CREATES = {
    events_pb2.EVENT_TYPE_TRACE_CREATE,
    events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
    events_pb2.EVENT_TYPE_SCORE_CREATE,
}

# The body fields that reach typed columns (services/query/rows.py), checked when decoded.
_IDS = {
    "trace": ("id", "sessionId"),
    "observation": ("id", "traceId", "parentObservationId"),
    "score": ("id", "traceId", "observationId", "sessionId", "datasetRunId"),
}
_TIMES = {
    kind: tuple(f.name for f in entity.fields if f.stored and f.kind == DATETIME)
    for kind, entity in ENTITIES.items()
}

_PARTITION_COLUMNS = {"trace": "timestamp", "observation": "start_time", "score": "timestamp"}
_MONTHS_PER_INSERT = 100


# ClickHouse errors of the server rather than of a row: TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_
# QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR, MEMORY_LIMIT_EXCEEDED, NOT_ENOUGH_SPACE. (Not 252: it
# also means an insert spanning too many partitions, which is the rows' doing.)
_TRANSIENT_CLICKHOUSE_CODES = {159, 202, 209, 210, 241, 243}
_CLICKHOUSE_CODE = re.compile(r"^Code: (\d+)\.")


def is_transient_for_writer(exc: BaseException) -> bool:
    """libs.common.transient's outages, and ClickHouse saying it cannot take the insert now
    (chDB raises RuntimeError("Code: N. ..."), the native driver an Error with `code`)."""
    if is_transient(exc):
        return True
    if isinstance(exc, clickhouse_driver.errors.Error):
        return exc.code in _TRANSIENT_CLICKHOUSE_CODES
    match = _CLICKHOUSE_CODE.match(str(exc)) if isinstance(exc, RuntimeError) else None
    return match is not None and int(match.group(1)) in _TRANSIENT_CLICKHOUSE_CODES


def writer_settings(kafka: KafkaCluster, batch_bytes: int) -> ConsumerSettings:
    """A message holds one request's events of one partition, from a few to thousands, so
    batches are bounded by the bytes of events they hold (`batch_bytes`, read from each value's
    header: compression ratios run from 3 for SDK-like payloads to 30 for repetitive ones), not
    by compressed bytes. Larger batches cost less per event, smaller ones show events sooner
    under load: each insert costs chDB ~30 ms of CPU however small, and each part it makes is
    merged again later. 150 ms of lingering keeps an idle stack's visibility well under 1 s."""
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(WRITER_GROUP),
        topics=(kafka.topic(Topic.INGESTION_EVENTS),),
        max_bytes=batch_bytes,
        record_bytes=event_batch_size,
        linger_ms=150,
    )


@dataclass(frozen=True, slots=True)
class Decoded:
    """One event, ready to merge: its body is parsed here, once."""

    kind: str
    project_id: str
    entity_id: str
    change: Change


def decode_events(record: Record) -> list[Decoded]:
    try:
        events = decode_event_batch(record.value or b"").events
        bodies = [orjson.loads(event.body_json) for event in events]
    except Exception as exc:
        raise InvalidMessage(f"not an IngestionEventBatch: {exc}") from exc
    decoded = []
    for event, body in zip(events, bodies, strict=True):
        if event.type not in _KINDS or not event.project_id or not event.entity_id:
            raise InvalidMessage(f"event without kind, project or entity: {event.event_id}")
        kind = _KINDS[event.type]
        change = _change(kind, event, body)
        problem = _unwritable(kind, change.body)
        if problem:
            raise InvalidMessage(f"{kind} {event.entity_id!r}: {problem}")
        decoded.append(Decoded(kind, event.project_id, event.entity_id, change))
    return decoded


class EventWriter:
    """Merges each batch's events per entity into the entity's state, taken from `recent` (what
    this writer wrote last) or else read back from ClickHouse in one query per kind for the
    whole batch, and inserts the new states."""

    def __init__(self, store: TraceStore, catalogs: ModelCatalogs, recent: RecentState) -> None:
        self._store = store
        self._catalogs = catalogs
        self._recent = recent

    def forget_recent(self) -> None:
        """After a rebalance another writer may have written this writer's entities."""
        self._recent.clear()

    async def write(self, batches: Sequence[list[Decoded]]) -> None:
        grouped: dict[Key, list[Change]] = defaultdict(list)
        for batch in batches:
            for event in batch:
                grouped[(event.kind, event.project_id, event.entity_id)].append(event.change)
        now = datetime.now(UTC)
        by_kind = {
            kind: changes
            for kind in ("trace", "observation", "score")
            if (changes := {key: c for key, c in grouped.items() if key[0] == kind})
        }
        # Everything the merges read, fetched at once before the first insert: each project's
        # model catalog (a batch spans many projects, and a catalog past its cache time costs a
        # PostgreSQL round trip) and each kind's stored states (one ClickHouse query per kind),
        # so that a batch's observations are not also waiting on those reads once its traces
        # are written and readable.
        projects = sorted({p for k, p, _ in grouped if k == "observation"})
        found, *befores = await asyncio.gather(
            asyncio.gather(*(self._catalogs.for_project(p) for p in projects)),
            *(self._states_before(kind, changes) for kind, changes in by_kind.items()),
        )
        catalogs = dict(zip(projects, found, strict=True))
        for (kind, changes), before in zip(by_kind.items(), befores, strict=True):
            await self._write_kind(kind, changes, before, catalogs, now)

    async def _write_kind(
        self,
        kind: str,
        changes: dict[Key, list[Change]],
        before: dict[Key, Merged],
        catalogs: dict[str, Catalog],
        now: datetime,
    ) -> None:
        rows, states = [], {}
        for key, entity_changes in changes.items():
            _, project_id, entity_id = key
            state, conflicts = merge(kind, before.get(key), entity_changes)
            for conflict in conflicts:
                log.warning(
                    "immutable_field_conflict", kind=kind, project_id=project_id,
                    entity_id=entity_id, field=conflict.field, kept=repr(conflict.kept)[:200],
                    refused=repr(conflict.refused)[:200], event_id=conflict.event_id,
                )  # fmt: skip
            priced = _priced(catalogs[project_id], state.values) if kind == "observation" else None
            rows.append(stored_row(kind, project_id, state, now, priced))
            old = before.get(key)
            if old is not None and _sort_key(kind, old.values) != _sort_key(kind, state.values):
                # An earlier create arrived late and moved the row: the old one must not stay.
                rows.append({**stored_row(kind, project_id, old, now), "is_deleted": 1})
            states[key] = state
        try:
            for chunk in _within_partition_limit(kind, rows):
                await self._store.insert(kind, chunk)
        except BaseException:
            self._recent.forget(list(states))  # what ClickHouse now holds for them is unknown
            raise
        self._recent.put(states)

    async def _states_before(
        self, kind: str, changes: dict[Key, list[Change]]
    ) -> dict[Key, Merged]:
        """Each entity's state before these events: remembered, or else stored (one query for
        the batch's misses of all projects), or else none."""
        before = {}
        missing = []
        for key in changes:
            state = self._recent.get(key)
            if state is None:
                missing.append(key)
            else:
                before[key] = state
        if missing:
            wanted = {(project_id, entity_id) for _, project_id, entity_id in missing}
            rows = await self._store.latest_of(kind, sorted(wanted))
            for row in rows:
                if (row["project_id"], row["id"]) in wanted:
                    before[(kind, row["project_id"], row["id"])] = from_stored(kind, row)
        return before


def _sort_key(kind: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """What places a row in its table's sort key besides the project and id (migrations)."""
    at = parse_time(values.get("startTime" if kind == "observation" else "timestamp"))
    day = at.date() if at else None
    return (day, values.get("traceId")) if kind == "observation" else (day,)


def _within_partition_limit(kind: str, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows in inserts of at most 100 months each: tables are partitioned by month, and
    ClickHouse refuses an insert spanning more than `max_partitions_per_insert_block` (100)
    partitions. One insert in practice; a backfill over many years takes a few."""
    months: dict[tuple[int, int] | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        at = row[_PARTITION_COLUMNS[kind]]
        months[(at.year, at.month) if isinstance(at, datetime) else None].append(row)
    groups = list(months.values())
    return [
        [row for group in groups[i : i + _MONTHS_PER_INSERT] for row in group]
        for i in range(0, len(groups), _MONTHS_PER_INSERT)
    ]


def _change(kind: str, event: events_pb2.IngestionEvent, body: dict[str, Any]) -> Change:
    event_time = from_timestamp(event.event_time)
    # Observations: body.startTime ?? envelope time. Traces: body.timestamp ?? envelope time.
    # Scores: always the envelope time on /ingestion.
    time_field = "startTime" if kind == "observation" else "timestamp"
    if body.get(time_field) is None:  # null is absent (an event that skipped ingestion)
        body[time_field] = event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind == "observation":
        body["type"] = event.observation_type
    return Change(event_time, event.type in _CREATES, body, event.event_id)


def _unwritable(kind: str, body: dict[str, Any]) -> str | None:
    """What in this body no column can hold, by the rules ingestion applies at the door
    (libs.common.limits), or None. Only the fields of typed columns: a failing insert would cost
    the whole batch a split into halves down to this record."""
    for field in _IDS[kind]:
        value = body.get(field)
        if value is not None and not limits.is_id(value):
            return f"{field} must be 1-{limits.MAX_ID_LENGTH} characters, none a control one"
    for field in _TIMES[kind]:
        value = body.get(field)
        if value is not None and not _is_time(value):
            return f"{field} must be a time {limits.TIME_RANGE}, got {value!r:.40}"
    if kind != "observation":
        return None
    version = body.get("promptVersion")
    if version is not None and not limits.is_prompt_version(version):
        return f"promptVersion must be 0-{limits.MAX_PROMPT_VERSION}, got {version!r:.40}"
    usage = body.get("usageDetails")
    if usage is not None and not (type(usage) is dict and limits.usage_fits(usage)):
        return "usageDetails must be non-negative counts summing to less than 2^63"
    costs = body.get("costDetails")
    if costs is not None and not (type(costs) is dict and limits.costs_fit(costs)):
        return f"costDetails must be non-negative USD summing to less than {limits.MAX_COST:,}"
    return None


def _is_time(value: Any) -> bool:
    try:
        moment = parse_time(value)
    except (TypeError, ValueError):
        return False
    return moment is not None and limits.time_in_range(moment)


def _priced(catalog: Catalog, state: dict[str, Any]) -> Priced:
    """Usage and cost of the merged observation: recomputed on every merge, so a later event
    that brings usage re-prices it. Without given usage or cost, a generation whose model has a
    tokenizer is counted (never an ERROR-level one, as in Langfuse)."""
    usage = usage_with_total(state.get("usageDetails"))
    model_name = state.get("model")
    model = catalog.match(model_name) if model_name else None
    if model and not usage and not state.get("costDetails") and state.get("level") != "ERROR":
        usage = count_usage(
            model.tokenizer_id, model.tokenizer_config, state.get("input"), state.get("output")
        )
    return price(
        model,
        usage,
        state.get("costDetails") or {},
        state.get("modelParameters"),
        state.get("metadata"),
    )
