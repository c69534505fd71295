"""The numbers of experiment results: per trace, its latency, total cost and scores, computed
from the stored observations and scores (the evals service asks for them over gRPC; it never
reads ClickHouse)."""

import asyncio
from collections import defaultdict

import orjson

from libs.common.gen.obs.query.v1 import query_pb2
from services.query.rows import parse_time
from services.query.store import TraceStore
from services.query.views import score_v3_view


async def trace_metrics(
    store: TraceStore, project_id: str, trace_ids: list[str]
) -> list[query_pb2.TraceMetrics]:
    """Traces with at least one stored observation, in the order asked; latency as the trace
    lists compute it (first observation start to last end)."""
    unique = list(dict.fromkeys(trace_ids))
    if not unique:
        return []
    rollups, score_rows = await asyncio.gather(
        store.trace_rollups(project_id, unique), store.scores_of_traces(project_id, unique)
    )
    scores: dict[str, list[bytes]] = defaultdict(list)
    for row in score_rows:
        scores[row["trace_id"]].append(orjson.dumps(score_v3_view(row, project_id)))
    metrics = []
    for trace_id in unique:
        rollup = rollups.get(trace_id, {})
        first, last = parse_time(rollup.get("first_start")), parse_time(rollup.get("last_end"))
        if first is None or last is None:
            continue
        metrics.append(
            query_pb2.TraceMetrics(
                trace_id=trace_id,
                latency=(last - first).total_seconds(),
                total_cost=float(rollup.get("total_cost") or 0.0),
                scores_json=scores[trace_id],
            )
        )
    return metrics
