"""No record stops a service. Records nobody can write are published straight to the stack's
topics (as a bug, an older ingestion or a replay could): they end on the dead-letter topic, listed
by `python -m services.<name> dlq list`, while good records of another project in the same burst
are stored, and every service keeps running and SERVING."""

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import aioboto3
import asyncpg
import httpx
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import KafkaCluster, Topic, make_producer
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack
from tests.e2e.event_log import LoggedEvents
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
POISON_PROJECT = "poison-project"
TRACE = events_pb2.EVENT_TYPE_TRACE_CREATE
OBSERVATION = events_pb2.EVENT_TYPE_OBSERVATION_CREATE


def record(project_id: str, trace_id: str, *events: tuple[int, dict[str, Any]]) -> bytes:
    """One message of `ingestion.events.v1`: these events of one trace, as ingestion sends them."""
    now = Timestamp()
    now.GetCurrentTime()
    batch = events_pb2.IngestionEventBatch()
    for kind, body in events:
        batch.events.add(
            event_id=uuid.uuid4().hex,
            project_id=project_id,
            type=kind,  # type: ignore[arg-type]
            observation_type="GENERATION" if kind == OBSERVATION else "",
            entity_id=body["id"],
            trace_id=trace_id,
            event_time=now,
            received_at=now,
            body_json=orjson.dumps(body),
        )
    return encode_event_batch(batch)


