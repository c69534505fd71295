"""The writer's stored state does not depend on how events fall into batches: whatever the split,
the order of the batches, duplicates and replays, what ClickHouse holds for every entity equals
the merge of all its events at once (services/query/rows.py). Generated histories of traces,
observations (creates and updates, updates first, conflicting types and traces) and scores
(renamed under one id) run through the real EventWriter into a real chDB; each example uses a
project of its own."""

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import (
    BatchConsumer,
    KafkaCluster,
    Producer,
    Record,
    Topic,
    ensure_topics,
    make_producer,
)
from libs.common.migrate import load_migrations, migrate
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.consumer import Decoded, EventWriter, _priced, decode_events
from services.query.deletions import DeletionListener, DeletionNotices, listener_settings
from services.query.models import ModelCatalogs
from services.query.pricing import Catalog
from services.query.recent_state import RecentState
from services.query.retention import RetentionPass
from services.query.rows import Merged, encode_clocks, from_stored, merge, stored_row
from services.query.server import MIGRATIONS
from services.query.store import TABLES, TraceStore
from tests.support.eventually import eventually

TRACE = events_pb2.EVENT_TYPE_TRACE_CREATE
CREATE = events_pb2.EVENT_TYPE_OBSERVATION_CREATE
UPDATE = events_pb2.EVENT_TYPE_OBSERVATION_UPDATE
SCORE = events_pb2.EVENT_TYPE_SCORE_CREATE
# Near the end of a month: events a few hours apart fall on other days and in another month,
# so an early create arriving late moves a row to another sort key and partition.
T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
OFFSETS = [timedelta(0), timedelta(seconds=1), timedelta(hours=14), timedelta(hours=40)]
T = TypeVar("T")


class NoProjectModels:
    """The model store of projects without models of their own: prices come from the defaults."""

    async def entries(self, project_id: str) -> list[dict[str, Any]]:
        return []


@dataclass(frozen=True)
class Event:
    type: int
    entity_id: str
    at: timedelta
    body: dict[str, Any]
    observation_type: str = ""


def iso(offset: timedelta) -> str:
    return (T0 + offset).isoformat(timespec="milliseconds").replace("+00:00", "Z")


times = st.sampled_from(OFFSETS)
metadata = st.dictionaries(
    st.sampled_from(["a", "b"]),
    st.one_of(st.integers(0, 2), st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2))),
    max_size=2,
)
text = st.sampled_from(["", "one", "two", 0, {"q": 1}])
names = st.sampled_from(["alpha", "beta", "gamma"])


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def trace_event(draw: st.DrawFn, trace_id: str) -> Event:
    body = {
        "id": trace_id,
        "timestamp": draw(optional(times.map(iso))),
        "name": draw(optional(names)),
        "userId": draw(optional(st.sampled_from(["u1", "u2"]))),
        "metadata": draw(optional(metadata)),
        "tags": draw(optional(st.lists(st.sampled_from(["x", "y", "z"]), max_size=2))),
        "input": draw(optional(text)),
        "output": draw(optional(text)),
    }
    return Event(TRACE, trace_id, draw(times), body)


@st.composite
def observation_event(draw: st.DrawFn, observation_id: str, trace_ids: list[str]) -> Event:
    create = draw(st.booleans())
    body = {
        "id": observation_id,
        "traceId": draw(st.sampled_from(trace_ids)),
        "startTime": draw(optional(times.map(iso))) if create else None,
        "endTime": draw(optional(times.map(iso))),
        "name": draw(optional(names)),
        "metadata": draw(optional(metadata)),
        "input": draw(optional(text)) if create else None,
        "output": draw(optional(text)),
        "level": draw(optional(st.sampled_from(["DEFAULT", "ERROR"]))),
        "model": draw(optional(st.sampled_from(["gpt-4o", "unknown-model"]))),
        "usageDetails": draw(optional(st.dictionaries(st.sampled_from(["input", "output"]),
                                                      st.integers(0, 50), max_size=2))),
    }  # fmt: skip
    kind = draw(st.sampled_from(["GENERATION", "SPAN"]))
    return Event(CREATE if create else UPDATE, observation_id, draw(times), body, kind)


