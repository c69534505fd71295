"""Retention against the real stores: each owner's pass deletes a project's data from before the
cutoff and nothing newer, nothing of another project; reads hide the old data before any pass;
a pass run again (after a crash, or a replayed announcement) deletes nothing more and finishes
what a stopped one left; the gateway announces each project once a day."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import KafkaCluster, Topic, ensure_topics, make_producer
from libs.common.migrate import load_migrations, migrate, migrate_postgres
from libs.common.retention import cutoff_of
from libs.common.scope import RETENTION_DAYS_KEY, reading_within
from services.evals.comments import CommentFilter, CommentStore
from services.evals.retention import RetentionPass as EvalsRetention
from services.evals.runs import run_items_page
from services.evals.server import MIGRATIONS as EVALS_MIGRATIONS
from services.gateway.retention import RetentionAnnouncer
from services.gateway.server import MIGRATIONS as GATEWAY_MIGRATIONS
from services.ingestion.event_index import EventLogIndex
from services.ingestion.media import Media, MediaObjects
from services.ingestion.retention import RetentionPass as IngestionRetention
from services.ingestion.server import MIGRATIONS as INGESTION_MIGRATIONS
from services.ingestion.store import EventLog, open_s3
from services.query.clickhouse import ClickHouse, ClickHouseTarget, EmbeddedClickHouse
from services.query.filters import Where
from services.query.retention import RetentionPass as QueryRetention
from services.query.server import MIGRATIONS as QUERY_MIGRATIONS
from services.query.store import TraceStore
from tests.integration.conftest import unique
from tests.integration.test_stores import s3_config

NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(days=7)
OLD = NOW - timedelta(days=10)
# A week's retention: what reads within a call of such a project see.
WEEK = {RETENTION_DAYS_KEY: "7"}


# ---- query: ClickHouse


@pytest.fixture
async def clickhouse(tmp_path: Path) -> AsyncIterator[ClickHouse]:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(QUERY_MIGRATIONS / "clickhouse"))
    yield clickhouse
    clickhouse.close()


async def _insert(ch: ClickHouse, project: str, name: str, moment: datetime) -> None:
    """A trace `name` at `moment` with an observation and a score, each written twice (two
    versions, as the writer's updates leave them until merged)."""
    params = {"p": project, "id": name, "at": moment}
    for _ in range(2):
        await ch.execute(
            "INSERT INTO traces (project_id, id, timestamp, session_id, created_at, updated_at,"
            " event_ts) VALUES ({p:String}, {id:String}, {at:DateTime64(3)}, 's', now64(3),"
            " now64(3), now64(3))",
            params,
        )
        await ch.execute(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time,"
            " created_at, updated_at, event_ts) VALUES ({p:String}, {id:String}, {id:String},"
            " 'SPAN', 'n', {at:DateTime64(3)}, now64(3), now64(3), now64(3))",
            params,
        )
        await ch.execute(
            "INSERT INTO scores (project_id, id, trace_id, name, value, data_type, source,"
            " timestamp, created_at, updated_at, event_ts) VALUES ({p:String}, {id:String},"
            " {id:String}, 'q', 1, 'NUMERIC', 'API', {at:DateTime64(3)}, now64(3), now64(3),"
            " now64(3))",
            params,
        )


async def _ids(ch: ClickHouse) -> dict[str, list[tuple[str, str]]]:
    return {
        table: [
            (row["project_id"], row["id"])
            for row in await ch.select(
                f"SELECT DISTINCT project_id, id FROM {table} ORDER BY project_id, id"
            )
        ]
        for table in ("traces", "observations", "scores")
    }


async def test_reads_hide_what_the_retention_keeps_no_more_even_before_a_pass(
    clickhouse: ClickHouse,
) -> None:
    await _insert(clickhouse, "p", "old", OLD)
    await _insert(clickhouse, "p", "new", NOW)
    store = TraceStore(clickhouse)

    async def visible() -> dict[str, Any]:
        traces, total = await store.page_of("trace", "p", Where(), "id", 50, 0)
        observations, _ = await store.page_of("observation", "p", Where(), "id", 50, 0)
        scores = await store.scores_of_traces("p", ["old", "new"])
        sessions, _ = await store.sessions("p", None, None, None, 10, 0)
        return {
            "traces": [t["id"] for t in traces],
            "total": total,
            "old trace": await store.trace("p", "old") is not None,
            "observations": [o["id"] for o in observations],
            "observations of old": len(await store.observations_of("p", "old")),
            "scores": [s["id"] for s in scores],
            "session start": sessions[0]["created_at"][:10],
        }

    forever = await visible()
    with reading_within(WEEK):
        week = await visible()
    assert forever["traces"] == ["new", "old"] and forever["old trace"]
    assert week == {
        "traces": ["new"],
        "total": 1,
        "old trace": False,
        "observations": ["new"],
        "observations of old": 0,
        "scores": ["new"],
        "session start": f"{NOW:%Y-%m-%d}",
    }


async def test_the_query_pass_deletes_old_rows_of_the_project_only_and_once(
    clickhouse: ClickHouse,
) -> None:
    for project in ("p", "p2"):
        await _insert(clickhouse, project, "old", OLD)
        await _insert(clickhouse, project, "new", NOW)
    await _insert(clickhouse, "p", "edge", CUTOFF)  # at the cutoff: kept
    retention = QueryRetention(clickhouse)

    first = await retention.run("p", CUTOFF)
    again = await retention.run("p", CUTOFF)

    # Rows counted with their versions, as many as background merges left.
    assert set(first) == {"traces", "observations", "scores"} and all(first.values())
    assert again == {"traces": 0, "observations": 0, "scores": 0}
    kept = [("p", "edge"), ("p", "new"), ("p2", "new"), ("p2", "old")]
    assert await _ids(clickhouse) == {"traces": kept, "observations": kept, "scores": kept}


async def test_rows_written_after_a_pass_land_and_stay(clickhouse: ClickHouse) -> None:
    """Lightweight deletes mask rows; a later insert of the same ids is a new row, visible."""
    await _insert(clickhouse, "p", "t", OLD)
    await QueryRetention(clickhouse).run("p", CUTOFF)
    await _insert(clickhouse, "p", "t", NOW)
    trace = await TraceStore(clickhouse).trace("p", "t")
    assert trace is not None and trace["timestamp"].startswith(f"{NOW:%Y-%m-%d}")
