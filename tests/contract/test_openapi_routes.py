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
# Routes of our own, documented in the README: readiness for load balancers, dataset deletion.
OUR_ADDITIONS = {("GET", "/api/public/ready"), ("DELETE", "/api/public/v2/datasets/{}")}
# The 5.x SDK's evaluators and evaluation rules (the OpenAPI file has them under /unstable/, in a
# shape of their own, also served: test below); the judge-job list is ours (README).
SDK_ONLY = {
    (method, f"/api/public/v2/{resource}{suffix}")
    for resource in ("evaluators", "evaluation-rules")
    for method, suffix in (("GET", ""), ("POST", ""), ("GET", "/{}"), ("PATCH", "/{}"),
                           ("DELETE", "/{}"))
} | {("GET", "/api/public/v2/evaluators/{}/versions"),
     ("GET", "/api/public/unstable/evaluation-jobs")}  # fmt: skip
# Langfuse's server still serves these legacy v1 dataset routes and daily metrics (older SDKs call
# them), but its OpenAPI file no longer lists them.
LANGFUSE_LEGACY = {
    ("GET", "/api/public/metrics/daily"),
    ("GET", "/api/public/datasets"),
    ("POST", "/api/public/datasets"),
    ("GET", "/api/public/datasets/{}"),
}
# Our catch-all routes for names and ids (which may hold `/`) stand for these paths.
CATCH_ALL_PATHS = {
    "/api/public/v2/prompts/{rest:path}": [
        ("GET", "/api/public/v2/prompts/{}"),
        ("DELETE", "/api/public/v2/prompts/{}"),
        ("PATCH", "/api/public/v2/prompts/{}/versions/{}"),
    ],
    "/api/public/v2/datasets/{rest:path}": [
        ("GET", "/api/public/v2/datasets/{}"),
        ("DELETE", "/api/public/v2/datasets/{}"),
    ],
    "/api/public/datasets/{rest:path}": [
        ("GET", "/api/public/datasets/{}"),
        ("GET", "/api/public/datasets/{}/runs"),
        ("GET", "/api/public/datasets/{}/runs/{}"),
        ("DELETE", "/api/public/datasets/{}/runs/{}"),
    ],
    "/api/public/dataset-items/{rest:path}": [
        ("GET", "/api/public/dataset-items/{}"),
        ("DELETE", "/api/public/dataset-items/{}"),
    ],
}


def normalized(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def served() -> set[tuple[str, str]]:
    pairs = set()
    for route in all_routes():
        assert isinstance(route, Route)
        if route.path in CATCH_ALL_PATHS:
            pairs.update(CATCH_ALL_PATHS[route.path])
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


def test_the_files_evaluator_and_rule_operations_are_all_served() -> None:
    unstable = {(method, path) for method, path in documented()
                if path.startswith(("/api/public/unstable/evaluators",
                                    "/api/public/unstable/evaluation-rules"))}  # fmt: skip
    assert len(unstable) == 9 and unstable <= served()


@pytest.mark.parametrize(("method", "path"), sorted(served()))
def test_each_served_route_is_part_of_langfuses_api(method: str, path: str) -> None:
    if (method, path) in OUR_ADDITIONS | LANGFUSE_LEGACY | SDK_ONLY:
        return
    assert (method, path) in documented()
