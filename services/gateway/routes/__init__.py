"""Every public REST route, listed explicitly."""

from starlette.routing import Route

from services.gateway.routes import health, projects


def all_routes() -> list[Route]:
    return [*health.ROUTES, *projects.ROUTES]
