"""The objects that comments and annotation queue items are about live in other services: traces,
observations and sessions in the query service (ClickHouse), prompt versions in the prompts
service. `ObjectLookup.require` asks the owner within the caller's project, so an object of
another project, like one that does not exist, is Langfuse's 404."""

import grpc

from libs.common.errors import InvalidArgument, NotFound, Unavailable
from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.scope import ProjectScope

LOOKUP_TIMEOUT_SECONDS = 10.0


class ObjectLookup:
    def __init__(
        self,
        query: query_pb2_grpc.QueryServiceStub,
        prompts: prompts_pb2_grpc.PromptsServiceStub,
    ) -> None:
        self._query = query
        self._prompts = prompts

    async def require(self, scope: ProjectScope, object_type: str, object_id: str) -> None:
        """Returns when the project has the object; NotFound when it has not. `object_type` is
        one of TRACE, OBSERVATION, SESSION, PROMPT (checked by the caller)."""
        options = {"metadata": scope.metadata(), "timeout": LOOKUP_TIMEOUT_SECONDS}
        try:
            if object_type == "TRACE":
                await self._query.GetTrace(query_pb2.GetTraceRequest(trace_id=object_id), **options)
            elif object_type == "OBSERVATION":
                await self._query.GetObservation(
                    query_pb2.GetObservationRequest(observation_id=object_id), **options
                )
            elif object_type == "SESSION":
                await self._query.GetSession(
                    query_pb2.GetSessionRequest(session_id=object_id), **options
                )
            else:
                await self._prompts.GetPromptVersionById(
                    prompts_pb2.GetPromptVersionByIdRequest(prompt_id=object_id), **options
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(
                    f"Reference object, {object_type}: {object_id} not found within authorized"
                    " project"
                ) from exc
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(exc.details() or "Invalid objectId") from exc
            raise Unavailable(f"The {object_type.lower()} could not be looked up; retry") from exc
