"""Blob-storage export through HTTP with an organization key, as Langfuse's users configure it:
an integration pointed at a second MinIO server (the customer's, with credentials of its own),
traces ingested through the API and exported by the running query service (`python -m
services.query export run` makes it run now), the Parquet files read back with pyarrow, a target
that stops accepting the credentials read as a failed status, isolation between organizations,
bad input, and a project deletion that takes the integration with it."""

import asyncio
import io
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.e2e.admin import admin
from tests.e2e.conftest import Stack
from tests.e2e.test_management import postgres_rows
from tests.support.devenv import ROOT
from tests.support.eventually import eventually
from tests.support.minio import SecondMinio, second_minio

ORG_ID = "e2e-org"
PATH = "/api/public/integrations/blob-storage"
Auth = tuple[str, str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondMinio]:
    with second_minio(tmp_path_factory.mktemp("customer-s3")) as server:
        yield server


@pytest.fixture(scope="module")
def org_auth(stack: Stack) -> Auth:
    key = admin(stack, "create-key", "--org-id", ORG_ID, "--note", "exports")
    return key["publicKey"], key["secretKey"]


async def new_project(org: httpx.AsyncClient) -> tuple[str, Auth]:
    """A project of the organization and a project key of it."""
    created = await org.post("/api/public/projects", json={"name": "Exports"})
    assert created.status_code == 200, created.text
    project_id = created.json()["id"]
    key = (await org.post(f"/api/public/projects/{project_id}/apiKeys", json={})).json()
    return project_id, (key["publicKey"], key["secretKey"])


def integration(project_id: str, server: SecondMinio, bucket: str, **overrides: Any) -> dict:
    return {
        "projectId": project_id,
        "type": "S3_COMPATIBLE",
        "bucketName": bucket,
        "endpoint": server.endpoint,
        "region": "us-east-1",
        "accessKeyId": server.access_key,
        "secretAccessKey": server.secret_key,
        "prefix": "langfuse/",
        "exportFrequency": "daily",
        "enabled": True,
        "forcePathStyle": True,
        "fileType": "PARQUET",
        "exportMode": "FULL_HISTORY",
        **overrides,
    }


