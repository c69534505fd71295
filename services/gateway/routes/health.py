"""Liveness and readiness: no authentication, as in Langfuse.

`/health` is Langfuse's (`{status, version}`; with `failIfDatabaseUnavailable=true` it fails when
PostgreSQL does not answer). `/ready` is ours, for load balancers: it fails while draining and
while a backend the gateway calls is not serving (readiness.py); bodies name backends by their
role only, never by address."""

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.endpoint import state_of
from services.gateway.errors import JsonResponse
from services.gateway.readiness import BackendReadiness

_DB_CHECK_SECONDS = 2.0


async def health(request: Request) -> Response:
    state = state_of(request)
    if request.query_params.get("failIfDatabaseUnavailable") == "true":
        try:
            async with asyncio.timeout(_DB_CHECK_SECONDS):
                await state.store.ping()
        except Exception:
            return JsonResponse(
                {"status": "Database not available", "version": state.version}, status_code=503
            )
    return JsonResponse({"status": "OK", "version": state.version})


async def ready(request: Request) -> Response:
    state = state_of(request)
    if state.draining:
        return JsonResponse({"status": "Draining", "version": state.version}, status_code=503)
    readiness: BackendReadiness = request.app.state.readiness
    if down := await readiness.not_serving():
        status = f"Backend not serving: {', '.join(down)}"
        return JsonResponse({"status": status, "version": state.version}, status_code=503)
    return JsonResponse({"status": "OK", "version": state.version})


ROUTES = [
    Route("/api/public/health", health, methods=["GET"]),
    Route("/api/public/ready", ready, methods=["GET"]),
]