@st.composite
def score_event(draw: st.DrawFn, score_id: str, trace_id: str) -> Event:
    body = {
        "id": score_id,
        "traceId": trace_id,
        "name": draw(names),
        "value": draw(st.integers(0, 3)),
        "comment": draw(optional(st.sampled_from(["fine", "meh"]))),
        "metadata": draw(optional(metadata)),
    }
    return Event(SCORE, score_id, draw(times), body)


@st.composite
def histories(draw: st.DrawFn, conflicting_traces: bool) -> list[Event]:
    """The events of a few traces: trace upserts, observations whose updates may come first and
    whose events may disagree on type (and on trace, when `conflicting_traces`), scores renamed
    under one id."""
    trace_ids = [f"t{i}" for i in range(draw(st.integers(1, 3)))]
    events = []
    for trace_id in trace_ids:
        events += draw(st.lists(trace_event(trace_id), max_size=2))
        for o in range(draw(st.integers(0, 3))):
            named = trace_ids if conflicting_traces else [trace_id]
            events += draw(
                st.lists(observation_event(f"{trace_id}.o{o}", named), min_size=1, max_size=3)
            )
        for s in range(draw(st.integers(0, 2))):
            events += draw(
                st.lists(score_event(f"{trace_id}.s{s}", trace_id), min_size=1, max_size=3)
            )
    return events


def record(project_id: str, events: list[tuple[int, Event]]) -> Record:
    """A message of `ingestion.events.v1` holding these (numbered) events."""
    batch = events_pb2.IngestionEventBatch()
    for number, event in events:
        at = Timestamp()
        at.FromDatetime(T0 + event.at)
        batch.events.add(
            event_id=f"ev-{number}",
            project_id=project_id,
            type=event.type,  # type: ignore[arg-type]
            observation_type=event.observation_type,
            entity_id=event.entity_id,
            trace_id=str(event.body.get("traceId") or event.entity_id),
            event_time=at,
            received_at=at,
            body_json=orjson.dumps({k: v for k, v in event.body.items() if v is not None}),
        )
    value = encode_event_batch(batch)
    return ConsumerRecord("topic", 0, 0, 0, 0, b"", value, None, 0, len(value), [])


def deliveries(project_id: str, events: list[Event], seed: int) -> list[list[list[Decoded]]]:
    """The events in messages of a few events each, consumed in batches of a few messages, in
    any order, some messages delivered again (a replay after a crash, a duplicate send)."""
    rng = random.Random(seed)
    numbered = list(enumerate(events))
    rng.shuffle(numbered)
    messages = []
    while numbered:
        size = rng.randint(1, 4)
        messages.append(decode_events(record(project_id, numbered[:size])))
        numbered = numbered[size:]
    messages += rng.choices(messages, k=rng.randint(0, len(messages)))
    rng.shuffle(messages)
    batches = []
    while messages:
        size = rng.randint(1, 3)
        batches.append(messages[:size])
        messages = messages[size:]
    return batches


def all_at_once(project_id: str, events: list[Event]) -> dict[tuple[str, str], Merged]:
    """Every entity's state merged from all its events in one go."""
    changes: dict[tuple[str, str], list[Any]] = {}
    for event in decode_events(record(project_id, list(enumerate(events)))):
        changes.setdefault((event.kind, event.entity_id), []).append(event.change)
    return {key: merge(key[0], None, c)[0] for key, c in changes.items()}


@pytest.fixture(scope="module")
async def chdb(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedClickHouse]:
    clickhouse = EmbeddedClickHouse(str(Path(tmp_path_factory.mktemp("order")) / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS / "clickhouse"))
    yield clickhouse
    clickhouse.close()


@pytest.fixture(scope="module")
def catalogs() -> ModelCatalogs:
    return ModelCatalogs(NoProjectModels())  # type: ignore[arg-type]


