"""The write path. `POST /api/public/ingestion`: the batch goes to the ingestion service unparsed;
the answer is Langfuse's 207 with per-event `successes` and `errors`. `POST
/api/public/otel/v1/traces`: an OTLP export (protobuf or JSON, gzip or not) passed on as bytes."""

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, endpoint, state_of
from services.gateway.errors import ApiError, JsonResponse

# The newest ingestion protocol the SDKs speak (Python 5 sends 4).
MAX_INGESTION_VERSION = 4


async def ingest(request: Request, scope: ProjectScope) -> Response:
    check_ingestion_version(request)
    try:
        reply = await state_of(request).backends.ingestion.IngestBatch(
            ingestion_pb2.IngestBatchRequest(body=await request.body()),
            **backend_options(request, scope),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
            return JsonResponse(
                {"message": "Invalid request data", "errors": [exc.details()]}, status_code=400
            )
        raise
    return JsonResponse(
        {
            "successes": [{"id": s.id, "status": s.status} for s in reply.successes],
            "errors": [
                {"id": e.id, "status": e.status, "message": e.message, "error": e.error}
                for e in reply.errors
            ],
        },
        status_code=207,
    )


async def ingest_otlp(request: Request, scope: ProjectScope) -> Response:
    check_ingestion_version(request)
    content_type = request.headers.get("content-type", "")
    is_json = "application/json" in content_type.lower()
    try:
        await state_of(request).backends.ingestion.IngestOtlp(
            ingestion_pb2.IngestOtlpRequest(
                body=await request.body(),
                content_type=content_type,
                content_encoding=request.headers.get("content-encoding", ""),
                sdk_name=_header(request, "x-langfuse-sdk-name"),
                sdk_version=_header(request, "x-langfuse-sdk-version"),
            ),
            **backend_options(request, scope),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
            return JsonResponse({"error": exc.details()}, status_code=400)
        raise
    if is_json:
        return JsonResponse({})
    # An empty ExportTraceServiceResponse serializes to no bytes.
    return Response(b"", media_type="application/x-protobuf")


def _header(request: Request, name: str) -> str:
    """SDK headers, also in the underscore spelling some clients use."""
    return request.headers.get(name) or request.headers.get(name.replace("-", "_"), "")


def check_ingestion_version(request: Request) -> None:
    raw = request.headers.get("x-langfuse-ingestion-version")
    if raw is None:
        return
    if not raw.isdigit() or int(raw) > MAX_INGESTION_VERSION:
        raise ApiError(400, f"Unsupported x-langfuse-ingestion-version: {raw}")


ROUTES = [
    Route("/api/public/ingestion", endpoint(ingest, scores_only=True), methods=["POST"]),
    Route("/api/public/otel/v1/traces", endpoint(ingest_otlp), methods=["POST"]),
]
