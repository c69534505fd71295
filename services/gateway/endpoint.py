"""The shape of every public route: a handler takes the request and the caller's project scope,
makes one backend call and shapes the answer; `endpoint` does the authentication around it."""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from libs.common.scope import ProjectScope
from services.gateway.state import GatewayState

Handler = Callable[[Request, ProjectScope], Awaitable[Response]]


def state_of(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def endpoint(
    handler: Handler, *, scores_only: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a project route: authenticates the key and passes its project scope on.
    `scores_only` routes also accept a Bearer public key (score creation)."""

    async def authenticated(request: Request) -> Response:
        state = state_of(request)
        principal = await state.authenticator.authenticate(request.headers.get("authorization"))
        return await handler(request, principal.project_scope(scores_only=scores_only))

    return authenticated
