import os
import signal
import subprocess
import sys

import httpx

from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.e2e.probes import status_of
from tests.support.devenv import ROOT
from tests.support.eventually import eventually


def test_health_command_shows_five_serving(stack: Stack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.health"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(line.split()[1] == "SERVING" for line in lines)


async def test_projects_returns_the_init_project(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        response = await client.get("/api/public/projects", auth=(PUBLIC_KEY, SECRET_KEY))
    assert response.status_code == 200
    [project] = response.json()["data"]
    assert project["id"] == PROJECT_ID
    assert project["organization"] == {"id": "e2e-org", "name": "E2E Org"}


async def test_client_mistakes_get_langfuse_errors_never_500(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        no_auth = await client.get("/api/public/projects")
        bad_secret = await client.get("/api/public/projects", auth=(PUBLIC_KEY, "nope"))
        unknown = await client.get("/api/public/unknown", auth=(PUBLIC_KEY, SECRET_KEY))
        too_large = await client.post(
            "/api/public/ingestion",
            content=b"x" * (5 * 1024 * 1024 + 1),
            auth=(PUBLIC_KEY, SECRET_KEY),
        )
    assert [no_auth.status_code, bad_secret.status_code] == [401, 401]
    assert unknown.status_code == 404 and unknown.json()["error"] == "LangfuseNotFoundError"
    assert too_large.status_code == 413


async def test_health_checks_the_database_on_request(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        response = await client.get("/api/public/health?failIfDatabaseUnavailable=true")
    assert response.status_code == 200
    assert response.json()["status"] == "OK"


async def test_sigterm_fails_readiness_then_exits_cleanly(stack: Stack) -> None:
    port = free_port()
    gateway = stack.start("gateway", GATEWAY_HTTP_PORT=str(port), GATEWAY_DRAIN_SECONDS="2")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        # One client throughout: its kept-alive connection still asks while the gateway drains.
        ready = "/api/public/ready"
        await eventually(lambda: status_of(client, ready), lambda status: status == 200, timeout=30)
        gateway.send_signal(signal.SIGTERM)
        await eventually(lambda: status_of(client, ready), lambda status: status == 503, timeout=5)
    assert gateway.wait(timeout=30) == 0
