"""The data-lifecycle figures measured on a whole stack (issue 12): the retention pass
(scripts/bench_retention.py) and the deletion of a project with 1,000,000 observations (here).

Each run starts a stack of its own, as the end-to-end tests do (tests/e2e/conftest.py: the five
services on free ports, databases, bucket and Kafka namespace of their own), on a copy of a kept
ClickHouse dataset, so the dev stack is never touched and the 10 M observations are written only
once: scripts/bench_dataset.py fills BENCH_DIR/lifecycle-10m (16 min on a loaded machine), or
BENCH_LIFECYCLE_DATASET names a chDB directory filled by it before (its busiest project is the
one measured; the directory itself is only copied).

The project deletion: 1,000,000 observations (with their traces and scores) of a project of its
own, written beside the 10 M of the other project, which a deletion of the first must leave alone
(ClickHouse rewrites every part holding a row it deletes, and parts hold both projects' rows).
Through the API the project also gets what fills every other store (tests/e2e/test_management.py:
an ingested trace with its event-log object and index rows, a medium, a model, a prompt cached,
a score config, a dataset): raw events of a million observations are not written, the event log
is deleted by prefix, and the ClickHouse rows are what takes the time. `DELETE /projects/{id}`
with an organization key, then the clock runs until every owner's consumer group has committed
the deletion (each commits only once its stores are clean); every store is scanned afterwards.

    python -m scripts.bench_lifecycle
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common.kafka import KafkaCluster, Topic
from scripts.bench_dataset import fill
from services.query.clickhouse import open_clickhouse
from tests.e2e.admin import admin
from tests.e2e.conftest import Stack, running_stack, stack_env
from tests.e2e.test_management import fill_every_store, leftovers
from tests.support.devenv import ROOT

Row = tuple[str, str, str]
ORG_ID = "e2e-org"  # the stack's headless-init organization
BENCH_DIR = Path(os.environ.get("BENCH_LIFECYCLE_DIR", ROOT / ".dev" / "bench"))
DATASET_PROJECT = "bench-lifecycle"
DELETED_PROJECT = "bench-project-delete"
DELETED_OBSERVATIONS = int(os.environ.get("BENCH_DELETE_OBSERVATIONS", "1000000"))
DELETION_OWNERS = ("gateway", "ingestion", "query", "prompts", "evals")


def ten_million() -> Path:
    """The kept 10 M-observation dataset (BENCH_LIFECYCLE_DATASET, or filled once)."""
    given = os.environ.get("BENCH_LIFECYCLE_DATASET")
    if given:
        return Path(given)
    source = BENCH_DIR / "lifecycle-10m"
    if not (source / "filled").exists():
        shutil.rmtree(source, ignore_errors=True)
        in_child("--fill", str(source), DATASET_PROJECT, "10000000")
        (source / "filled").touch()
    return source


def in_child(*args: str) -> Any:
    """`python -m scripts.bench_lifecycle ARGS` and its JSON answer. chDB is one process per
    directory and its engine outlives its sessions: a dataset this process had opened would be
    copied, or opened by the stack, while an engine here still works on it."""
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench_lifecycle", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return orjson.loads(done.stdout.strip().splitlines()[-1])


async def fill_settled(directory: str, project_id: str, observations: int) -> None:
    """Fills, then merges what the fill wrote, as a table at rest is: a delete on freshly
    written parts first waits for the merges running on them (16-21 s instead of 0.7 s at 3 M
    observations)."""
    await fill(f"chdb://{directory}", project_id, observations)
    clickhouse = open_clickhouse(f"chdb://{directory}")
    try:
        for table in ("traces", "observations", "scores"):
            await clickhouse.execute(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        clickhouse.close()


async def describe(directory: str) -> dict[str, list[Any]]:
    """Per project of a dataset, the busiest first: its observation rows and the first and last
    start time among them."""
    clickhouse = open_clickhouse(f"chdb://{directory}")
    try:
        rows = await clickhouse.select(
            "SELECT project_id, count() AS n, min(start_time) AS first, max(start_time) AS last"
            " FROM observations GROUP BY project_id ORDER BY n DESC"
        )
        return {row["project_id"]: [int(row["n"]), row["first"], row["last"]] for row in rows}
    finally:
        clickhouse.close()


def observations_per_project(directory: Path) -> dict[str, int]:
    """How many observation rows each project of a dataset has, the busiest first."""
    return {project: n for project, (n, _, _) in in_child("--describe", str(directory)).items()}


@asynccontextmanager
async def stack_on(dataset: Path, **env: str) -> AsyncIterator[Stack]:
    """A stack of its own whose ClickHouse starts as a copy of `dataset`; `env` overrides."""
    with tempfile.TemporaryDirectory(dir=BENCH_DIR, prefix="stack-") as tmp:
        directory = Path(tmp)
        # The engine links tables to store/: copy the links as links.
        await asyncio.to_thread(shutil.copytree, dataset, directory / "chdb", symlinks=True)
        async with running_stack({**stack_env(directory), **env}, directory) as stack:
            yield stack


def project_with_keys(stack: Stack, project_id: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Creates `project_id` in the stack's organization (its rows may already be in ClickHouse);
    a project key and an organization key, as an admin makes them."""
    admin(stack, "create-project", "--org-id", ORG_ID, "--project-id", project_id, "--name", "B")
    project = admin(stack, "create-key", "--org-id", ORG_ID, "--project-id", project_id)
    org = admin(stack, "create-key", "--org-id", ORG_ID, "--note", "bench lifecycle")
    return (project["publicKey"], project["secretKey"]), (org["publicKey"], org["secretKey"])


