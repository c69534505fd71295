"""Liveness and readiness: no authentication, as in Langfuse."""

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.endpoint import state_of
from services.gateway.errors import JsonResponse

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
    return JsonResponse({"status": "OK", "version": state.version})


ROUTES = [
    Route("/api/public/health", health, methods=["GET"]),
    Route("/api/public/ready", ready, methods=["GET"]),
]
