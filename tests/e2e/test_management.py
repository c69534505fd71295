"""The management API through HTTP, as an admin script would use it with an organization key made
by `python -m services.gateway.admin create-key --org-id O`: projects, their keys, the
organization's lists, bad input, isolation between organizations, and a project deletion that
leaves nothing of the project in any store."""

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aioboto3
import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common.kafka import KafkaCluster, Topic
from tests.e2e.admin import admin
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, free_port, wait_healthy
from tests.e2e.probes import wait_until_up
from tests.e2e.test_media import png, upload
from tests.support.eventually import eventually

ORG_ID = "e2e-org"  # the stack's headless-init organization
OWNERS = ("gateway", "ingestion", "query", "prompts", "evals")
ORG_KEY_ONLY = "Invalid API key. Organization-scoped API key required for this operation."

Auth = tuple[str, str]


@pytest.fixture(scope="module")
def org_auth(stack: Stack) -> Auth:
    key = admin(stack, "create-key", "--org-id", ORG_ID, "--note", "e2e admin")
    return key["publicKey"], key["secretKey"]


@pytest.fixture(scope="module")
def other_org(stack: Stack) -> tuple[str, Auth]:
    """A new organization (its first organization key creates it) with a project of its own."""
    key = admin(stack, "create-key", "--org-id", f"other-{uuid.uuid4().hex[:8]}")
    auth = (key["publicKey"], key["secretKey"])
    created = httpx.post(
        f"{stack.gateway_url}/api/public/projects", json={"name": "Theirs"}, auth=auth
    )
    assert created.status_code == 200, created.text
    return created.json()["id"], auth


