from libs.common.gen.obs.query.v1 import query_pb2_grpc
from services.query.clickhouse import ClickHouse


class QueryServicer(query_pb2_grpc.QueryServiceServicer):  # type: ignore[misc]
    """Reads over ClickHouse. The read RPCs arrive with the tracing issue (#3); until then the
    generated base answers UNIMPLEMENTED, which the gateway maps to 501."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse
