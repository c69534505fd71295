"""TraceStore: the only module that reads or writes ClickHouse. Every statement takes the project
id as a bound parameter; reads deduplicate with FINAL (ReplacingMergeTree keeps one row per id)."""

import asyncio
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from libs.common.scope import read_cutoff
from services.query import retention
from services.query.clickhouse import ClickHouse
from services.query.filters import Where

TABLES = {"trace": "traces", "observation": "observations", "score": "scores"}
# Per table: the time its newest-first lists order by, and its sort key after the project.
SORT_KEYS = {
    "traces": ("timestamp", "toDate(timestamp), id"),
    "observations": ("start_time", "toDate(start_time), trace_id, id"),
    "scores": ("timestamp", "toDate(timestamp), id"),
}
# Per table: the sort key's columns after the project and the day, which every version of a row
# shares (conditions on them are keyed: filters.Where).
KEY_COLUMNS = {table: key.split(", ")[1:] for table, (_, key) in SORT_KEYS.items()}
# Unfiltered newest-first pages start from the newest (offset + limit) × NEWEST_MARGIN stored
# rows (see TraceStore._newest); stored rows overcount current ones (older versions, tombstones).
# Deeper pages, whose keys would be many thousands of parameters, take the general path.
NEWEST_MARGIN = 2
NEWEST_DEEPEST = 1_000
# Observations of the traces in {traces:Array(String)}, with the days those traces have
# observations on looked up first (observation_days, by primary key): ClickHouse then reads only
# the (project, day, trace) ranges of observations instead of every granule's bloom filter.
DAYS_OF_TRACES = (
    "toDate(start_time) IN (SELECT day FROM observation_days"
    " WHERE project_id = {project_id:String} AND trace_id IN {traces:Array(String)})"
)
OF_TRACES = f"{DAYS_OF_TRACES} AND trace_id IN {{traces:Array(String)}}"
# Scores of those traces, their days looked up the same way (score_days): scores are sorted by
# day and id, so FINAL otherwise reads every granule sharing a key range with a bloom-filter hit.
SCORES_OF_TRACES = (
    "toDate(timestamp) IN (SELECT day FROM score_days"
    " WHERE project_id = {project_id:String} AND trace_id IN {traces:Array(String)})"
    " AND trace_id IN {traces:Array(String)}"
)
# Observations of the ids in {ids:Array(String)}, their traces and days looked up first
# (observation_ids, by primary key): by id alone ClickHouse would test the id bloom filter of
# every granule of the project.
OBSERVATIONS_BY_ID = (
    "(toDate(start_time), trace_id) IN (SELECT day, trace_id FROM observation_ids"
    " WHERE project_id = {project_id:String} AND id IN {ids:Array(String)})"
    " AND id IN {ids:Array(String)}"
)
# The ids of a writer's batch (tens of thousands) as a subquery's set: `id IN {ids:Array(String)}`
# with 44,000 ids took 130-170 s where 4,000 of them were stored (0.3 s with 2,000 stored; chDB
# 4.4) and stalled the writer; the same ids through arrayJoin took 0.1 s.
_AMONG_IDS = "id IN (SELECT arrayJoin({ids:Array(String)}))"
# How long a list's total may be served again while nothing was written to the project here.
COUNT_SECONDS = 5.0
_COUNTS_KEPT = 10_000


class TraceStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse
        # Totals of lists, each with the generation of its (table, project) it was counted at;
        # a write through this store starts a new generation.
        self._generations: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._counts: dict[tuple[Any, ...], tuple[int, float, int]] = {}

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

    async def latest_of(self, kind: str, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The writer's lookup: current rows of these (project id, entity id) pairs, of all the
        batch's projects in one query. It may return rows of other pairs of the same projects
        and ids, which the caller leaves aside."""
        params: dict[str, Any] = {
            "projects": sorted({project_id for project_id, _ in keys}),
            "ids": sorted({entity_id for _, entity_id in keys}),
        }
        condition = f"project_id IN {{projects:Array(String)}} AND {_AMONG_IDS}"
        if kind == "observation":
            # Observations are sorted by (project, day, trace, id): the places of these ids
            # (observation_ids, by primary key) narrow the search to their ranges, whatever
            # trace the batch's events name (a conflicting one too); new ids have none.
            condition += (
                " AND (project_id, toDate(start_time), trace_id) IN (SELECT project_id, day,"
                f" trace_id FROM observation_ids WHERE {condition})"
            )
        # PREWHERE reads the columns of the condition first and the others only for granules
        # holding a match: a batch's new entities (most) cost a scan of ids, not of inputs.
        # Safe with FINAL because the condition's columns are the same in every version of a row.
        return await self._ch.select(
            f"SELECT * FROM {TABLES[kind]} FINAL PREWHERE {condition}", params
        )

    async def _latest(
        self, table: str, condition: str, params: dict[str, Any], order: str = "id"
    ) -> list[dict[str, Any]]:
        return await self._ch.select(
            f"SELECT * FROM {current_by_key(table, condition)} ORDER BY {order}", params
        )

    async def insert(self, kind: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._ch.insert(TABLES[kind], rows)
            for project_id in {row["project_id"] for row in rows}:
                self._generations[(TABLES[kind], project_id)] += 1

    async def trace(self, project_id: str, trace_id: str) -> dict[str, Any] | None:
        rows = await self.load("trace", project_id, [trace_id])
        return rows[0] if rows else None

    async def observation(self, project_id: str, observation_id: str) -> dict[str, Any] | None:
        params = {"project_id": project_id, "ids": [observation_id]}
        rows = await self._latest("observations", OBSERVATIONS_BY_ID, params)
        return rows[0] if rows else None

    async def observations_of(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "traces": [trace_id]}
        return await self._latest("observations", OF_TRACES, params, "start_time, id")

    async def observations_among(
        self, project_id: str, trace_ids: list[str], ids: list[str]
    ) -> list[dict[str, Any]]:
        """Current observations with these ids in these traces, newest first: a lookup of known
        observations (the judge's batched reads) in one query by sort key, where a list page
        takes two (~30 against ~60 ms at 10 M rows)."""
        rows = await self.load("observation", project_id, ids, trace_ids)
        return sorted(rows, key=lambda row: (row["start_time"], row["id"]), reverse=True)

    async def scores_of(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "traces": [trace_id]}
        return await self._latest("scores", SCORES_OF_TRACES, params, "timestamp, id")

    async def scores_of_traces(self, project_id: str, trace_ids: list[str]) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "traces": trace_ids}
        return await self._latest("scores", SCORES_OF_TRACES, params, "trace_id, timestamp, id")

    async def page_of(
        self, kind: str, project_id: str, where: Where, order: str, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of entities matching `where`, and how many match in all. A page that is not
        full is the last: its rows tell the total, and the count (a pass over every match under
        FINAL) is left out. Lookups of known ids, such as the judge's reads, are such pages."""
        rows = await self._page(TABLES[kind], project_id, where, order, limit, offset)
        if 0 < len(rows) < limit or (offset == 0 and not rows):
            return rows, offset + len(rows)
        return rows, await self._count(TABLES[kind], project_id, where)

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
        rows = await self._page(TABLES[kind], project_id, where, order, limit + 1, offset)
        return rows[:limit], len(rows) > limit

    async def _page(
        self, table: str, project_id: str, where: Where, order: str, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """Rows `offset` to `offset + limit` of `order`. The page's sort keys are chosen first,
        reading only the columns the condition and the order need; then the whole rows of those
        keys (inputs and outputs are most of the bytes). Unfiltered newest-first pages, the
        commonest, are told from the newest stored rows when they can be (`_newest`); pages whose
        conditions are all keyed (a trace's observations) are read in one pass, their
        conditions selecting rows before FINAL (~30 against ~50 ms at 10 M observations)."""
        time_column, key = SORT_KEYS[table]
        params = {**where.params, "project_id": project_id, "limit": limit, "offset": offset}
        newest_first = order == f"{time_column} DESC, id DESC" and not where.conditions
        if newest_first and offset + limit <= NEWEST_DEEPEST:
            rows = await self._newest(table, project_id, limit, offset)
            if rows is not None:
                return rows
        if where.by_key:
            return await self._ch.select(
                f"SELECT * FROM {current_by_key(table, where.sql())} ORDER BY {order}"
                " LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
                params,
            )
        keys = (
            f"SELECT {key} FROM {current(table, where.sql())} ORDER BY {order}"
            " LIMIT {limit:UInt32} OFFSET {offset:UInt64}"
        )
        return await self._ch.select(
            f"SELECT * FROM {current_by_key(table, f'({key}) IN ({keys})')} ORDER BY {order}",
            params,
        )

    async def _newest(
        self, table: str, project_id: str, limit: int, offset: int
    ) -> list[dict[str, Any]] | None:
        """The page of the newest rows, or None when the newest stored rows cannot tell it.
        Choosing keys among current rows (FINAL) costs a merge of every row of the days read
        (~20-80 ms for a day at 10 M observations); stored rows, read without FINAL, are cheap
        but hold older versions and tombstones. So: first the keys and times of the newest
        `wanted × NEWEST_MARGIN` stored rows, reading only the days back to the last of them;
        a current row newer than that last one has its stored version among them, so the
        current rows of these keys newer than it hold the page if there are `wanted` or more.
        The key columns (day, trace, id) narrow the second read to those rows' granules."""
        time_column, _ = SORT_KEYS[table]
        day, id_columns = f"toDate({time_column})", KEY_COLUMNS[table]
        stored = (offset + limit) * NEWEST_MARGIN
        params: dict[str, Any] = {
            "project_id": project_id, "stored": stored, "last": stored - 1,
            "limit": limit, "offset": offset,
        }  # fmt: skip
        first_day = (
            f"ifNull((SELECT {day} FROM {table} WHERE project_id = {{project_id:String}}"
            f" ORDER BY {day} DESC LIMIT 1 OFFSET {{last:UInt64}}), toDate(0))"
        )
        newest = await self._ch.select(
            f"SELECT toString({day}) AS day, {', '.join(id_columns)},"
            f" toUnixTimestamp64Milli({time_column}) AS at FROM {table}"
            f" WHERE project_id = {{project_id:String}} AND {day} >= {first_day}"
            f" ORDER BY {time_column} DESC LIMIT {{stored:UInt64}}",
            params,
        )
        if not newest:
            return []
        params["days"] = sorted({row["day"] for row in newest})
        for column in id_columns:
            params[f"newest_{column}"] = sorted({row[column] for row in newest})
        among = " AND ".join(
            [f"{day} IN {{days:Array(Date)}}"]
            + [f"{column} IN {{newest_{column}:Array(String)}}" for column in id_columns]
        )
        # Fewer stored rows than asked for: they are all of the project's, and nothing is older.
        newer = ""
        if len(newest) == stored:
            newer = f" WHERE toUnixTimestamp64Milli({time_column}) > {{newest_last:Int64}}"
            params["newest_last"] = newest[-1]["at"]
        rows = await self._ch.select(
            f"SELECT * FROM (SELECT * FROM {current_by_key(table, among)}){newer}"
            f" ORDER BY {time_column} DESC, id DESC"
            " LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            params,
        )
        return rows if not newer or len(rows) == limit else None

    async def _count(self, table: str, project_id: str, where: Where) -> int:
        """How many rows match `where`. Counting a large project takes a pass over all its sort
        keys, so a total is served again for COUNT_SECONDS unless this store wrote to the
        project's table since (another replica's writes show once the time is up, as they
        would at ingestion's pace anyway)."""
        cutoff = read_cutoff()
        cache_key = (
            table, project_id, where.sql(), repr(sorted(where.params.items())),
            cutoff.replace(second=0, microsecond=0) if cutoff else None,
        )  # fmt: skip
        generation = self._generations[(table, project_id)]
        cached = self._counts.get(cache_key)
        if cached and cached[0] == generation and cached[1] > time.monotonic():
            return cached[2]
        [row] = await self._ch.select(
            f"SELECT count() AS total FROM {current(table, where.sql())}",
            {**where.params, "project_id": project_id},
        )
        if len(self._counts) >= _COUNTS_KEPT:
            self._counts.clear()
        self._counts[cache_key] = (generation, time.monotonic() + COUNT_SECONDS, int(row["total"]))
        return int(row["total"])

    async def trace_rollups(
        self, project_id: str, trace_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Per trace: observation ids, first start, last end and total cost; and score ids."""
        params = {"project_id": project_id, "traces": trace_ids}
        observations, scores = await asyncio.gather(
            self._ch.select(
                "SELECT trace_id, groupArray(id) AS ids, min(start_time) AS first_start,"
                " max(coalesce(end_time, start_time)) AS last_end,"
                " toFloat64(sum(coalesce(total_cost, 0))) AS total_cost"
                f" FROM {current_by_key('observations', OF_TRACES)} GROUP BY trace_id",
                params,
            ),
            self._ch.select(
                "SELECT trace_id, groupArray(id) AS ids"
                f" FROM {current_by_key('scores', SCORES_OF_TRACES)} GROUP BY trace_id",
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
            self._generations[(table, project_id)] += 1

    async def delete_score(self, project_id: str, score_id: str) -> None:
        params = {"project_id": project_id, "ids": [score_id]}
        await self._ch.execute(_TOMBSTONES.format(table="scores", column="id"), params)
        self._generations[("scores", project_id)] += 1

    async def delete_project(self, project_id: str) -> None:
        """Removes a deleted project's rows from every table: a lightweight `DELETE FROM` marks
        them (a row mask written for the parts holding them) and merges drop them from disk
        later. A mutation (`ALTER TABLE … DELETE`) would rewrite every column of every part
        holding one of its rows, and merged parts hold every project's rows: 214 s for 1 M
        observations beside 10 M (README, Figures). Tables without its rows are skipped."""
        params = {"project_id": project_id}
        for table in (*TABLES.values(), *LOOKUP_TABLES, *ROLLUP_TABLES):
            [row] = await self._ch.select(
                f"SELECT count() AS n FROM {table} WHERE project_id = {{project_id:String}}",
                params,
            )
            if int(row["n"]):
                await self._ch.execute(
                    f"DELETE FROM {table} WHERE project_id = {{project_id:String}}", params
                )
            self._generations[(table, project_id)] += 1


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


def current_by_key(table: str, condition: str) -> str:
    """`current` for a condition on columns that every version of a row shares (the sort key's
    ids, trace ids and days, which never change): PREWHERE reads those columns first and the
    others only for granules holding a match. ClickHouse does not move a condition to PREWHERE
    under FINAL by itself, as one on a changing column would pick out old versions of a row."""
    kept = retention.within(table, read_cutoff()).removeprefix(" AND ")
    return (
        f"{table} FINAL PREWHERE project_id = {{project_id:String}} AND {condition}"
        f"{f' WHERE {kept}' if kept else ''}"
    )


# The lookups of rows by trace or id (migrations 0006, 0007, 0011).
LOOKUP_TABLES = ("observation_days", "score_days", "observation_ids")
# The metrics rollups of services/query/analytics.py (migrations 0008-0010) and their builds.
ROLLUP_TABLES = (
    "observation_rollups", "observation_rollup_builds", "observation_trace_rollups",
    "observation_trace_rollup_builds", "observation_trace_field_rollups",
    "observation_trace_field_rollup_builds",
)  # fmt: skip

_TOMBSTONES = (
    "INSERT INTO {table} SELECT * REPLACE (1 AS is_deleted, now64(3) AS event_ts,"
    " now64(3) AS updated_at) FROM {table} FINAL"
    " WHERE project_id = {{project_id:String}} AND {column} IN {{ids:Array(String)}}"
)
