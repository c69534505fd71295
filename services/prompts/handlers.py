import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.prompts.v1 import prompts_pb2_grpc


class PromptsServicer(prompts_pb2_grpc.PromptsServiceServicer):  # type: ignore[misc]
    """Prompt versions and labels. The RPCs arrive with the prompts issue (#4); until then the
    generated base answers UNIMPLEMENTED, which the gateway maps to 501."""

    def __init__(self, pool: asyncpg.Pool, cache: redis.Redis) -> None:
        self._pool = pool
        self._cache = cache
