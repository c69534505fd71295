"""The shape of every public route: a handler takes the request and the caller's project scope,
makes one backend call and shapes the answer; `endpoint` does the authentication around it."""

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, overload
from urllib.parse import unquote_to_bytes

import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.scope import ProjectScope
from services.gateway.errors import ApiError
from services.gateway.ratelimit import bucket_of, too_many_requests
from services.gateway.state import GatewayState

Handler = Callable[[Request, ProjectScope], Awaitable[Response]]


def state_of(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def endpoint(
    handler: Handler, *, scores_only: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a project route: authenticates the key, applies the project's rate limit and passes
    its project scope on. `scores_only` routes also accept a Bearer public key (score creation)."""

    async def authenticated(request: Request) -> Response:
        state = state_of(request)
        principal = await state.authenticator.authenticate(request.headers.get("authorization"))
        scope = principal.project_scope(scores_only=scores_only)
        # Who called, for the few records that keep it (who completed an annotation queue item).
        request.state.public_key = principal.key.public_key
        retry_after = await state.rate_limiter.retry_after(scope.project_id, bucket_of(request))
        if retry_after is not None:
            return too_many_requests(retry_after)
        return await handler(request, scope)

    return authenticated


async def read_json(request: Request) -> Any:
    try:
        body = orjson.loads(await request.body())
        # orjson writes at most 254 levels of nesting (and reads 1024): a deeper body is refused
        # here rather than failing where it is written again.
        orjson.dumps(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "Invalid request data: the body is not valid JSON") from exc
    except orjson.JSONEncodeError as exc:
        raise ApiError(400, "Invalid request data: the body is nested too deeply") from exc
    return body


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


@overload
def query_int(request: Request, name: str, default: int) -> int: ...
@overload
def query_int(request: Request, name: str, default: None = None) -> int | None: ...
def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter, `default` when absent or empty; 400 when not an int32."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"Invalid request data: {name} must be an integer") from exc
    if not _INT32_MIN <= value <= _INT32_MAX:  # the range of the int32 fields they travel in
        raise ApiError(400, f"Invalid request data: {name} is out of range")
    return value


def page_params(request: Request, default_limit: int) -> tuple[int, int]:
    """Langfuse's page/limit: page ≥ 1, limit 1..100 (over 100 is a 400, not a silent cap)."""
    page = query_int(request, "page", 1)
    limit = query_int(request, "limit", default_limit)
    if page < 1 or not 1 <= limit <= 100:
        raise ApiError(400, "Invalid request data: page must be ≥ 1 and limit between 1 and 100")
    return page, limit


def backend_options(request: Request, scope: ProjectScope) -> dict[str, Any]:
    """Keyword arguments of every backend call: the caller's scope and the request id as gRPC
    metadata, and the deadline."""
    return {
        "metadata": scope.metadata(request.state.request_id),
        "timeout": state_of(request).backend_timeout,
    }


def page_meta(meta: common_pb2.PageMeta) -> dict[str, int]:
    """The `meta` object of Langfuse's page-based lists."""
    return {
        "page": meta.page,
        "limit": meta.limit,
        "totalItems": meta.total_items,
        "totalPages": meta.total_pages,
    }


def query_time(request: Request, name: str) -> Timestamp | None:
    """An ISO 8601 query parameter as a protobuf Timestamp; 400 when it does not parse."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid request data: {name} must be an ISO 8601 timestamp") from exc
    stamp = Timestamp()
    try:
        if parsed.year < 1000:
            raise ValueError("before the year 1000")
        stamp.FromDatetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    except (ValueError, OverflowError) as exc:  # OverflowError: 9999-12-31T23:00-05:00
        raise ApiError(400, f"Invalid request data: {name} is out of range") from exc
    return stamp


def query_time_range(request: Request, since: str, until: str) -> query_pb2.TimeRange:
    time_range = query_pb2.TimeRange()
    for param, field in ((since, "from_time"), (until, "to_time")):
        stamp = query_time(request, param)
        if stamp is not None:
            getattr(time_range, field).CopyFrom(stamp)
    return time_range


def query_csv(request: Request, name: str) -> list[str]:
    """A comma-separated query parameter as a list."""
    return [part.strip() for part in request.query_params.get(name, "").split(",") if part.strip()]


def list_response(items: Sequence[bytes], meta: dict[str, Any]) -> Response:
    """`{"data": [...], "meta": {...}}` from documents the backend already serialized."""
    body = b'{"data":[' + b",".join(items) + b'],"meta":' + orjson.dumps(meta) + b"}"
    return Response(body, media_type="application/json")


def path_segments(request: Request, prefix: str) -> list[str]:
    """The path after `prefix`, split at its literal `/` and then decoded. Names may hold `/`,
    which the SDKs send encoded (`%2F`) inside one segment, so the split comes first; segments
    that are not UTF-8 are a 400."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    try:
        return [
            unquote_to_bytes(part).decode()
            for part in raw.removeprefix(prefix.encode()).split(b"/")
        ]
    except UnicodeDecodeError as exc:
        raise ApiError(400, "Invalid request data: the path is not UTF-8") from exc
