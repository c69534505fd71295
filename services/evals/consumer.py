"""ExperimentWriter: the evals service's Kafka consumer of `ingestion.events.v1` (group
`evals.experiments`). Spans carrying experiment attributes become runs and run items in
PostgreSQL (services/evals/experiments.py says which spans), whether or not the run was created
before, so Python 5, which never calls POST /dataset-run-items, lands in the same runs as Python
3 and JS. Every write is an upsert keyed by what the spans name, so a replay changes nothing;
offsets are committed only after the writes (libs.common.kafka)."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from libs.common.event_batches import event_batch_bytes
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, KafkaCluster, Record, Topic
from services.evals.experiments import EXPERIMENT_MARKER, ExperimentItemSpan, experiment_items

log = structlog.get_logger()

GROUP = "evals.experiments"


def consumer_settings(kafka: KafkaCluster) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(GROUP),
        topics=(kafka.topic(Topic.INGESTION_EVENTS),),
        # Most messages hold no experiment at all; large batches keep the cost per message low.
        max_records=1000,
    )


def decode_items(record: Record) -> list[ExperimentItemSpan]:
    """Most messages hold no experiment: those are not parsed (a third of the cost)."""
    try:
        raw = event_batch_bytes(record.value or b"")
        if EXPERIMENT_MARKER not in raw:
            return []
        return experiment_items(events_pb2.IngestionEventBatch.FromString(raw))
    except Exception as exc:
        raise InvalidMessage(f"not an IngestionEventBatch: {exc}") from exc


class ExperimentWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, batches: Sequence[list[ExperimentItemSpan]]) -> None:
        # The last span of an item wins (a key may come twice in one batch after a replay).
        items = {
            (i.project_id, i.experiment_id, i.item_id, i.trace_id): i
            for batch in batches
            for i in batch
        }
        if not items:
            return
        try:
            await self._write(list(items.values()))
        except asyncpg.DataError:
            # A value PostgreSQL refuses must neither hold back the items beside it nor be
            # retried forever: one by one, the refused ones are logged and skipped.
            for item in items.values():
                try:
                    await self._write([item])
                except asyncpg.DataError as exc:
                    log.warning("experiment_item_refused", trace=item.trace_id, error=str(exc))

    async def _write(self, items: list[ExperimentItemSpan]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            runs = await _upsert_runs(conn, items)
            rows = [
                _item_row(item, runs[(item.project_id, item.experiment_id)])
                for item in items
                if (item.project_id, item.experiment_id) in runs
            ]
            if rows:
                await conn.execute(_UPSERT_ITEMS, *map(list, zip(*rows, strict=True)))


async def _upsert_runs(
    conn: asyncpg.Connection, items: list[ExperimentItemSpan]
) -> dict[tuple[str, str], str]:
    """The run id of each (project, experiment id) among the items. A run is created when missing
    (first start time as its creation) and its description and metadata follow the spans. A
    dataset run is found by its id or by (dataset, run name), the key POST /dataset-run-items
    uses, so an experiment id chosen by the caller still lands in that run. Spans naming a
    dataset that is not the project's are left out."""
    first: dict[tuple[str, str], ExperimentItemSpan] = {}
    for item in sorted(items, key=lambda i: i.start_time):
        first.setdefault((item.project_id, item.experiment_id), item)
    runs = {}
    now = datetime.now(UTC)
    for (project_id, experiment_id), item in first.items():
        if item.dataset_id and not await conn.fetchval(
            _DATASET_EXISTS, project_id, item.dataset_id
        ):
            log.warning("experiment_dataset_unknown", project=project_id, dataset=item.dataset_id)
            continue
        metadata = (
            orjson.dumps(item.experiment_metadata).decode() if item.experiment_metadata else None
        )
        await conn.execute(
            _INSERT_RUN, project_id, experiment_id, item.dataset_id, item.run_name,
            item.description, metadata, item.start_time, now,
        )  # fmt: skip
        run_id = await conn.fetchval(
            _UPDATE_RUN, project_id, experiment_id, item.dataset_id, item.run_name,
            item.description, metadata, now,
        )  # fmt: skip
        if run_id is not None:
            runs[(project_id, experiment_id)] = run_id
    return runs


def _item_row(item: ExperimentItemSpan, run_id: str) -> tuple[Any, ...]:
    return (
        item.project_id, str(uuid.uuid4()), run_id, item.item_id, item.trace_id,
        item.observation_id, item.start_time, item.end_time, item.level, item.environment,
        _json(item.input), _json(item.output), _json(item.expected_output), _json(item.metadata),
        _json(item.item_metadata), item.item_version,
    )  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_DATASET_EXISTS = "SELECT true FROM datasets WHERE project_id = $1 AND id = $2"
# Any conflict (id, or dataset and name) means the run exists.
_INSERT_RUN = """
INSERT INTO dataset_runs
    (project_id, id, dataset_id, name, description, metadata, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, least($7::timestamptz, $8::timestamptz), $8)
ON CONFLICT DO NOTHING
"""
# The run by id, else by (dataset, name); a changed description or metadata is taken over.
_UPDATE_RUN = """
WITH found AS (
    SELECT id FROM dataset_runs
    WHERE project_id = $1 AND (id = $2 OR ($3::text IS NOT NULL AND dataset_id = $3 AND name = $4))
    ORDER BY id = $2 DESC LIMIT 1
), changed AS (
    UPDATE dataset_runs r
    SET description = coalesce($5, r.description), metadata = coalesce($6::text::jsonb, r.metadata),
        updated_at = $7
    FROM found
    WHERE r.project_id = $1 AND r.id = found.id
      AND (r.description IS DISTINCT FROM coalesce($5, r.description)
           OR r.metadata IS DISTINCT FROM coalesce($6::text::jsonb, r.metadata))
)
SELECT id FROM found
"""
# One statement for the batch; an item already recorded (by an earlier span or by POST
# /dataset-run-items) takes the span's fields and keeps its id, creation and observation.
_UPSERT_ITEMS = """
INSERT INTO dataset_run_items (
    project_id, id, dataset_run_id, dataset_item_id, trace_id, observation_id, created_at,
    updated_at, start_time, end_time, level, environment, input, output, expected_output,
    metadata, item_metadata, item_version)
SELECT project_id, id, run_id, item_id, trace_id, observation_id, start_time, start_time,
       start_time, end_time, level, environment, input::jsonb, output::jsonb,
       expected_output::jsonb, metadata::jsonb, item_metadata::jsonb, item_version
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[],
            $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[])
    AS t(project_id, id, run_id, item_id, trace_id, observation_id, start_time, end_time, level,
         environment, input, output, expected_output, metadata, item_metadata, item_version)
ON CONFLICT (project_id, dataset_run_id, dataset_item_id, trace_id) DO UPDATE SET
    observation_id = coalesce(dataset_run_items.observation_id, EXCLUDED.observation_id),
    start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, level = EXCLUDED.level,
    environment = EXCLUDED.environment, input = EXCLUDED.input, output = EXCLUDED.output,
    expected_output = EXCLUDED.expected_output, metadata = EXCLUDED.metadata,
    item_metadata = EXCLUDED.item_metadata, item_version = EXCLUDED.item_version
"""
