"""TargetReader: the judge's reads of its targets' merged state from the query service, kept cheap
and bounded so a judging backlog never starves the query service's writer or its other readers:

- batched: the lookups of concurrent jobs of a project go out as one list call (up to a page of
  100), instead of one call and one ClickHouse query per job;
- by trace: an observation is looked for among its trace's (the job knows it), which reads only
  that trace's day ranges of the observations table, sorted by trace, instead of every id bloom
  filter of the project;
- bounded: at most READS_IN_FLIGHT calls per evals process, and a call slower than SLOW_SECONDS
  keeps its slot as long again (the query service is busy: the judge reads less).

Documents are the v1 list shapes, which carry what the judge reads (filter columns, input,
output, metadata) like the single-entity reads do."""

import asyncio
from typing import Any

import orjson

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.gen.obs.query.v1.query_pb2_grpc import QueryServiceStub
from libs.common.scope import ProjectScope
from services.evals.batching import Batcher

# The query service's largest page.
BATCH = 100
READS_IN_FLIGHT = 2
LINGER_SECONDS = 0.02
SLOW_SECONDS = 1.0
RPC_TIMEOUT = 10.0

Document = dict[str, Any]


class TargetReader:
    def __init__(self, query: QueryServiceStub) -> None:
        self._query = query
        slots = asyncio.Semaphore(READS_IN_FLIGHT)  # both kinds of lookup together
        self._observations = Batcher(self._read_observations, linger=LINGER_SECONDS, size=BATCH,
                                     slots=slots, slow=SLOW_SECONDS)  # fmt: skip
        self._traces = Batcher(self._read_traces, linger=LINGER_SECONDS, size=BATCH, slots=slots,
                               slow=SLOW_SECONDS)  # fmt: skip

    async def observation(
        self, project_id: str, trace_id: str, observation_id: str
    ) -> Document | None:
        """The observation of that trace, or None when it is not (yet) readable. Raises the
        call's grpc.aio.AioRpcError."""
        return await self._observations.submit(project_id, (trace_id, observation_id))

    async def trace(self, project_id: str, trace_id: str) -> Document | None:
        return await self._traces.submit(project_id, trace_id)

    async def _read_observations(
        self, project_id: str, keys: list[tuple[str, str]]
    ) -> list[Document | None]:
        request = query_pb2.ListObservationsRequest(
            page=common_pb2.PageRequest(page=1, limit=BATCH),
            filters=[
                query_pb2.Filter(key="traceId", values=sorted({t for t, _ in keys})),
                query_pb2.Filter(key="id", values=sorted({o for _, o in keys})),
            ],
        )
        reply = await self._query.ListObservations(
            request, metadata=ProjectScope(project_id).metadata(), timeout=RPC_TIMEOUT
        )
        found = {}
        for raw in reply.observations_json:
            document = orjson.loads(raw)
            found[(document["traceId"], document["id"])] = document
        return [found.get(key) for key in keys]

    async def _read_traces(self, project_id: str, trace_ids: list[str]) -> list[Document | None]:
        request = query_pb2.ListTracesRequest(
            page=common_pb2.PageRequest(page=1, limit=BATCH),
            filters=[query_pb2.Filter(key="id", values=sorted(set(trace_ids)))],
            fields=["core", "io"],
        )
        reply = await self._query.ListTraces(
            request, metadata=ProjectScope(project_id).metadata(), timeout=RPC_TIMEOUT
        )
        found = {}
        for raw in reply.traces_json:
            document = orjson.loads(raw)
            found[document["id"]] = document
        return [found.get(trace_id) for trace_id in trace_ids]
