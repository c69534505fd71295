"""Which bucket a route draws from; the buckets themselves are tested against the real Redis
(tests/integration/test_ratelimit.py)."""

import pytest
from starlette.requests import Request

from services.gateway.ratelimit import Bucket, Limit, bucket_of


def request(method: str, path: str) -> Request:
    return Request({"type": "http", "method": method, "path": path, "headers": []})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/public/ingestion"),
        ("POST", "/api/public/otel/v1/traces"),
        ("POST", "/api/public/scores"),
    ],
)
def test_ingestion_routes_share_the_ingestion_bucket(method: str, path: str) -> None:
    assert bucket_of(request(method, path)) is Bucket.INGESTION


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/public/traces"),
        ("DELETE", "/api/public/scores/s1"),
        ("GET", "/api/public/v2/scores"),
        ("POST", "/api/public/v2/prompts"),
        ("GET", "/api/public/projects"),
    ],
)
def test_every_other_route_draws_from_the_api_bucket(method: str, path: str) -> None:
    assert bucket_of(request(method, path)) is Bucket.API


def test_an_enabled_limit_needs_a_burst_of_at_least_one() -> None:
    with pytest.raises(ValueError):
        Limit(10, 0)
    assert not Limit(0, 0).enabled
