"""QueryServicer: reads over ClickHouse, answered as the public API's JSON documents."""

import grpc
import orjson

from libs.common.errors import NotFound
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.scope import scope_from
from services.query.store import TraceStore
from services.query.views import observation_view, score_view, trace_view


class QueryServicer(query_pb2_grpc.QueryServiceServicer):  # type: ignore[misc]
    """The list, session, score and model RPCs arrive with the rest of the tracing issue (#3);
    until then the generated base answers them UNIMPLEMENTED (the gateway maps it to 501)."""

    def __init__(self, store: TraceStore) -> None:
        self._store = store

    async def GetTrace(  # noqa: N802
        self, request: query_pb2.GetTraceRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetTraceResponse:
        project_id = scope_from(context).project_id
        row = await self._store.trace(project_id, request.trace_id)
        if row is None:
            raise NotFound(f"Trace {request.trace_id} not found within authorized project")
        observations = [
            observation_view(o, project_id)
            for o in await self._store.observations_of(project_id, request.trace_id)
        ]
        scores = [
            score_view(s, project_id)
            for s in await self._store.scores_of(project_id, request.trace_id)
        ]
        document = trace_view(row, project_id, observations, scores)
        return query_pb2.GetTraceResponse(trace_json=orjson.dumps(document))

    async def GetObservation(  # noqa: N802
        self, request: query_pb2.GetObservationRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetObservationResponse:
        project_id = scope_from(context).project_id
        row = await self._store.observation(project_id, request.observation_id)
        if row is None:
            raise NotFound(
                f"Observation {request.observation_id} not found within authorized project"
            )
        document = observation_view(row, project_id)
        return query_pb2.GetObservationResponse(observation_json=orjson.dumps(document))
