"""Retention through HTTP and the whole stack: an organization key sets a project's
`retentionDays` (PUT /projects/{id}); from that answer on, no read shows the project's data older
than that; the pass (`python -m services.gateway retention run`, what the daily announcement
does) deletes it for good while the newer data stays; bad values are 400s that change nothing."""

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common.kafka import KafkaCluster, Topic
from tests.e2e.admin import admin, new_project
from tests.e2e.conftest import Stack
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

OWNERS = ("ingestion", "query", "evals")


@pytest.fixture(scope="module")
def org_auth(stack: Stack) -> tuple[str, str]:
    key = admin(stack, "create-key", "--org-id", "e2e-org", "--note", "e2e retention")
    return key["publicKey"], key["secretKey"]


def trace_batch(trace_id: str, at: datetime) -> list[dict[str, Any]]:
    """A trace at `at` in session `trace_id`, with a span and a score at the same time."""
    stamp = _iso(at)
    return [
        {"id": f"{trace_id}-t", "type": "trace-create", "timestamp": stamp,
         "body": {"id": trace_id, "timestamp": stamp, "name": "t", "sessionId": trace_id}},
        {"id": f"{trace_id}-o", "type": "span-create", "timestamp": stamp,
         "body": {"id": f"{trace_id}-span", "traceId": trace_id, "startTime": stamp}},
        {"id": f"{trace_id}-s", "type": "score-create", "timestamp": stamp,
         "body": {"id": f"{trace_id}-score", "traceId": trace_id, "name": "q", "value": 1,
                  "timestamp": stamp}},
    ]  # fmt: skip