async def create_project(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/public/projects", json={"retention": 0, **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_key(client: httpx.AsyncClient, project_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/public/projects/{project_id}/apiKeys", json={"note": "ci"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# ---- the admin script's whole flow


async def test_an_admin_script_provisions_a_project_uses_it_and_deletes_it(
    stack: Stack, org_auth: Auth
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        project = await create_project(org, name="Team A", metadata={"team": "a"})
        project_id = project["id"]
        assert project == {
            "id": project_id,
            "name": "Team A",
            "organization": {"id": ORG_ID, "name": "E2E Org"},
            "metadata": {"team": "a"},
            "retentionDays": None,
        }
        key = await create_key(org, project_id)
        assert key["publicKey"].startswith("pk-lf-") and key["secretKey"].startswith("sk-lf-")
        assert key["displaySecretKey"] == f"{key['secretKey'][:6]}...{key['secretKey'][-4:]}"
        listed = (await org.get(f"/api/public/projects/{project_id}/apiKeys")).json()["apiKeys"]
        assert [(k["id"], k["publicKey"], k["note"]) for k in listed] == [
            (key["id"], key["publicKey"], "ci")
        ]
        assert "secretKey" not in listed[0]

        user = (key["publicKey"], key["secretKey"])
        async with httpx.AsyncClient(base_url=stack.gateway_url, auth=user, timeout=30) as client:
            trace_id = await fill_every_store(client)

            projects = (await org.get("/api/public/organizations/projects")).json()["projects"]
            mine = next(p for p in projects if p["id"] == project_id)
            assert mine["name"] == "Team A" and mine["metadata"] == {"team": "a"}
            assert mine["createdAt"].endswith("Z") and mine["updatedAt"].endswith("Z")
            org_keys = (await org.get("/api/public/organizations/apiKeys")).json()["apiKeys"]
            assert org_auth[0] in [k["publicKey"] for k in org_keys]
            assert key["publicKey"] not in [k["publicKey"] for k in org_keys]

            renamed = await org.put(
                f"/api/public/projects/{project_id}", json={"name": "Team B", "retention": 30}
            )
            assert renamed.status_code == 200, renamed.text
            assert (renamed.json()["name"], renamed.json()["retentionDays"]) == ("Team B", 30)
            assert renamed.json()["metadata"] == {"team": "a"}  # omitted: kept
            seen = (await client.get("/api/public/projects")).json()["data"][0]
            assert (seen["id"], seen["name"], seen["retentionDays"]) == (project_id, "Team B", 30)

            # The scan sees the project in every store before the deletion.
            before = await leftovers(stack, project_id)
            assert stores_of(stack, before) == every_store(stack), before

            # The key's success is cached now; the deletion must still refuse it at once.
            assert (await client.get(f"/api/public/traces/{trace_id}")).status_code == 200
            deleted = await org.delete(f"/api/public/projects/{project_id}")
            assert deleted.status_code == 202, deleted.text
            assert deleted.json()["success"] is True
            refused = await client.get("/api/public/projects")
            assert refused.status_code == 401
            assert (await client.get(f"/api/public/traces/{trace_id}")).status_code == 401

        projects = (await org.get("/api/public/organizations/projects")).json()["projects"]
        assert project_id not in [p["id"] for p in projects]
        await every_owner_handled_the_deletion(stack)
        assert await leftovers(stack, project_id) == {}
        again = await org.delete(f"/api/public/projects/{project_id}")
        assert again.status_code == 404, again.text


async def fill_every_store(client: httpx.AsyncClient) -> str:
    """Data of the project in every owning service: traces, observations and scores (query's
    ClickHouse, ingestion's event log), a medium of the trace (ingestion's PostgreSQL and
    bucket), a model (query's PostgreSQL), a prompt read twice (prompts'
    PostgreSQL and Redis, the gateway's response cache), a score config and a dataset with an item
    (evals' PostgreSQL and Redis)."""
    trace_id = uuid.uuid4().hex
    events = [
        {"id": f"{trace_id}-t", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
         "body": {"id": trace_id, "name": "chat", "input": {"q": "hi"}}},
        {"id": f"{trace_id}-g", "type": "generation-create", "timestamp": "2026-11-22T10:00:01Z",
         "body": {"id": f"{trace_id}-gen", "traceId": trace_id, "model": "gpt-4o",
                  "usage": {"input": 10, "output": 5}}},
        {"id": f"{trace_id}-s", "type": "score-create", "timestamp": "2026-11-22T10:00:02Z",
         "body": {"id": f"{trace_id}-score", "traceId": trace_id, "name": "q", "value": 1}},
    ]  # fmt: skip
    ingested = await client.post("/api/public/ingestion", json={"batch": events})
    assert ingested.status_code == 207 and not ingested.json()["errors"], ingested.text

    async def trace() -> dict[str, Any]:
        response = await client.get(f"/api/public/traces/{trace_id}")
        return response.json() if response.status_code == 200 else {}

    await eventually(trace, lambda t: bool(t.get("observations")) and bool(t.get("scores")))
    await upload(client, png(trace_id), trace_id)
    model = {"modelName": "team-model", "matchPattern": "(?i)^team-model$", "inputPrice": 0.001}
    for method, path, body, status in (
        ("POST", "/api/public/models", model, 200),
        ("POST", "/api/public/v2/prompts", {"name": "greeting", "prompt": "Hi {{name}}"}, 201),
        ("GET", "/api/public/v2/prompts/greeting?label=latest", None, 200),
        ("GET", "/api/public/v2/prompts/greeting?label=latest", None, 200),
        ("POST", "/api/public/score-configs", {"name": "quality", "dataType": "NUMERIC"}, 200),
        ("POST", "/api/public/v2/datasets", {"name": "golden"}, 200),
        ("POST", "/api/public/dataset-items", {"datasetName": "golden", "input": "q"}, 200),
    ):
        response = await client.request(method, path, json=body)
        assert response.status_code == status, (path, response.text)
    return trace_id


async def every_owner_handled_the_deletion(stack: Stack) -> None:
    """Each owner's consumer group has committed up to the end of the deletion topic."""
    cluster = KafkaCluster(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_NAMESPACE"])
    topic = cluster.topic(Topic.PROJECT_DELETIONS)
    kafka = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers)
    await kafka.start()
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic, 0)])  # one partition

        async def behind() -> dict[str, int]:
            lagging = {}
            for owner in OWNERS:
                group = cluster.group(f"{owner}.project-deletions")
                committed = await kafka.list_consumer_group_offsets(group)
                lag = sum(
                    end - (committed[tp].offset if tp in committed else 0)
                    for tp, end in ends.items()
                )
                if lag:
                    lagging[owner] = lag
            return lagging

        await eventually(behind, lambda lagging: not lagging, timeout=60)
    finally:
        await reader.stop()
        await kafka.close()


