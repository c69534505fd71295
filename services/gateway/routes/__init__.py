"""Every public REST route, listed explicitly."""

from starlette.routing import Route

from services.gateway.routes import health, projects, prompts


def all_routes() -> list[Route]:
    return [*health.ROUTES, *projects.ROUTES, *prompts.ROUTES]