def generation(trace_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    return OBSERVATION, {"id": uuid.uuid4().hex, "traceId": trace_id, **body}


async def publish(stack: Stack, topic: Topic, messages: list[tuple[str, bytes]]) -> None:
    """Sends the (key, value) messages in one burst, so the consumer gets them in one batch."""
    cluster = KafkaCluster(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_NAMESPACE"])
    producer = make_producer(cluster, "e2e-poison")
    await producer.start()
    try:
        sends = (
            producer.send_and_wait(cluster.topic(topic), value, key=key.encode())
            for key, value in messages
        )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def dead_lettered(stack: Stack, service: str, key: str) -> list[str]:
    """The `dlq list` lines of this record key."""
    listed = subprocess.run(
        [sys.executable, "-m", f"services.{service}", "dlq", "list"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if f"\tkey={key}\t" in line]


def assert_all_running(stack: Stack) -> None:
    exited = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
    assert exited == {}
    health = subprocess.run(
        [sys.executable, "-m", "scripts.health"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
    )
    assert health.returncode == 0, health.stdout


async def test_unwritable_records_go_to_the_dlq_and_the_good_ones_beside_them_are_stored(
    stack: Stack,
) -> None:
    good, poison = uuid.uuid4().hex, uuid.uuid4().hex
    poison_key = f"{POISON_PROJECT}:{poison}"
    # 120 observations in as many months: more partitions than ClickHouse takes in one insert,
    # which the writer splits (this record is not poison).
    spread = [
        generation(good, startTime=f"{2000 + i // 12}-{i % 12 + 1:02}-15T00:00:00Z")
        for i in range(120)
    ]
    # Decimal64(12) holds costs below 1e6; prompt_version is a UInt16.
    too_costly = record(POISON_PROJECT, poison, generation(poison, costDetails={"total": 1e7}))
    negative = record(POISON_PROJECT, poison, generation(poison, promptVersion=-1))
    beside = record(PROJECT_ID, good, (TRACE, {"id": good}), *spread)
    await publish(
        stack,
        Topic.INGESTION_EVENTS,
        [(poison_key, too_costly), (f"{PROJECT_ID}:{good}", beside), (poison_key, negative)],
    )

    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        stored = await eventually(
            lambda: client.get(f"/api/public/traces/{good}"),
            lambda r: r.status_code == 200 and len(r.json()["observations"]) == 120,
            timeout=60,
        )
    assert stored.json()["id"] == good
    letters = await eventually(
        lambda: dead_lettered(stack, "query", poison_key), lambda lines: len(lines) == 2
    )
    # Refused when decoded (the same ranges as ingestion's), never tried in an insert.
    assert "InvalidMessage" in letters[0] and "costDetails must" in letters[0]
    assert "InvalidMessage" in letters[1] and "promptVersion must" in letters[1]
    assert all("query.clickhouse-writer" in line for line in letters)
    assert_all_running(stack)


async def test_a_project_model_with_unusable_prices_never_blocks_another_project(
    stack: Stack,
) -> None:
    """Stored as an older models API accepted it (a tier without a name, a price as a string, a
    bad regex condition): the poison project's generation is priced without it or dead-lettered,
    the other project's record beside it is stored."""
    tiers = [{"prices": {"input": "abc"}, "conditions": [
        {"usageDetailPattern": "(", "operator": "gt", "value": 1}]}]  # fmt: skip
    database = await asyncpg.connect(stack.env["QUERY_DATABASE_URL"])
    try:
        await database.execute(
            "INSERT INTO models (id, project_id, model_name, match_pattern, tokenizer_id,"
            " tokenizer_config, pricing_tiers) VALUES ($1, $2, 'bad', '(?i)^bad-model$',"
            " 'openai', '{\"tokensPerMessage\": \"x\"}', $3::jsonb)",
            uuid.uuid4().hex,
            POISON_PROJECT,
            orjson.dumps(tiers).decode(),
        )
    finally:
        await database.close()
    good, poison = uuid.uuid4().hex, uuid.uuid4().hex
    priced = generation(poison, model="bad-model", usageDetails={"input": 10}, input="hi")
    await publish(
        stack,
        Topic.INGESTION_EVENTS,
        [
            (f"{POISON_PROJECT}:{poison}", record(POISON_PROJECT, poison, priced)),
            (f"{PROJECT_ID}:{good}", record(PROJECT_ID, good, (TRACE, {"id": good}))),
        ],
    )
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await eventually(
            lambda: client.get(f"/api/public/traces/{good}"), lambda r: r.status_code == 200
        )
    assert_all_running(stack)


async def test_deletions_naming_empty_or_dot_trace_ids_do_not_stop_ingestion(
    stack: Stack,
) -> None:
    session = aioboto3.Session(
        aws_access_key_id=stack.env["S3_ACCESS_KEY"],
        aws_secret_access_key=stack.env["S3_SECRET_KEY"],
        region_name=stack.env["S3_REGION"],
    )
    async with (
        session.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"]) as s3,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client,
    ):

        async def ingest() -> str:
            trace_id = uuid.uuid4().hex
            created = {"id": uuid.uuid4().hex, "type": "trace-create",
                       "timestamp": "2026-11-22T10:00:00Z", "body": {"id": trace_id}}  # fmt: skip
            batch = {"batch": [created]}
            (await client.post("/api/public/ingestion", json=batch)).raise_for_status()
            return trace_id

        logged = LoggedEvents(s3, stack.env["INGESTION_S3_BUCKET"], PROJECT_ID).count

        for bad in ("", ".", ".."):
            # The API may refuse these ids (400); either way nothing may stop.
            await client.request("DELETE", "/api/public/traces", json={"traceIds": [bad]})
        # The notice as the query service would announce it, beside a real trace of the project.
        doomed = await ingest()
        notice = events_pb2.TracesDeleted(project_id=PROJECT_ID, trace_ids=["", ".", "..", doomed])
        await publish(stack, Topic.INGESTION_DELETIONS, [(PROJECT_ID, notice.SerializeToString())])
        await eventually(lambda: logged(doomed), lambda count: count == 0)

        later = await ingest()
        await eventually(
            lambda: client.get(f"/api/public/traces/{later}"), lambda r: r.status_code == 200
        )
    assert await dead_lettered(stack, "ingestion", PROJECT_ID) == []
    assert_all_running(stack)