async def visible(client: httpx.AsyncClient, old: str, new: str) -> dict[str, Any]:
    """What the project's reads show of the two traces."""
    traces = (await client.get("/api/public/traces")).json()["data"]
    observations = (await client.get("/api/public/observations")).json()["data"]
    scores = (await client.get("/api/public/v2/scores")).json()["data"]
    sessions = (await client.get("/api/public/sessions")).json()["data"]
    daily = (await client.get("/api/public/metrics/daily")).json()["data"]
    # Observations per day over the last 30 days (the metrics API may read whole days from
    # pre-aggregated rollups: those too must leave out what the retention hides).
    now = datetime.now(UTC)
    per_day = {
        "view": "observations",
        "timeDimension": {"granularity": "day"},
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "fromTimestamp": _iso(now - timedelta(days=30)),
        "toTimestamp": _iso(now),
    }
    counted = await client.get("/api/public/v2/metrics", params={"query": json.dumps(per_day)})
    return {
        "old trace": (await client.get(f"/api/public/traces/{old}")).status_code,
        "old observation": (await client.get(f"/api/public/observations/{old}-span")).status_code,
        "new trace": (await client.get(f"/api/public/traces/{new}")).status_code,
        "traces": sorted(t["id"] for t in traces),
        "observations": sorted(o["id"] for o in observations),
        "scores": sorted(s["id"] for s in scores),
        "sessions": sorted(s["id"] for s in sessions),
        "daily traces": sum(day["countTraces"] for day in daily),
        "observations counted": sum(row["count_count"] for row in counted.json()["data"]),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def project_id_of(stack: Stack, key: tuple[str, str]) -> str:
    response = httpx.get(f"{stack.gateway_url}/api/public/projects", auth=key, timeout=30)
    return str(response.json()["data"][0]["id"])


async def every_owner_applied_the_retention(stack: Stack) -> None:
    """Each owner's retention group has committed up to the end of the retention topic."""
    cluster = KafkaCluster(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_NAMESPACE"])
    partition = TopicPartition(cluster.topic(Topic.PROJECT_RETENTION), 0)
    kafka = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers)
    await kafka.start()
    await reader.start()
    try:
        end = (await reader.end_offsets([partition]))[partition]
        assert end > 0, "nothing was announced"

        async def behind() -> list[str]:
            lagging = []
            for owner in OWNERS:
                group = cluster.group(f"{owner}.retention")
                committed = await kafka.list_consumer_group_offsets(group)
                if partition not in committed or committed[partition].offset < end:
                    lagging.append(owner)
            return lagging

        await eventually(behind, lambda lagging: not lagging, timeout=60)
    finally:
        await reader.stop()
        await kafka.close()


async def test_a_retention_hides_old_data_at_once_and_the_pass_deletes_it(
    stack: Stack, org_auth: tuple[str, str]
) -> None:
    project_key = new_project(stack, "retention")
    project_id = project_id_of(stack, project_key)
    old, new = f"old-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=project_key, timeout=30) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org,
    ):
        batch = trace_batch(old, now - timedelta(days=10)) + trace_batch(new, now)
        ingested = await client.post("/api/public/ingestion", json={"batch": batch})
        assert ingested.status_code == 207 and not ingested.json()["errors"], ingested.text
        everything = await eventually(
            lambda: visible(client, old, new), lambda seen: len(seen["scores"]) == 2
        )
        assert everything["old trace"] == 200 and everything["daily traces"] == 2
        assert everything["observations counted"] == 2
        # Comments written today, one on each trace.
        for trace_id in (old, new):
            comment = {"projectId": project_id, "objectType": "TRACE", "objectId": trace_id,
                       "content": "looked at"}  # fmt: skip
            created = await client.post("/api/public/comments", json=comment)
            assert created.status_code == 200, created.text

        async def keep(days: int | None) -> None:
            body = {"name": "retention", "retentionDays": days}
            response = await org.put(f"/api/public/projects/{project_id}", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["retentionDays"] == days

        # Hidden from the very next request, before anything is deleted.
        await keep(3)
        assert await visible(client, old, new) == only(new)

        subprocess.run(
            [sys.executable, "-m", "services.gateway", "retention", "run"],
            cwd=ROOT, env={**os.environ, **stack.env}, check=True, capture_output=True,
        )  # fmt: skip
        await every_owner_applied_the_retention(stack)

        # Kept forever from now on: what the pass deleted does not come back; the rest stayed.
        await keep(None)
        after = await visible(client, old, new)
        comments = (await client.get("/api/public/comments")).json()["data"]
    # The comment on the trace the retention removed went with it.
    assert [c["objectId"] for c in comments] == [new]
    assert after == only(new)


def only(new: str) -> dict[str, Any]:
    """What `visible` shows when nothing but the trace `new` is kept."""
    return {
        "old trace": 404,
        "old observation": 404,
        "new trace": 200,
        "traces": [new],
        "observations": [f"{new}-span"],
        "scores": [f"{new}-score"],
        "sessions": [new],
        "daily traces": 1,
        "observations counted": 1,
    }


@pytest.mark.parametrize("days", [2, "7", 1.5, -3, True])
async def test_a_retention_that_is_not_a_whole_number_of_at_least_3_days_is_a_400(
    stack: Stack, org_auth: tuple[str, str], days: Any
) -> None:
    project_key = new_project(stack, "bad-retention")
    project_id = project_id_of(stack, project_key)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org:
        response = await org.put(
            f"/api/public/projects/{project_id}", json={"name": "B", "retentionDays": days}
        )
        listed = (await org.get("/api/public/organizations/projects")).json()["projects"]
    assert response.status_code == 400
    assert "at least 3" in response.json()["message"]
    kept = httpx.get(f"{stack.gateway_url}/api/public/projects", auth=project_key, timeout=30)
    assert kept.json()["data"][0]["retentionDays"] is None
    assert any(p["id"] == project_id for p in listed)


async def test_the_longest_retention_keeps_everything_readable(
    stack: Stack, org_auth: tuple[str, str]
) -> None:
    """2^31 - 1 days (the largest accepted) reaches before any date: reads work and see all."""
    project_key = new_project(stack, "long-retention")
    project_id = project_id_of(stack, project_key)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=project_key, timeout=30) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=org_auth, timeout=30) as org,
    ):
        body = {"name": "long", "retentionDays": 2**31 - 1}
        assert (await org.put(f"/api/public/projects/{project_id}", json=body)).status_code == 200
        old = f"old-{uuid.uuid4().hex[:8]}"
        batch = trace_batch(old, datetime(1971, 1, 1, tzinfo=UTC))
        assert (
            await client.post("/api/public/ingestion", json={"batch": batch})
        ).status_code == 207

        async def trace() -> int:
            return (await client.get(f"/api/public/traces/{old}")).status_code

        assert await eventually(trace, lambda status: status == 200) == 200
        assert (await client.get("/api/public/sessions")).status_code == 200
