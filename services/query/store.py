"""TraceStore: the only module that reads or writes ClickHouse. Every statement takes the project
id as a bound parameter; reads deduplicate with FINAL (ReplacingMergeTree keeps one row per id)."""

import asyncio
from datetime import datetime
from typing import Any

from libs.common.scope import read_cutoff
from services.query import retention
from services.query.clickhouse import ClickHouse
from services.query.filters import Where

TABLES = {"trace": "traces", "observation": "observations", "score": "scores"}


class TraceStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def load(
        self, kind: str, project_id: str, ids: list[str], trace_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Current rows of these entities, for merging new events into them. `trace_ids`, when
        known, narrows the search to those traces' ranges (observations are sorted by trace):
        a batch's thousands of ids alone would make the id bloom filter pass nearly every
        granule."""
        params: dict[str, Any] = {"project_id": project_id, "ids": ids}
        condition = "id IN {ids:Array(String)}"
        if trace_ids is not None:
            condition += " AND trace_id IN {trace_ids:Array(String)}"
            params["trace_ids"] = trace_ids
        return await self._latest(TABLES[kind], condition, params)

    async def latest_of(
        self, kind: str, keys: list[tuple[str, str]], trace_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The writer's lookup: current rows of these (project id, entity id) pairs, of all the
        batch's projects in one query. It may return rows of other pairs of the same projects
        and ids, which the caller leaves aside. `trace_ids` narrows as in `load`."""
        params: dict[str, Any] = {
            "projects": sorted({project_id for project_id, _ in keys}),
            "ids": sorted({entity_id for _, entity_id in keys}),
        }
        condition = "project_id IN {projects:Array(String)} AND id IN {ids:Array(String)}"
        if trace_ids is not None:
            condition += " AND trace_id IN {trace_ids:Array(String)}"
            params["trace_ids"] = trace_ids
        return await self._ch.select(
            f"SELECT * FROM {TABLES[kind]} FINAL WHERE {condition}", params
        )

    async def _latest(
        self, table: str, condition: str, params: dict[str, Any], order: str = "id"
    ) -> list[dict[str, Any]]:
        return await self._ch.select(
            f"SELECT * FROM {current(table, condition)} ORDER BY {order}", params
        )

    async def insert(self, kind: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._ch.insert(TABLES[kind], rows)

    async def trace(self, project_id: str, trace_id: str) -> dict[str, Any] | None:
        rows = await self.load("trace", project_id, [trace_id])
        return rows[0] if rows else None

    async def observation(self, project_id: str, observation_id: str) -> dict[str, Any] | None:
        rows = await self.load("observation", project_id, [observation_id])
        return rows[0] if rows else None

    async def observations_of(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "trace_id": trace_id}
        return await self._latest(
            "observations", "trace_id = {trace_id:String}", params, "start_time, id"
        )

    async def scores_of(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "trace_id": trace_id}
        return await self._latest("scores", "trace_id = {trace_id:String}", params, "timestamp, id")

    async def scores_of_traces(self, project_id: str, trace_ids: list[str]) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "ids": trace_ids}
        return await self._latest(
            "scores", "trace_id IN {ids:Array(String)}", params, "trace_id, timestamp, id"
        )

    async def page_of(
        self, kind: str, project_id: str, where: Where, order: str, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of entities matching `where`, and how many match in all."""
        params = {**where.params, "project_id": project_id, "limit": limit, "offset": offset}
        source = current(TABLES[kind], where.sql())
        rows, [count] = await asyncio.gather(
            self._ch.select(
                f"SELECT * FROM {source} ORDER BY {order}"
                " LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
                params,
            ),
            self._ch.select(f"SELECT count() AS total FROM {source}", params),
        )
        return rows, int(count["total"])

    async def window(
        self,
        kind: str,
        project_id: str,
        where: Where,
        order: str,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page for cursor lists, and whether more follow: one query, no count."""
        params = {**where.params, "project_id": project_id, "limit": limit + 1, "offset": offset}
        rows = await self._ch.select(
            f"SELECT * FROM {current(TABLES[kind], where.sql())} ORDER BY {order}"
            " LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            params,
        )
        return rows[:limit], len(rows) > limit

    async def trace_rollups(
        self, project_id: str, trace_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Per trace: observation ids, first start, last end and total cost; and score ids."""
        params = {"project_id": project_id, "ids": trace_ids}
        observations, scores = await asyncio.gather(
            self._ch.select(
                "SELECT trace_id, groupArray(id) AS ids, min(start_time) AS first_start,"
                " max(coalesce(end_time, start_time)) AS last_end,"
                " toFloat64(sum(coalesce(total_cost, 0))) AS total_cost"
                f" FROM {current('observations', 'trace_id IN {ids:Array(String)}')}"
                " GROUP BY trace_id",
                params,
            ),
            self._ch.select(
                "SELECT trace_id, groupArray(id) AS ids"
                f" FROM {current('scores', 'trace_id IN {ids:Array(String)}')}"
                " GROUP BY trace_id",
                params,
            ),
        )
        rollups: dict[str, dict[str, Any]] = {t: {} for t in trace_ids}
        for row in observations:
            rollups[row["trace_id"]].update(row)
        for row in scores:
            rollups[row["trace_id"]]["score_ids"] = row["ids"]
        return rollups

    async def sessions(
        self, project_id: str, session_ids: list[str] | None, since: datetime | None,
        until: datetime | None, limit: int, offset: int, environments: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        """Sessions are implicit: the distinct session ids of the project's traces."""
        where = Where()
        where.add("session_id IS NOT NULL")
        if session_ids is not None:
            where.add("session_id IN {sessions:Array(String)}", sessions=session_ids)
        if environments:
            where.add("environment IN {environments:Array(String)}", environments=environments)
        params = {**where.params, "project_id": project_id, "limit": limit, "offset": offset}
        having = []
        if since is not None:
            having.append("created_at >= {since:DateTime64(3, 'UTC')}")
            params["since"] = since
        if until is not None:
            having.append("created_at < {until:DateTime64(3, 'UTC')}")
            params["until"] = until
        having_sql = f" HAVING {' AND '.join(having)}" if having else ""
        grouped = (
            # Not `AS environment`: the alias would replace the column in an environment filter.
            "SELECT session_id AS id, min(timestamp) AS created_at,"
            " any(environment) AS session_environment"
            f" FROM {current('traces', where.sql())} GROUP BY session_id{having_sql}"
        )
        rows = await self._ch.select(
            f"{grouped} ORDER BY created_at DESC, id"
            " LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            params,
        )
        [count] = await self._ch.select(f"SELECT count() AS total FROM ({grouped})", params)
        return rows, int(count["total"])

    async def aggregate(
        self, project_id: str, sql: str, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """A metrics query of services/query/analytics.py, whose sources are `current(...)`."""
        return await self._ch.select(sql, {**params, "project_id": project_id})

    async def delete_traces(self, project_id: str, trace_ids: list[str]) -> None:
        """Tombstones for the traces and everything in them: ReplacingMergeTree keeps the newest
        row per key, and FINAL leaves out rows whose newest version is deleted."""
        params = {"project_id": project_id, "ids": trace_ids}
        for table, column in (
            ("traces", "id"),
            ("observations", "trace_id"),
            ("scores", "trace_id"),
        ):
            await self._ch.execute(_TOMBSTONES.format(table=table, column=column), params)

    async def delete_score(self, project_id: str, score_id: str) -> None:
        params = {"project_id": project_id, "ids": [score_id]}
        await self._ch.execute(_TOMBSTONES.format(table="scores", column="id"), params)

    async def delete_project(self, project_id: str) -> None:
        """Removes a deleted project's rows from every table for good: a mutation that rewrites
        the parts holding them, waited for (mutations_sync), so nothing is left once it returns.
        Rows are sorted by project first, so only the parts of its key range are rewritten."""
        for table in TABLES.values():
            await self._ch.execute(
                f"ALTER TABLE {table} DELETE WHERE project_id = {{project_id:String}}"
                " SETTINGS mutations_sync = 2",
                {"project_id": project_id},
            )


def current(table: str, condition: str) -> str:
    """The FROM and WHERE of every read: the current version of each of the project's rows
    matching `condition`; FINAL leaves out rows whose newest version is a tombstone. Lookups
    stay cheap because FINAL merges only the granules the condition selects: traces are sorted
    by id, observations by trace, and the skip indexes (id, trace id) narrow the rest. Rows older
    than the project's retention are left out even before the retention pass deletes them."""
    return (
        f"{table} FINAL WHERE project_id = {{project_id:String}}"
        f"{retention.within(table, read_cutoff())} AND {condition}"
    )


_TOMBSTONES = (
    "INSERT INTO {table} SELECT * REPLACE (1 AS is_deleted, now64(3) AS event_ts,"
    " now64(3) AS updated_at) FROM {table} FINAL"
    " WHERE project_id = {{project_id:String}} AND {column} IN {{ids:Array(String)}}"
)