async def stored_states(
    clickhouse: EmbeddedClickHouse, project_id: str
) -> dict[tuple[str, str], Merged]:
    states = {}
    for kind, table in TABLES.items():
        rows = await clickhouse.select(
            f"SELECT * FROM {table} FINAL WHERE project_id = {{p:String}}", {"p": project_id}
        )
        for row in rows:
            assert (kind, row["id"]) not in states, f"two live rows for {kind} {row['id']}"
            states[(kind, row["id"])] = from_stored(kind, row)
    return states


def comparable(state: Merged) -> tuple[dict[str, Any], str]:
    """A state read from its row, without the times of writing."""
    values = {k: v for k, v in state.values.items() if k not in ("createdAt", "updatedAt")}
    # Costs as their Decimal64(12) columns hold them.
    if "totalCost" in values:
        values["totalCost"] = round(values["totalCost"], 12)
    for costs in ("costDetails", "computedCost"):
        values[costs] = {k: round(v, 12) for k, v in values.get(costs, {}).items()}
    return values, encode_clocks(state)


def as_stored(kind: str, state: Merged, catalog: Catalog) -> Merged:
    """What the row of this state reads back as (priced as the writer prices)."""
    priced = _priced(catalog, state.values) if kind == "observation" else None
    return from_stored(kind, stored_row(kind, "p", state, T0, priced))


async def check_order_independence(
    chdb: EmbeddedClickHouse,
    catalogs: ModelCatalogs,
    events: list[Event],
    seed: int,
    forget_between_batches: bool,
) -> None:
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    writer = EventWriter(TraceStore(chdb), catalogs, RecentState(10_000))
    for batch in deliveries(project_id, events, seed):
        await writer.write(batch)
        if forget_between_batches:
            writer.forget_recent()
    await check_stored_is_the_merge_of(chdb, catalogs, project_id, events)


async def check_stored_is_the_merge_of(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, project_id: str, events: list[Event]
) -> None:
    """What ClickHouse holds for the project is exactly the merge of `events`, all at once."""
    stored = await stored_states(chdb, project_id)
    expected = all_at_once(project_id, events)
    assert set(stored) == set(expected)
    catalog = await catalogs.for_project(project_id)
    for (kind, entity_id), state in expected.items():
        (got, got_clocks), (want, want_clocks) = (
            comparable(stored[(kind, entity_id)]),
            comparable(as_stored(kind, state, catalog)),
        )
        differ = {k: (got.get(k), want.get(k)) for k in got | want if got.get(k) != want.get(k)}
        assert not differ and got_clocks == want_clocks, (kind, entity_id, differ)


