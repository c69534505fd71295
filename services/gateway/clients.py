"""gRPC stubs for the four backends, one channel each."""

from dataclasses import dataclass

import grpc

from libs.common.gen.obs.evals.v1 import evals_pb2_grpc
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2_grpc
from libs.common.gen.obs.prompts.v1 import prompts_pb2_grpc
from libs.common.gen.obs.query.v1 import query_pb2_grpc
from libs.common.rpc import make_channel


@dataclass(frozen=True, slots=True)
class Backends:
    ingestion: ingestion_pb2_grpc.IngestionServiceStub
    query: query_pb2_grpc.QueryServiceStub
    prompts: prompts_pb2_grpc.PromptsServiceStub
    evals: evals_pb2_grpc.EvalsServiceStub
    channels: tuple[grpc.aio.Channel, ...]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


def connect(ingestion: str, query: str, prompts: str, evals: str, *, token: str) -> Backends:
    """Channels to the four backends, presenting the internal `token` on every call."""
    addresses = (ingestion, query, prompts, evals)
    channels = tuple(make_channel(address, token=token) for address in addresses)
    return Backends(
        ingestion=ingestion_pb2_grpc.IngestionServiceStub(channels[0]),
        query=query_pb2_grpc.QueryServiceStub(channels[1]),
        prompts=prompts_pb2_grpc.PromptsServiceStub(channels[2]),
        evals=evals_pb2_grpc.EvalsServiceStub(channels[3]),
        channels=channels,
    )
