"""Which event-log objects hold a trace's events (PostgreSQL, `event_log_index`): one row per trace
and request, written with the request's object before the request is acknowledged, so that a
trace's deletion finds every object it has to rewrite without listing the bucket. Trace ids are
matched through md5 (the index holds md5(trace_id): an id of 800 characters may exceed a btree
entry) and then compared whole."""

import hashlib
from collections.abc import Collection

import asyncpg


class EventLogIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, project_id: str, key: str, trace_ids: Collection[str]) -> None:
        """Files one object under the traces whose events it holds: one statement."""
        await self._pool.execute(_INSERT, project_id, list(trace_ids), key)

    async def keys_of(self, project_id: str, trace_ids: Collection[str]) -> list[str]:
        """The objects holding events of these traces, each once."""
        rows = await self._pool.fetch(_SELECT, project_id, _md5s(trace_ids), list(trace_ids))
        return [row["object_key"] for row in rows]

    async def forget_traces(self, project_id: str, trace_ids: Collection[str]) -> None:
        await self._pool.execute(_DELETE, project_id, _md5s(trace_ids), list(trace_ids))

    async def forget_project(self, project_id: str) -> None:
        await self._pool.execute("DELETE FROM event_log_index WHERE project_id = $1", project_id)


def _md5s(trace_ids: Collection[str]) -> list[str]:
    """md5() of PostgreSQL text, as its index holds it (UTF-8 bytes, hex digest)."""
    return [hashlib.md5(trace_id.encode()).hexdigest() for trace_id in trace_ids]


_INSERT = """
INSERT INTO event_log_index (project_id, trace_id, object_key)
SELECT $1, trace_id, $3 FROM unnest($2::text[]) AS trace_id
"""
_SELECT = """
SELECT DISTINCT object_key FROM event_log_index
WHERE project_id = $1 AND md5(trace_id) = ANY($2::text[]) AND trace_id = ANY($3::text[])
"""
_DELETE = """
DELETE FROM event_log_index
WHERE project_id = $1 AND md5(trace_id) = ANY($2::text[]) AND trace_id = ANY($3::text[])
"""
