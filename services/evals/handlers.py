import asyncpg

from libs.common.gen.obs.evals.v1 import evals_pb2_grpc


class EvalsServicer(evals_pb2_grpc.EvalsServiceServicer):  # type: ignore[misc]
    """Score configs, datasets and evaluators. The RPCs arrive with the evals issues; until then
    the generated base answers UNIMPLEMENTED, which the gateway maps to 501."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