def export_now(stack: Stack, project_id: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.query export run --project P`: the running service exports now."""
    return subprocess.run(
        [sys.executable, "-m", "services.query", "export", "run", "--project", project_id],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def ingest(client: httpx.AsyncClient, traces: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(traces)]
    events = []
    for trace_id in ids:
        events += [
            {"id": f"{trace_id}-t", "type": "trace-create", "timestamp": "2026-11-30T10:00:00Z",
             "body": {"id": trace_id, "name": "chat", "input": {"q": "hi"}, "metadata": {"a": 1}}},
            {"id": f"{trace_id}-g", "type": "generation-create",
             "timestamp": "2026-11-30T10:00:01Z",
             "body": {"id": f"{trace_id}-gen", "traceId": trace_id, "model": "gpt-4o",
                      "usage": {"input": 10, "output": 5}, "output": "hello"}},
            {"id": f"{trace_id}-s", "type": "score-create", "timestamp": "2026-11-30T10:00:02Z",
             "body": {"id": f"{trace_id}-score", "traceId": trace_id, "name": "q", "value": 1}},
        ]  # fmt: skip
    ingested = await client.post("/api/public/ingestion", json={"batch": events})
    assert ingested.status_code == 207 and not ingested.json()["errors"], ingested.text

    async def stored() -> list[dict[str, Any]]:
        found = []
        for trace_id in ids:
            response = await client.get(f"/api/public/traces/{trace_id}")
            found.append(response.json() if response.status_code == 200 else {})
        return found

    await eventually(stored, lambda ts: all(t.get("observations") and t.get("scores") for t in ts))
    return ids


def exported(server: SecondMinio, bucket: str, table: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of every Parquet file of `table`, by file."""
    return {
        key: pq.read_table(io.BytesIO(data)).to_pylist()
        for key, data in server.objects(bucket).items()
        if f"/{table}/" in key
    }


async def test_an_organization_exports_a_project_to_its_own_bucket(
    stack: Stack, org_auth: Auth, target: SecondMinio
) -> None:
    bucket = await asyncio.to_thread(target.new_bucket)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=60) as org:
        project_id, project_auth = await new_project(org)
        saved = await org.put(PATH, json=integration(project_id, target, bucket))
        assert saved.status_code == 200, saved.text
        document = saved.json()
        assert (document["id"], document["projectId"]) == (project_id, project_id)
        assert (document["fileType"], document["exportMode"]) == ("PARQUET", "FULL_HISTORY")
        assert (document["accessKeyId"], document["prefix"]) == (target.access_key, "langfuse/")
        assert document["exportSource"] == "LEGACY_TRACES_OBSERVATIONS"
        assert target.secret_key not in saved.text
        listed = (await org.get(PATH)).json()["data"]
        assert [i["id"] for i in listed if i["id"] == project_id] == [project_id]

        async with httpx.AsyncClient(
            base_url=stack.gateway_url, auth=project_auth, timeout=60
        ) as client:
            trace_ids = await ingest(client, 3)

        expected = {
            "traces": trace_ids,
            "observations": [f"{t}-gen" for t in trace_ids],
            "scores": [f"{t}-score" for t in trace_ids],
        }

        # A row counts once the writer's lag (1 s here) has passed: run until all are out.
        async def exported_ids() -> dict[str, set[str]]:
            result = await asyncio.to_thread(export_now, stack, project_id)
            assert result.returncode == 0, result.stdout + result.stderr
            return {
                table: {row["id"] for rows in files.values() for row in rows}
                for table in expected
                for files in [await asyncio.to_thread(exported, target, bucket, table)]
            }

        await eventually(
            exported_ids,
            lambda out: all(out[table] >= set(ids) for table, ids in expected.items()),
            timeout=60,
        )
        for table, ids in expected.items():
            files = await asyncio.to_thread(exported, target, bucket, table)
            assert all(key.startswith(f"langfuse/{project_id}/{table}/") for key in files)
            rows = [row for each in files.values() for row in each]
            newest = {row["id"]: row for row in sorted(rows, key=lambda r: r["event_ts"])}
            assert sorted(newest) == sorted(ids), table
            assert all(row["project_id"] == project_id for row in rows)
        observation = newest_of(target, bucket, "observations", f"{trace_ids[0]}-gen")
        assert observation["provided_model_name"] == "gpt-4o"
        assert dict(observation["usage_details"]) == {"input": 10, "output": 5, "total": 15}

        status = (await org.get(f"{PATH}/{project_id}")).json()
        assert status["syncStatus"] == "up_to_date" and status["lastError"] is None
        assert status["lastSyncAt"] is not None and status["nextSyncAt"] > status["lastSyncAt"]

        # The customer rotates the bucket's credentials: the next run fails, readably.
        old = (target.access_key, target.secret_key)
        await asyncio.to_thread(
            target.restart,
            access_key=f"rotated-{secrets.token_hex(4)}",
            secret_key=secrets.token_hex(16),
        )
        try:
            result = await asyncio.to_thread(export_now, stack, project_id)
        finally:
            await asyncio.to_thread(target.restart, access_key=old[0], secret_key=old[1])
        assert result.returncode == 1 and "\tfailed\t" in result.stdout, result.stdout
        status = (await org.get(f"{PATH}/{project_id}")).json()
        assert status["syncStatus"] == "error", status
        assert "InvalidAccessKeyId" in status["lastError"] and status["lastErrorAt"]

        deleted = await org.delete(f"{PATH}/{project_id}")
        assert deleted.status_code == 200 and deleted.json() == {
            "message": "Blob storage integration deleted successfully"
        }
        assert (await org.get(f"{PATH}/{project_id}")).status_code == 404
        assert (await org.delete(f"{PATH}/{project_id}")).status_code == 404


def newest_of(server: SecondMinio, bucket: str, table: str, row_id: str) -> dict[str, Any]:
    rows = [r for rows in exported(server, bucket, table).values() for r in rows]
    return max((r for r in rows if r["id"] == row_id), key=lambda r: r["event_ts"])


async def test_the_routes_take_an_organization_key_and_reach_only_its_projects(
    stack: Stack, org_auth: Auth, target: SecondMinio
) -> None:
    bucket = await asyncio.to_thread(target.new_bucket)
    other = admin(stack, "create-key", "--org-id", f"other-{uuid.uuid4().hex[:8]}")
    other_auth = (other["publicKey"], other["secretKey"])
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=60) as org,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=other_auth, timeout=60) as theirs,
    ):
        project_id, project_auth = await new_project(org)
        body = integration(project_id, target, bucket)
        assert (await org.put(PATH, json=body)).status_code == 200

        for method, path in (
            ("GET", f"{PATH}/{project_id}"),
            ("DELETE", f"{PATH}/{project_id}"),
            ("PUT", PATH),
        ):
            response = await theirs.request(method, path, json=body if method == "PUT" else None)
            assert response.status_code == 404, (method, response.text)
            assert response.json()["error"] == "LangfuseNotFoundError"
        assert project_id not in [i["id"] for i in (await theirs.get(PATH)).json()["data"]]
        for method, path in (("GET", PATH), ("PUT", PATH), ("GET", f"{PATH}/{project_id}"),
                             ("DELETE", f"{PATH}/{project_id}")):  # fmt: skip
            as_project = await org.request(
                method, path, json=body if method == "PUT" else None, auth=project_auth
            )
            assert as_project.status_code == 403, (method, path, as_project.text)
            anonymous = await org.request(method, path, auth=("pk-lf-none", "sk-lf-none"))
            assert anonymous.status_code == 401
        # Still there and unchanged for its own organization.
        assert (await org.get(f"{PATH}/{project_id}")).json()["enabled"] is True


LEGACY = "LEGACY_TRACES_OBSERVATIONS"
BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("type", {"type": "GCS"}),
    ("S3 and S3_COMPATIBLE", {"type": "AZURE_BLOB_STORAGE"}),
    ("bucketName", {"bucketName": None}),
    ("bucketName", {"bucketName": "Not_A_Bucket"}),
    ("endpoint is required", {"endpoint": None}),
    ("endpoint must be an http", {"endpoint": "ftp://127.0.0.1:9000"}),
    ("endpoint must be an http", {"endpoint": "http://user:pw@127.0.0.1:9000"}),
    ("region", {"region": "us east"}),
    ("accessKeyId", {"accessKeyId": ""}),
    ("secretAccessKey is required", {"secretAccessKey": None}),
    ("prefix", {"prefix": "no-trailing-slash"}),
    ("prefix", {"prefix": "bad\nprefix/"}),
    ("exportFrequency", {"exportFrequency": "minutely"}),
    ("enabled", {"enabled": "yes"}),
    ("forcePathStyle", {"forcePathStyle": None}),
    ("fileType", {"fileType": "XML"}),
    ("exportMode", {"exportMode": "SOMETIMES"}),
    ("exportStartDate is required", {"exportMode": "FROM_CUSTOM_DATE"}),
    ("ISO 8601", {"exportMode": "FROM_CUSTOM_DATE", "exportStartDate": "yesterday"}),
    ("in the future", {"exportMode": "FROM_CUSTOM_DATE", "exportStartDate": "2999-01-01"}),
    ("compressed", {"compressed": "no"}),
    ("legacy tables", {"exportSource": "OBSERVATIONS_V2"}),
    ("exportSource must be one of", {"exportSource": "EVERYTHING"}),
    ("requires exportSource", {"exportFieldGroups": ["core"]}),
    ("must include core", {"exportSource": LEGACY, "exportFieldGroups": ["io"]}),
    ("unknown exportFieldGroups", {"exportSource": LEGACY, "exportFieldGroups": ["core", "x"]}),
    ("InvalidAccessKeyId", {"accessKeyId": "nobody"}),
    ("SignatureDoesNotMatch", {"secretAccessKey": "not-the-secret"}),
    ("NoSuchBucket", {"bucketName": "no-such-bucket"}),
    ("Could not write to bucket", {"endpoint": "http://127.0.0.1:9"}),
]  # fmt: skip


async def test_bad_input_is_a_400_and_saves_nothing(
    stack: Stack, org_auth: Auth, target: SecondMinio
) -> None:
    bucket = await asyncio.to_thread(target.new_bucket)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=60) as org:
        project_id, _ = await new_project(org)
        valid = integration(project_id, target, bucket)
        for expected, change in BAD_BODIES:
            response = await org.put(PATH, json={**valid, **change})
            assert response.status_code == 400, (change, response.text)
            assert response.json()["error"] == "InvalidRequestError"
            assert expected in response.json()["message"], (change, response.text)
        for raw in (b"{", b"[]", b'"text"', b'{"projectId": 5}', b"{}"):
            response = await org.put(PATH, content=raw)
            assert response.status_code == 400, (raw, response.text)
        nul = await org.put(PATH, json={**valid, "projectId": "a\x00b"})
        assert nul.status_code == 404
        assert (await org.get(f"{PATH}/{project_id}")).status_code == 404
        assert project_id not in [i["id"] for i in (await org.get(PATH)).json()["data"]]


async def test_a_deleted_project_takes_its_export_with_it(
    stack: Stack, org_auth: Auth, target: SecondMinio
) -> None:
    bucket = await asyncio.to_thread(target.new_bucket)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=60) as org:
        project_id, _ = await new_project(org)
        assert (
            await org.put(PATH, json=integration(project_id, target, bucket))
        ).status_code == 200
        result = await asyncio.to_thread(export_now, stack, project_id)
        assert result.returncode == 0, result.stdout + result.stderr
        query_db = stack.env["QUERY_DATABASE_URL"]
        before = await postgres_rows(query_db, project_id)
        assert {k for k, n in before.items() if n} >= {
            f"{Path(query_db).name}.blob_storage_exports",
            f"{Path(query_db).name}.blob_storage_export_runs",
        }, before
        assert (await org.delete(f"/api/public/projects/{project_id}")).status_code == 202

        async def left() -> dict[str, int]:
            return {k: n for k, n in (await postgres_rows(query_db, project_id)).items() if n}

        await eventually(left, lambda rows: rows == {}, timeout=60)
