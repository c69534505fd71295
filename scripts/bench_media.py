"""Bench rows of the media uploads (issue 11), against a running stack: the round trip of a 1 MiB
PNG through the Python SDK's own upload path (its MediaManager: POST /api/public/media, the
presigned PUT with x-amz-checksum-sha256 straight to S3, PATCH /api/public/media/{id}), p95, and
the p50/p95 of each of those three stages (timed around the SDK's own calls), so the figure says
whose time it is: the PUT is S3's (MinIO hashing and storing 1 MiB), POST and PATCH are ours.
Each sample is a new image (the same bytes twice are uploaded once: no PUT the second time).
"""

import os
import queue
import statistics
import struct
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from langfuse import Langfuse, LangfuseMedia
from langfuse._task_manager.media_manager import MediaManager
from langfuse.api import MediaContentType

from scripts.bench_support import p95_ms

Row = tuple[str, str, str]
SAMPLES = int(os.environ.get("BENCH_MEDIA_SAMPLES", "50"))
WARMUP = 5
SIDE = 512  # 512 x 512 RGBA pixels: 1 MiB of pixel data


def png_1mib() -> bytes:
    """A valid PNG of random pixels (incompressible: about 1 MiB on the wire too)."""
    raw = os.urandom(SIDE * SIDE * 4)
    scanlines = b"".join(b"\x00" + raw[y * SIDE * 4 : (y + 1) * SIDE * 4] for y in range(SIDE))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines, 1)) + chunk(b"IEND", b"")
    )  # fmt: skip


STAGES = ("POST /media", "PUT to S3", "PATCH /media")


def timed(call: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    """`call`, appending the seconds each call takes to `into`."""

    def timing(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    return timing


def media_rows(gateway: str, auth: tuple[str, str]) -> list[Row]:
    sdk = Langfuse(public_key=auth[0], secret_key=auth[1], host=gateway)
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    media_api = sdk.api.media
    media_api.get_upload_url = timed(media_api.get_upload_url, stages["POST /media"])  # type: ignore[method-assign]
    media_api.patch = timed(media_api.patch, stages["PATCH /media"])  # type: ignore[method-assign]
    with httpx.Client(timeout=30) as http:
        http.put = timed(http.put, stages["PUT to S3"])  # type: ignore[method-assign]
        # The SDK's uploader as its background thread runs it, called here one job at a time.
        manager = MediaManager(
            api_client=sdk.api, httpx_client=http, media_upload_queue=queue.Queue()
        )
        samples, size, upload_host = [], 0, ""
        for index in range(WARMUP + SAMPLES):
            content = png_1mib()
            size = len(content)
            media = LangfuseMedia(content_bytes=content, content_type=MediaContentType.IMAGE_PNG)
            job = {
                "media_id": media._media_id, "content_bytes": content, "content_type": "image/png",
                "content_length": size, "content_sha256_hash": media._content_sha256_hash,
                "trace_id": uuid.uuid4().hex, "observation_id": None, "dataset_id": None,
                "dataset_item_id": None, "field": "input",
            }  # fmt: skip
            if index == WARMUP:
                for timings in stages.values():
                    timings.clear()
            started = time.perf_counter()
            manager._process_upload_media_job(data=job)  # type: ignore[arg-type]
            if index >= WARMUP:
                samples.append(time.perf_counter() - started)
            if index == 0:  # uploaded, and the bytes read back are the image's
                stored = sdk.api.media.get(str(media._media_id))
                upload_host = urlsplit(stored.url).netloc
                if http.get(stored.url).content != content:
                    raise RuntimeError("media: the bytes read back differ from those uploaded")
    sdk.shutdown()
    return [
        (f"media upload round trip, {size / 2**20:.1f} MiB PNG, Python SDK, p95",
         f"{p95_ms(samples):.0f} ms", "<= 100 ms"),
        *((f"media upload stage: {stage}, p50 / p95",
           f"{statistics.median(stages[stage]) * 1e3:.0f} / {p95_ms(stages[stage]):.0f} ms", "")
          for stage in STAGES),
        ("media bytes stored and served by (presigned, not the gateway)",
         upload_host, f"!= {urlsplit(gateway).netloc}"),
    ]  # fmt: skip