# ~0.3 s an example on an idle machine: 250 examples in all.
PROPERTY = settings(
    max_examples=125,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.timeout(600)
@PROPERTY
@given(events=histories(conflicting_traces=True), seed=st.integers(0, 2**32))
async def test_stored_state_is_the_merge_of_all_events_whatever_the_batches(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, events: list[Event], seed: int
) -> None:
    await check_order_independence(chdb, catalogs, events, seed, forget_between_batches=False)


@pytest.mark.timeout(600)
@PROPERTY
@given(events=histories(conflicting_traces=True), seed=st.integers(0, 2**32))
async def test_stored_state_is_the_same_when_every_batch_reads_back_from_clickhouse(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, events: list[Event], seed: int
) -> None:
    """The writer's memory cleared after every batch, as after a rebalance: each batch merges
    into the rows read back from ClickHouse."""
    await check_order_independence(chdb, catalogs, events, seed, forget_between_batches=True)


# Regressions: each a way the writer's result depended on the batches before the merge kept
# clocks. Every one runs with the writer's memory cleared between batches (the rows read back
# from ClickHouse) and kept (the remembered state).


async def write_in_turn(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, batches: list[list[Event]], forget: bool
) -> dict[tuple[str, str], Merged]:
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    writer = EventWriter(TraceStore(chdb), catalogs, RecentState(100))
    numbered = itertools.count()
    for events in batches:
        await writer.write(
            [decode_events(record(project_id, [(next(numbered), e) for e in events]))]
        )
        if forget:
            writer.forget_recent()
    return await stored_states(chdb, project_id)


FORGET = pytest.mark.parametrize("forget", [False, True], ids=["remembered", "read-back"])


@FORGET
async def test_an_update_in_an_earlier_batch_than_its_create_never_sets_the_start_time(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, forget: bool
) -> None:
    """The update's own time stood in for startTime; it now does only until the create comes,
    and the row it wrote on that other day is gone."""
    update = Event(UPDATE, "o", OFFSETS[3], {"id": "o", "traceId": "t", "output": "done"}, "SPAN")
    create = Event(CREATE, "o", OFFSETS[0], {"id": "o", "traceId": "t", "name": "n"}, "SPAN")
    stored = await write_in_turn(chdb, catalogs, [[update], [create]], forget)
    state = stored[("observation", "o")].values
    assert (state["startTime"], state["output"], state["name"]) == (iso(OFFSETS[0]), "done", "n")


@FORGET
async def test_a_score_renamed_under_its_id_keeps_one_row(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, forget: bool
) -> None:
    first = Event(SCORE, "s", OFFSETS[0], {"id": "s", "traceId": "t", "name": "a", "value": 1})
    renamed = Event(SCORE, "s", OFFSETS[1], {"id": "s", "traceId": "t", "name": "b", "value": 2})
    stored = await write_in_turn(chdb, catalogs, [[first], [renamed]], forget)
    assert stored[("score", "s")].values["name"] == "b"  # and no second row (stored_states)


@FORGET
async def test_an_older_value_in_a_later_batch_never_overwrites_a_newer_one(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, forget: bool
) -> None:
    newer = Event(TRACE, "t", OFFSETS[1], {"id": "t", "name": "newer", "metadata": {"a": 2}})
    older = Event(TRACE, "t", OFFSETS[0], {"id": "t", "name": "older", "metadata": {"a": {"x": 1}}})
    stored = await write_in_turn(chdb, catalogs, [[newer], [older]], forget)
    assert stored[("trace", "t")].values["name"] == "newer"
    assert stored[("trace", "t")].values["metadata"] == {"a": 2}


@FORGET
async def test_an_empty_object_over_keys_still_beats_an_older_value_arriving_later(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, forget: bool
) -> None:
    """Found by the property test: {b: {}} written after {b: {x: 0}} leaves b = {x: 0}, and the
    stored row showed no leaf at b; read back, an older {b: 0} arriving later replaced it."""

    def event(kind: int, at: timedelta, metadata: dict[str, Any]) -> Event:
        return Event(kind, "o", at, {"id": "o", "traceId": "t", "metadata": metadata}, "SPAN")

    create = event(CREATE, OFFSETS[0], {"b": {"x": 0}})
    older = event(UPDATE, OFFSETS[0], {"a": 0, "b": 0})
    newest = event(UPDATE, OFFSETS[1], {"b": {}})
    stored = await write_in_turn(chdb, catalogs, [[newest, create], [older]], forget)
    assert stored[("observation", "o")].values["metadata"] == {"a": 0, "b": {}}


@FORGET
async def test_an_earlier_trace_upsert_arriving_later_moves_the_trace_to_its_day(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, forget: bool
) -> None:
    late = Event(TRACE, "t", OFFSETS[3], {"id": "t", "name": "n"})
    early = Event(TRACE, "t", OFFSETS[0], {"id": "t"})
    stored = await write_in_turn(chdb, catalogs, [[late], [early]], forget)
    assert stored[("trace", "t")].values["timestamp"] == iso(OFFSETS[0])


@FORGET
@pytest.mark.parametrize("first_arrives", [False, True], ids=["first-late", "first-first"])
async def test_a_conflicting_trace_keeps_the_first_creates_and_is_logged(
    chdb: EmbeddedClickHouse,
    catalogs: ModelCatalogs,
    capsys: pytest.CaptureFixture[str],
    forget: bool,
    first_arrives: bool,
) -> None:
    """Read back, the stored row under the other trace was not found (the lookup searched only
    the traces the batch's events named), and a second live row was written beside it."""
    first = Event(CREATE, "o", OFFSETS[0], {"id": "o", "traceId": "t1"}, "GENERATION")
    other = Event(CREATE, "o", OFFSETS[1], {"id": "o", "traceId": "t2", "name": "n"}, "SPAN")
    batches = [[first], [other]] if first_arrives else [[other], [first]]
    stored = await write_in_turn(chdb, catalogs, batches, forget)  # and one row (stored_states)
    state = stored[("observation", "o")].values
    assert (state["traceId"], state["type"], state["name"]) == ("t1", "GENERATION", "n")
    logged = capsys.readouterr().out
    assert "immutable_field_conflict" in logged and "event_id=ev-1" in logged


# Deletions: the writer's memory lets go of what a deletion removed, so a late event of a deleted
# entity starts it afresh (stored = the merge of the late events alone) instead of bringing the
# deleted fields back from the remembered state.

BEFORE = [
    Event(TRACE, "t", OFFSETS[0], {"id": "t", "name": "n", "input": "q", "metadata": {"a": 1}}),
    Event(
        CREATE,
        "o",
        OFFSETS[0],
        {"id": "o", "traceId": "t", "name": "n", "input": "q", "model": "gpt-4o"},
        "GENERATION",
    ),  # fmt: skip
    Event(
        SCORE,
        "s",
        OFFSETS[0],
        {"id": "s", "traceId": "t", "name": "n", "value": 1, "comment": "deleted"},
    ),  # fmt: skip
]
LATE = [
    Event(TRACE, "t", OFFSETS[1], {"id": "t", "userId": "u"}),
    Event(UPDATE, "o", OFFSETS[1], {"id": "o", "traceId": "t", "output": "a"}, "GENERATION"),
    Event(SCORE, "s", OFFSETS[1], {"id": "s", "traceId": "t", "name": "n", "value": 2}),
]


async def write(writer: EventWriter, project_id: str, events: list[Event], first: int) -> None:
    """The events in one batch, numbered from `first` (the late ones from 0, as `all_at_once`)."""
    numbered = list(enumerate(events, start=first))
    await writer.write([decode_events(record(project_id, numbered))])


@pytest.mark.timeout(120)
async def test_the_lookup_of_a_large_batch_finds_the_stored_among_many_new(
    chdb: EmbeddedClickHouse,
) -> None:
    """A batch of 44,000 entities the writer does not remember, 4,000 of the project's 200,000
    stored observations (with 2 KB inputs, so granules of a few hundred rows) among them: their
    lookup once took minutes (an array parameter's IN), stalling the writer."""
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    await chdb.execute(
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, input,"
        " created_at, updated_at, event_ts) SELECT {p:String}, hex(sipHash64(number)),"
        " hex(sipHash64(intDiv(number, 5), 't')), 'SPAN', 'step', now64(3),"
        " repeat('x', 2000), now64(3), now64(3), now64(3) FROM numbers(200000)",
        {"p": project_id},
    )
    stored = [
        (project_id, row["id"])
        for row in await chdb.select("SELECT hex(sipHash64(number * 50)) AS id FROM numbers(4000)")
    ]
    new = [(project_id, uuid.uuid4().hex[:16]) for _ in range(40_000)]
    rows = await TraceStore(chdb).latest_of("observation", sorted(stored + new))
    assert sorted((r["project_id"], r["id"]) for r in rows) == sorted(stored)


@pytest.fixture
async def producer(kafka: KafkaCluster) -> AsyncIterator[Producer]:
    topics = (Topic.INGESTION_DELETIONS, Topic.PROJECT_DELETIONS, Topic.PROJECT_RETENTION)
    await ensure_topics(kafka, dict.fromkeys(topics, 1))
    started = make_producer(kafka, client_id="test")
    await started.start()
    yield started
    await started.stop()


async def test_a_late_event_of_a_trace_deleted_here_starts_it_afresh(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, kafka: KafkaCluster, producer: Producer
) -> None:
    """The trace, its observation and its score were remembered when DeleteTraces removed them;
    the late events merged into that memory and wrote every deleted field back."""
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    store, recent = TraceStore(chdb), RecentState(100)
    writer = EventWriter(store, catalogs, recent)
    await write(writer, project_id, BEFORE, 100)
    notices = DeletionNotices(producer, kafka.topic(Topic.INGESTION_DELETIONS), recent)
    await store.delete_traces(project_id, ["t"])  # as QueryServicer.DeleteTraces does
    await notices.traces_deleted(project_id, ["t"])
    await write(writer, project_id, LATE, 0)
    await check_stored_is_the_merge_of(chdb, catalogs, project_id, LATE)


async def test_a_deleted_score_sent_again_starts_afresh(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, kafka: KafkaCluster, producer: Producer
) -> None:
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    store, recent = TraceStore(chdb), RecentState(100)
    writer = EventWriter(store, catalogs, recent)
    await write(writer, project_id, BEFORE[2:], 100)
    await store.delete_score(project_id, "s")  # as QueryServicer.DeleteScore does
    DeletionNotices(producer, "unused", recent).score_deleted(project_id, "s")
    await write(writer, project_id, LATE[2:], 0)
    await check_stored_is_the_merge_of(chdb, catalogs, project_id, LATE[2:])


async def test_a_trace_deleted_by_another_replica_is_forgotten_once_announced(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, kafka: KafkaCluster, producer: Producer
) -> None:
    """The writer of the trace's partition runs in another replica than the one that took the
    DELETE: it hears of it on ingestion.deletions.v1, in a consumer group of its own."""
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    store = TraceStore(chdb)
    writers_memory = RecentState(100)
    writer = EventWriter(store, catalogs, writers_memory)
    listener = DeletionListener(kafka, writers_memory)
    assigned, stop = asyncio.Event(), asyncio.Event()
    consumer = BatchConsumer(
        listener_settings(kafka), listener.decode, listener.handle, producer,
        on_rebalance=assigned.set,
    )  # fmt: skip
    listening = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(assigned.wait(), 30)
        await write(writer, project_id, BEFORE, 100)
        deleting_replica = DeletionNotices(
            producer, kafka.topic(Topic.INGESTION_DELETIONS), RecentState(100)
        )
        await store.delete_traces(project_id, ["t"])
        await deleting_replica.traces_deleted(project_id, ["t"])
        await eventually(
            now(lambda: [writers_memory.get(("trace", project_id, "t"))]),
            lambda found: found == [None],
        )
    finally:
        stop.set()
        await listening
    await write(writer, project_id, LATE, 0)
    await check_stored_is_the_merge_of(chdb, catalogs, project_id, LATE)


@pytest.mark.parametrize("deletion", ["retention", "project"])
async def test_a_late_event_after_a_retention_pass_or_a_project_deletion_starts_afresh(
    chdb: EmbeddedClickHouse, catalogs: ModelCatalogs, kafka: KafkaCluster, deletion: str
) -> None:
    """Those deletions run in one replica, after their announcement: what the writer wrote in
    between (here: all of it) must not be trusted either."""
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    store, recent = TraceStore(chdb), RecentState(100)
    writer = EventWriter(store, catalogs, recent)
    listener = DeletionListener(kafka, recent)
    cutoff = T0 + timedelta(days=1)
    if deletion == "retention":
        notice: Message = events_pb2.ProjectRetention(project_id=project_id, retention_days=1)
        notice.cutoff.FromDatetime(cutoff)  # type: ignore[attr-defined]
    else:
        notice = events_pb2.ProjectDeleted(project_id=project_id)
    await listener.handle([notice])
    await write(writer, project_id, BEFORE, 100)
    if deletion == "retention":
        await RetentionPass(chdb).run(project_id, cutoff)
    else:
        await store.delete_project(project_id)
    await write(writer, project_id, LATE, 0)
    await check_stored_is_the_merge_of(chdb, catalogs, project_id, LATE)


def now(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A probe for `eventually` of a value in memory."""

    async def probe() -> T:
        return read()

    return probe