async def consumed(stack: Stack, topic: Topic, groups: list[str]) -> dict[str, float]:
    """Waits until every group has committed up to the end of `topic` (one partition): each
    owner commits a deletion or a retention announcement only after its pass over its stores.
    Returns the seconds after which each group was seen done."""
    started = time.perf_counter()
    cluster = KafkaCluster(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_NAMESPACE"])
    partition = TopicPartition(cluster.topic(topic), 0)
    kafka = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers)
    await kafka.start()
    await reader.start()
    done: dict[str, float] = {}
    try:
        end = (await reader.end_offsets([partition]))[partition]
        while len(done) < len(groups):
            for group in [g for g in groups if g not in done]:
                committed = await kafka.list_consumer_group_offsets(cluster.group(group))
                if partition in committed and committed[partition].offset >= end:
                    done[group] = time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        await reader.stop()
        await kafka.close()
    return done


def deleted_project() -> Path:
    """The 10 M dataset with DELETED_OBSERVATIONS more of a project of its own, kept."""
    source = BENCH_DIR / f"projectdelete-{DELETED_OBSERVATIONS}"
    if not (source / "filled").exists():
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(ten_million(), source, symlinks=True)
        in_child("--fill", str(source), DELETED_PROJECT, str(DELETED_OBSERVATIONS))
        (source / "filled").touch()
    return source


async def measure_project_deletion(
    source: Path,
) -> tuple[float, dict[str, float], int, int, dict[str, int]]:
    """Seconds from the 202 until every owner has deleted its part, and until each had; the
    deleted project's observations and the other project's before; what any store holds of it
    afterwards."""
    counts = observations_per_project(source)
    observations = counts.pop(DELETED_PROJECT)
    async with stack_on(source) as stack:
        project_key, org_key = project_with_keys(stack, DELETED_PROJECT)
        gateway = stack.gateway_url
        async with httpx.AsyncClient(base_url=gateway, auth=project_key, timeout=60) as client:
            await fill_every_store(client)
        async with httpx.AsyncClient(base_url=gateway, auth=org_key, timeout=60) as org:
            started = time.perf_counter()
            answer = await org.delete(f"/api/public/projects/{DELETED_PROJECT}")
            answer.raise_for_status()
            groups = [f"{owner}.project-deletions" for owner in DELETION_OWNERS]
            done = await consumed(stack, Topic.PROJECT_DELETIONS, groups)
            seconds = time.perf_counter() - started
        left = await leftovers(stack, DELETED_PROJECT)
    owners = {group.partition(".")[0]: at for group, at in done.items()}
    return seconds, owners, observations, sum(counts.values()), left


def project_deletion_rows() -> list[Row]:
    source = deleted_project()
    seconds, owners, observations, beside, left = asyncio.run(measure_project_deletion(source))
    clean = "every store clean" if not left else f"LEFT: {left}"
    each = ", ".join(f"{owner} {at:.1f} s" for owner, at in owners.items())
    return [
        (f"project deletion, {observations / 1e6:.2f} M observations beside"
         f" {beside / 1e6:.0f} M of another project: 202 -> every owner done ({each}; {clean})",
         f"{seconds:.1f} s", "<= 60 s"),
    ]  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fill"]:
        asyncio.run(fill_settled(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        print("{}")
    elif sys.argv[1:2] == ["--describe"]:
        print(orjson.dumps(asyncio.run(describe(sys.argv[2]))).decode())
    else:
        for figure in project_deletion_rows():
            print(" | ".join(figure))
