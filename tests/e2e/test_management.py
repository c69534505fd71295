"""The management API through HTTP, as an admin script would use it with an organization key made
by `python -m services.gateway.admin create-key --org-id O`: projects, their keys, the
organization's lists, bad input, isolation between organizations, and a project deletion that
leaves nothing of the project in any store."""

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

ORG_ID = "e2e-org"  # the stack's headless-init organization
OWNERS = ("gateway", "ingestion", "query", "prompts", "evals")
ORG_KEY_ONLY = "Invalid API key. Organization-scoped API key required for this operation."

Auth = tuple[str, str]


def admin(stack: Stack, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "services.gateway.admin", *args],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def org_auth(stack: Stack) -> Auth:
    key = admin(stack, "create-key", "--org-id", ORG_ID, "--note", "e2e admin")
    return key["publicKey"], key["secretKey"]


@pytest.fixture(scope="module")
def other_org(stack: Stack) -> tuple[str, Auth]:
    """Another organization with a project of its own and its organization key."""
    org, project = f"other-{uuid.uuid4().hex[:8]}", f"other-project-{uuid.uuid4().hex[:8]}"
    admin(stack, "create-project", "--org-id", org, "--project-id", project, "--name", "Theirs")
    key = admin(stack, "create-key", "--org-id", org)
    return project, (key["publicKey"], key["secretKey"])


async def create_project(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/public/projects", json={"retention": 0, **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_key(client: httpx.AsyncClient, project_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/public/projects/{project_id}/apiKeys", json={"note": "ci"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# ---- bad input, scopes and isolation


async def test_bad_project_input_is_a_400_and_changes_nothing(stack: Stack, org_auth: Auth) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        project_id = (await create_project(org, name="Bad input"))["id"]
        path = f"/api/public/projects/{project_id}"
        for body in (
            {"name": "x", "retention": 2},
            {"name": "x", "retention": "x"},
            {"name": "x", "retention": 3.5},
            {"name": "x", "retention": True},
            {"name": "x", "retention": -1},
            {"name": "x", "retention": 2**31},
            {"name": "x", "retentionDays": 1},
            {"name": "x" * 1001},
            {"name": ""},
            {"name": 5},
            {"retention": 7},
            {"name": "x", "metadata": []},
            {"name": "nul\x00"},
            {"name": "x", "metadata": {"k\x00": 1}},
        ):
            for method, url in (("POST", "/api/public/projects"), ("PUT", path)):
                response = await org.request(method, url, json=body)
                assert response.status_code == 400, (method, body, response.text)
                assert response.json()["error"] == "InvalidRequestError"
        for raw in (b"[]", b"{name", b"null"):
            response = await org.put(path, content=raw)
            assert response.status_code == 400, raw
        for body in (
            {"publicKey": "pk-lf-only"},
            {"publicKey": "nope", "secretKey": "sk-lf-x"},
            {"note": 5},
        ):
            response = await org.post(f"{path}/apiKeys", json=body)
            assert response.status_code == 400, (body, response.text)
        ok = await org.put(path, json={"name": "y" * 1000, "retention": 3})
        assert ok.status_code == 200 and ok.json()["retentionDays"] == 3
        forever = await org.put(path, json={"name": "y", "retention": 0})
        assert forever.json()["retentionDays"] is None
        projects = (await org.get("/api/public/organizations/projects")).json()["projects"]
        assert [p["name"] for p in projects if p["id"] == project_id] == ["y"]


async def test_predefined_keys_work_and_a_taken_one_is_a_409(stack: Stack, org_auth: Auth) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        project_id = (await create_project(org, name="Predefined"))["id"]
        pair = {"publicKey": f"pk-lf-{uuid.uuid4()}", "secretKey": f"sk-lf-{uuid.uuid4()}"}
        created = await org.post(f"/api/public/projects/{project_id}/apiKeys", json=pair)
        assert created.status_code == 200 and created.json()["secretKey"] == pair["secretKey"]
        taken = await org.post(f"/api/public/projects/{project_id}/apiKeys", json=pair)
        assert taken.status_code == 409
        auth = (pair["publicKey"], pair["secretKey"])
        async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth) as client:
            projects = (await client.get("/api/public/projects")).json()
        assert projects["data"][0]["id"] == project_id


def management_calls(project_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    project = f"/api/public/projects/{project_id}"
    member = {"userId": "u-1", "role": "MEMBER"}
    return [
        ("POST", "/api/public/projects", {"name": "n", "retention": 0}),
        ("PUT", project, {"name": "n"}),
        ("DELETE", project, None),
        ("GET", f"{project}/apiKeys", None),
        ("POST", f"{project}/apiKeys", {}),
        ("DELETE", f"{project}/apiKeys/some-key", None),
        ("GET", f"{project}/memberships", None),
        ("PUT", f"{project}/memberships", member),
        ("DELETE", f"{project}/memberships", {"userId": "u-1"}),
        ("GET", "/api/public/organizations/projects", None),
        ("GET", "/api/public/organizations/apiKeys", None),
        ("GET", "/api/public/organizations/memberships", None),
        ("PUT", "/api/public/organizations/memberships", member),
        ("DELETE", "/api/public/organizations/memberships", {"userId": "u-1"}),
    ]


async def test_a_project_key_is_refused_on_every_management_route(stack: Stack) -> None:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, auth=(PUBLIC_KEY, SECRET_KEY), timeout=30
    ) as client:
        for method, path, body in management_calls("e2e-project"):
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"message": ORG_KEY_ONLY, "error": "ForbiddenError"}
        assert (await client.get("/api/public/projects")).status_code == 200  # as before


