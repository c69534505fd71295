"""The query service's part of retention (libs/common/retention.py): the time filter every read
applies (through store.current()), and the pass that deletes a project's traces, observations
and scores older than the announced cutoff from ClickHouse.

Each table counts retention from its own time: traces and scores from `timestamp`, observations
from `start_time` (as Langfuse does), so sessions and metrics, which read those rows, follow.
The tables kept per day beside them (the days a trace has observations or scores on, the
metrics rollups and their builds) lose the days before the cutoff's, whose rows are all gone;
the cutoff's own day is rebuilt by the metrics path once its rows change, and read live under a
retention until then (analytics._valid_builds).

The delete is ClickHouse's lightweight `DELETE FROM`: it only marks the rows (a mask column
written for the parts it touches, the rows dropped physically by later merges), so a pass over a
month of rows takes seconds and reads beside it keep their speed. Dropping partitions cannot
serve a per-project retention (the tables are partitioned by month, not by project), and a
mutation (`ALTER TABLE … DELETE`) rewrites every column of every part it touches; see the
README for the measurements."""

from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.retention import cutoff_of, deleted
from services.query.clickhouse import ClickHouse

log = structlog.get_logger()

# The column each table's retention counts from.
TIME_COLUMNS = {"traces": "timestamp", "observations": "start_time", "scores": "timestamp"}
# Tables of per-day rows derived from those (migrations 0006-0009, 0011), keyed by `day`.
DAY_TABLES = (
    "observation_days",
    "score_days",
    "observation_ids",
    "observation_rollups",
    "observation_rollup_builds",
    "observation_trace_rollups",
    "observation_trace_rollup_builds",
)


def within(table: str, cutoff: datetime | None) -> str:
    """The condition (with its leading AND) that leaves out rows older than `cutoff`; "" for
    none. The cutoff is written as a literal, formatted here from a datetime, never from input."""
    if cutoff is None:
        return ""
    return f" AND {TIME_COLUMNS[table]} >= {_literal(cutoff)}"


def _literal(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"toDateTime64('{text}', 3, 'UTC')"


class RetentionPass:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def handle(self, events: Sequence[events_pb2.ProjectRetention]) -> None:
        for event in events:
            await self.run(event.project_id, cutoff_of(event))

    async def run(self, project_id: str, cutoff: datetime) -> dict[str, int]:
        """Deletes the project's rows older than `cutoff`, table by table; returns how many rows
        (versions included) each held. Run again after a crash, it finishes what is left."""
        counts: dict[str, int] = {}
        params = {"project_id": project_id}
        moment = _literal(cutoff)
        before = {
            **{table: f"{column} < {moment}" for table, column in TIME_COLUMNS.items()},
            **dict.fromkeys(DAY_TABLES, f"day < toDate({moment})"),
        }
        for table, condition in before.items():
            older = f"project_id = {{project_id:String}} AND {condition}"
            [row] = await self._ch.select(f"SELECT count() AS n FROM {table} WHERE {older}", params)
            counts[table] = int(row["n"])
            if counts[table]:
                await self._ch.execute(f"DELETE FROM {table} WHERE {older}", params)
            deleted("query", table, counts[table])
        log.info("retention_applied", service="query", project_id=project_id,
                 cutoff=cutoff.isoformat(), **counts)  # fmt: skip
        return counts