async def leftovers(stack: Stack, project_id: str) -> dict[str, int]:
    """Everything of the project in any store: rows of every table of every PostgreSQL database
    whose text mentions it, ClickHouse rows (read with the query service stopped: chDB allows one
    process per directory), event-log and media objects, Redis keys."""
    found: dict[str, int] = {}
    for name, dsn in stack.env.items():
        if name.endswith("_DATABASE_URL"):
            found.update(await postgres_rows(dsn, project_id))
    found.update(await clickhouse_rows(stack, project_id))
    found.update(await s3_objects(stack, project_id))
    for url in {url for name, url in stack.env.items() if name.endswith("_REDIS_URL")}:
        client = redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"*{project_id}*", count=1000)]
        finally:
            await client.aclose()
        found[url] = len(keys)
    return {where: count for where, count in found.items() if count}


def every_store(stack: Stack) -> set[str]:
    """The stores that hold project data in this stack: each PostgreSQL and Redis database, the
    ClickHouse tables and the bucket."""
    urls = {v for k, v in stack.env.items() if k.endswith(("_DATABASE_URL", "_REDIS_URL"))}
    # The ClickHouse tables with project rows, and the materialized views that fill three of them.
    tables = ("traces", "observations", "scores", "observation_days", "score_days",
              "observation_ids")  # fmt: skip
    views = ("observation_days_writer", "score_days_writer", "observation_ids_writer")
    return urls | {f"clickhouse.{table}" for table in (*tables, *views)} | {"s3"}


def stores_of(stack: Stack, found: dict[str, int]) -> set[str]:
    """The stores `found` names: a PostgreSQL database stands for the rows of its tables."""
    databases = {
        dsn.rpartition("/")[2]: dsn for k, dsn in stack.env.items() if k.endswith("_DATABASE_URL")
    }
    return {databases.get(where.partition(".")[0], where) for where in found}


async def postgres_rows(dsn: str, project_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        database = dsn.rpartition("/")[2]
        return {
            f"{database}.{t['table_name']}": await conn.fetchval(
                f'SELECT count(*) FROM "{t["table_name"]}" AS r WHERE strpos(r::text, $1) > 0',
                project_id,
            )
            for t in tables
        }
    finally:
        await conn.close()


_CLICKHOUSE_SCAN = """
import json, sys
from chdb import session
db = session.Session(sys.argv[1])
tables = db.query(
    "SELECT table FROM system.columns WHERE database = currentDatabase()"
    " AND name = 'project_id'", "JSONEachRow").bytes().decode().split()
counts = {}
for line in tables:
    table = json.loads(line)["table"]
    rows = db.query(f"SELECT count() AS n FROM `{table}` WHERE project_id = {{p:String}}",
                    "JSONEachRow", params={"p": sys.argv[2]})
    counts[f"clickhouse.{table}"] = json.loads(rows.bytes())["n"]
print(json.dumps(counts))
"""


async def clickhouse_rows(stack: Stack, project_id: str) -> dict[str, int]:
    query = stack.processes["query"]
    query.send_signal(signal.SIGTERM)
    await asyncio.to_thread(query.wait, 60)
    try:
        path = stack.env["QUERY_CLICKHOUSE_URL"].removeprefix("chdb://")
        scan = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _CLICKHOUSE_SCAN, path, project_id],
            capture_output=True,
            text=True,
            check=True,
        )
        counts: dict[str, int] = {k: int(v) for k, v in json.loads(scan.stdout).items()}
        assert counts, "no ClickHouse table has a project_id column"
        return counts
    finally:
        stack.processes["query"] = stack.start("query")
        await wait_healthy(stack)


async def s3_objects(stack: Stack, project_id: str) -> dict[str, int]:
    session = aioboto3.Session(
        aws_access_key_id=stack.env["S3_ACCESS_KEY"],
        aws_secret_access_key=stack.env["S3_SECRET_KEY"],
        region_name=stack.env["S3_REGION"],
    )
    count = 0
    async with session.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"]) as s3:
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=stack.env["INGESTION_S3_BUCKET"]):
            count += sum(project_id in item["Key"] for item in page.get("Contents", []))
    return {"s3": count}


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
        await wait_until_up(url)
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