async def test_an_org_key_on_a_project_route_is_still_a_403(stack: Stack, org_auth: Auth) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth) as org:
        for path in ("/api/public/projects", "/api/public/traces"):
            assert (await org.get(path)).status_code == 403


async def test_another_organizations_project_is_not_found_on_every_route(
    stack: Stack, org_auth: Auth, other_org: tuple[str, Auth]
) -> None:
    theirs, their_auth = other_org
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=their_auth, timeout=30) as them,
    ):
        ours = (await create_project(org, name="Ours"))["id"]
        for method, path, body in management_calls(theirs):
            if theirs not in path:
                continue
            response = await org.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        their_projects = (await them.get("/api/public/organizations/projects")).json()
        assert [p["id"] for p in their_projects["projects"]] == [theirs]
        their_keys = (await them.get("/api/public/organizations/apiKeys")).json()["apiKeys"]
        assert [k["publicKey"] for k in their_keys] == [their_auth[0]]
        assert (await them.delete(f"/api/public/projects/{ours}")).status_code == 404
        assert (await org.get(f"/api/public/projects/{ours}/apiKeys")).status_code == 200


async def test_memberships_answer_as_langfuse_does_without_users(
    stack: Stack, org_auth: Auth
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        project_id = (await create_project(org, name="Members"))["id"]
        for path in ("/api/public/organizations", f"/api/public/projects/{project_id}"):
            url = f"{path}/memberships"
            assert (await org.get(url)).json() == {"memberships": []}
            put = await org.put(url, json={"userId": "nobody", "role": "VIEWER"})
            gone = await org.request("DELETE", url, json={"userId": "nobody"})
            assert (put.status_code, gone.status_code) == (404, 404)
            for body in ({"userId": "u"}, {"userId": "u", "role": "KING"}, {"role": "ADMIN"}):
                assert (await org.put(url, json=body)).status_code == 400, body
        missing = "/api/public/projects/no-such-project/memberships"
        assert (await org.get(missing)).status_code == 404


# ---- revocation on every replica


@pytest.fixture
async def second_gateway(stack: Stack) -> AsyncIterator[str]:
    port = free_port()
    process = stack.start("gateway", GATEWAY_HTTP_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:

            async def ready() -> int:
                try:
                    return (await client.get("/api/public/ready")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, lambda status: status == 200, timeout=30)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def test_deleted_keys_and_projects_are_refused_at_once_by_every_replica(
    stack: Stack, org_auth: Auth, second_gateway: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        project_id = (await create_project(org, name="Replicas"))["id"]
        first, second = await create_key(org, project_id), await create_key(org, project_id)
        replicas = [
            httpx.AsyncClient(base_url=url, timeout=30)
            for url in (stack.gateway_url, second_gateway)
        ]

        async def statuses(key: dict[str, Any]) -> list[int]:
            auth = (key["publicKey"], key["secretKey"])
            calls: list[Callable[[], Awaitable[httpx.Response]]] = [
                lambda r=r: r.get("/api/public/projects", auth=auth) for r in replicas
            ]
            return [(await call()).status_code for call in calls]

        try:
            assert await statuses(first) == [200, 200]  # both replicas cache both keys
            assert await statuses(second) == [200, 200]
            deleted = await org.delete(f"/api/public/projects/{project_id}/apiKeys/{first['id']}")
            assert deleted.status_code == 200 and deleted.json() == {"success": True}
            assert await statuses(first) == [401, 401]
            assert await statuses(second) == [200, 200]
            again = await org.delete(f"/api/public/projects/{project_id}/apiKeys/{first['id']}")
            assert again.status_code == 404
            assert (await org.delete(f"/api/public/projects/{project_id}")).status_code == 202
            assert await statuses(second) == [401, 401]
        finally:
            for replica in replicas:
                await replica.aclose()
