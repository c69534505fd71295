"""TraceStore: the only module that reads or writes ClickHouse. Every statement takes the project
id as a bound parameter; reads deduplicate with FINAL (ReplacingMergeTree keeps one row per id)."""

from typing import Any

from services.query.clickhouse import ClickHouse

TABLES = {"trace": "traces", "observation": "observations", "score": "scores"}


class TraceStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def load(self, kind: str, project_id: str, ids: list[str]) -> list[dict[str, Any]]:
        """Current rows of these entities, for merging new events into them."""
        return await self._ch.select(
            f"SELECT * FROM {TABLES[kind]} FINAL"
            " WHERE project_id = {project_id:String} AND id IN {ids:Array(String)}",
            {"project_id": project_id, "ids": ids},
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
        return await self._ch.select(
            "SELECT * FROM observations FINAL WHERE project_id = {project_id:String}"
            " AND trace_id = {trace_id:String} ORDER BY start_time, id",
            {"project_id": project_id, "trace_id": trace_id},
        )

    async def scores_of(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        return await self._ch.select(
            "SELECT * FROM scores FINAL WHERE project_id = {project_id:String}"
            " AND trace_id = {trace_id:String} ORDER BY timestamp, id",
            {"project_id": project_id, "trace_id": trace_id},
        )
