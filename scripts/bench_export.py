"""The blob-storage export figure: one export run of a project with 1,000,000 stored observations
(with their traces and scores) to Parquet, its rows per second and the peak RSS of the process
that ran it.

The dataset (scripts/bench_dataset.py) is filled once into a ClickHouse directory of its own under
BENCH_EXPORT_DIR (default .dev/bench/) and kept. The run happens in a child process, so that its
peak RSS is the exporter's alone (chDB itself, the engine embedded in the process, is most of it):
the child opens that directory, keeps the integration in a PostgreSQL database of its own, and
exports to a bucket of the dev MinIO, exactly as the query service's exporter does
(services/query/blob_export.py). The database and the exported objects are removed afterwards.

    python -m scripts.bench_export [observations]
"""

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aioboto3
import asyncpg
import orjson
from botocore.config import Config

from libs.common.migrate import migrate_postgres
from libs.common.secret_box import SecretBox
from scripts.bench_dataset import fill
from services.query.blob_export import BlobExporter
from services.query.clickhouse import open_clickhouse
from services.query.export_api import ExportApi
from services.query.export_store import ExportStore
from services.query.export_targets import parse_networks
from tests.support.devenv import ROOT, dev_env

Row = tuple[str, str, str]
PROJECT = "bench-export"
BENCH_DIR = Path(os.environ.get("BENCH_EXPORT_DIR", ROOT / ".dev" / "bench"))
MIGRATIONS = ROOT / "services" / "query" / "migrations" / "postgres"
ENV = dev_env()
ALLOCATOR = ("MALLOC_ARENA_MAX", "ARROW_DEFAULT_MEMORY_POOL")
LOCAL = parse_networks(ENV["QUERY_EXPORT_ALLOWED_NETWORKS"])  # the bench's MinIO


def export_rows(observations: int | None = None) -> list[Row]:
    count = observations or int(os.environ.get("BENCH_EXPORT_OBSERVATIONS", "1000000"))
    source = BENCH_DIR / f"export-{count}"
    if not (source / "filled").exists():
        # In a process of its own: chDB's engine outlives its sessions, and two engines on one
        # directory (this one and the child's) measured GBs in the child.
        subprocess.run(
            [sys.executable, "-m", "scripts.bench_export", "--fill", str(source), str(count)],
            cwd=ROOT,
            check=True,
        )
        (source / "filled").touch()
    child = subprocess.run(
        [sys.executable, "-m", "scripts.bench_export", "--child", str(source)],
        cwd=ROOT,
        # The allocator settings the query service runs with (scripts/dev.env, the image).
        env=os.environ | {name: ENV[name] for name in ALLOCATOR},
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    observations_per_second = result["observations"] / result["seconds"]
    return [
        (f"blob export of {result['observations'] / 1e6:.2f} M observations to Parquet"
         f" (+ {result['rows'] - result['observations']:,.0f} traces and scores)",
         f"{observations_per_second:,.0f} obs/s ({result['seconds']:.0f} s)", "-"),
        ("peak RSS of the exporting process (before the run; files mapped at its end:"
         " chDB's code)", f"{result['max_rss_mib']:.0f} MiB ({result['before_mib']:.0f};"
         f" {result['file_rss_mib']:.0f})", "<= 512 MiB"),
    ]  # fmt: skip


async def fill_settled(directory: str, count: int) -> None:
    await fill(f"chdb://{directory}", PROJECT, count)
    await settle(f"chdb://{directory}")


async def settle(url: str) -> None:
    """Merges the fill's parts now: otherwise the child's engine merges them in the background
    while the export runs, and its peak RSS measures those merges (GBs for a fresh fill)."""
    clickhouse = open_clickhouse(url)
    try:
        for table in ("traces", "observations", "scores"):
            await clickhouse.execute(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        clickhouse.close()


async def run_child(directory: str) -> dict[str, float]:
    """One export run of PROJECT from `directory` to a new bucket of the dev MinIO."""
    server = ENV["QUERY_DATABASE_URL"].rpartition("/")[0]
    dsn = f"{server}/bench_export_{uuid.uuid4().hex[:8]}"
    bucket = f"bench-export-{uuid.uuid4().hex[:8]}"
    session = aioboto3.Session(
        aws_access_key_id=ENV["S3_ACCESS_KEY"],
        aws_secret_access_key=ENV["S3_SECRET_KEY"],
        region_name=ENV.get("S3_REGION", "us-east-1"),
    )
    config = Config(s3={"addressing_style": "path"})
    clickhouse = open_clickhouse(f"chdb://{directory}")
    async with session.client("s3", endpoint_url=ENV["S3_ENDPOINT_URL"], config=config) as s3:
        await s3.create_bucket(Bucket=bucket)
        await migrate_postgres(dsn, MIGRATIONS)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            box = SecretBox(os.urandom(32))
            store = ExportStore(pool)
            await ExportApi(store, box, allowed_networks=LOCAL).upsert(
                PROJECT, _integration(bucket)
            )
            exporter = BlobExporter(
                store, clickhouse, box, lag=timedelta(0), allowed_networks=LOCAL
            )
            before_mib = _status_mib("VmRSS")
            started = time.perf_counter()
            run = await exporter.export_project(PROJECT)
            seconds = time.perf_counter() - started
            max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            file_rss_mib = _status_mib("RssFile")
            if run is None or run.status != "succeeded":
                raise RuntimeError(f"the export did not succeed: {run}")
            [row] = await clickhouse.select(
                "SELECT count() AS n FROM observations FINAL WHERE project_id = {p:String}",
                {"p": PROJECT},
            )
        finally:
            await pool.close()
            await _drop_database(dsn)
            await _delete_bucket(s3, bucket)
            clickhouse.close()
    return {
        "rows": float(run.rows or 0),
        "observations": float(row["n"]),
        "seconds": seconds,
        "before_mib": before_mib,
        "max_rss_mib": max_rss_mib,
        "file_rss_mib": file_rss_mib,
    }


def _status_mib(field: str) -> float:
    """A size of this process's memory now: VmRSS, or RssFile (mapped files, chDB's library code
    most of it: shared, and dropped under memory pressure, unlike the anonymous rest)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _integration(bucket: str) -> bytes:
    return orjson.dumps(
        {
            "projectId": PROJECT,
            "type": "S3_COMPATIBLE",
            "bucketName": bucket,
            "endpoint": ENV["S3_ENDPOINT_URL"],
            "region": ENV.get("S3_REGION", "us-east-1"),
            "accessKeyId": ENV["S3_ACCESS_KEY"],
            "secretAccessKey": ENV["S3_SECRET_KEY"],
            "prefix": "bench/",
            "exportFrequency": "daily",
            "enabled": True,
            "forcePathStyle": True,
            "fileType": "PARQUET",
            "exportMode": "FULL_HISTORY",
        }
    )


async def _drop_database(dsn: str) -> None:
    server, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _delete_bucket(s3: Any, bucket: str) -> None:
    listed = await s3.list_objects_v2(Bucket=bucket)
    for item in listed.get("Contents", []):
        await s3.delete_object(Bucket=bucket, Key=item["Key"])
    await s3.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fill"]:
        asyncio.run(fill_settled(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1:2] == ["--child"]:
        print(json.dumps(asyncio.run(run_child(sys.argv[2]))))
    else:
        for figure in export_rows(int(sys.argv[1]) if len(sys.argv) > 1 else None):
            print(" | ".join(figure))
