"""Every public route the gateway serves exists, with the same method, in Langfuse's published
OpenAPI description (a copy in tests/contract/data)."""

import functools
import re
from pathlib import Path

import pytest
import yaml
from starlette.routing import Route

from services.gateway.routes import all_routes

OPENAPI = Path(__file__).parent / "data" / "langfuse-openapi.yml"
# Routes of our own, documented in the README: readiness for load balancers.
OUR_ADDITIONS = {("GET", "/api/public/ready")}
# Our one catch-all route for prompt names (which may hold `/`) stands for these two paths.
PROMPT_PATHS = {
    "/api/public/v2/prompts/{rest:path}": [
        ("GET", "/api/public/v2/prompts/{}"),
        ("DELETE", "/api/public/v2/prompts/{}"),
        ("PATCH", "/api/public/v2/prompts/{}/versions/{}"),
    ]
}


def normalized(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def served() -> set[tuple[str, str]]:
    pairs = set()
    for route in all_routes():
        assert isinstance(route, Route)
        if route.path in PROMPT_PATHS:
            pairs.update(PROMPT_PATHS[route.path])
            continue
        for method in route.methods or ():
            if method != "HEAD":
                pairs.add((method, normalized(route.path)))
    return pairs


@functools.cache
def documented() -> set[tuple[str, str]]:
    spec = yaml.load(Path(OPENAPI).read_text(), Loader=yaml.CSafeLoader)
    return {
        (method.upper(), normalized(path))
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


@pytest.mark.parametrize(("method", "path"), sorted(served()))
def test_each_served_route_is_part_of_langfuses_api(method: str, path: str) -> None:
    if (method, path) in OUR_ADDITIONS:
        return
    assert (method, path) in documented()
