"""The error body of the evaluators and evaluation-rules routes: `{message, code}` with a code
from the 5.x SDK's PublicApiErrorCode (it parses that shape on these routes, and raises a
validation error of its own on Langfuse's usual `{message, error}`). Statuses, messages and
logging stay those of services/gateway/errors.py; only the body is reshaped."""

from collections.abc import Awaitable, Callable

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.endpoint import Handler, endpoint
from services.gateway.errors import ApiError, JsonResponse, on_api_error, on_rpc_error

CODES = {
    401: "authentication_failed",
    403: "access_denied",
    404: "resource_not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "rate_limited",
}


def public_api_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint(handler)` whose errors (authentication, rate limit, backend) are reshaped."""
    inner = endpoint(handler)

    async def reshaped(request: Request) -> Response:
        try:
            response = await inner(request)
        except ApiError as exc:
            response = await on_api_error(request, exc)
        except grpc.aio.AioRpcError as exc:
            response = await on_rpc_error(request, exc)
        if response.status_code < 400:
            return response
        message = orjson.loads(bytes(response.body)).get("message", "")
        if response.status_code == 400:
            code = "invalid_body" if request.method in ("POST", "PATCH", "PUT") else "invalid_query"
        else:
            code = CODES.get(response.status_code, "internal_error")
        headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
        return JsonResponse({"message": message, "code": code}, response.status_code, headers)

    return reshaped
