"""The raw event log in S3: every accepted batch is written here before it is published."""

import uuid
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from services.ingestion.config import IngestionConfig


async def open_s3(cfg: IngestionConfig, stack: AsyncExitStack) -> Any:
    session = aioboto3.Session(
        aws_access_key_id=cfg.s3_access_key or None,
        aws_secret_access_key=cfg.s3_secret_key or None,
        region_name=cfg.s3_region,
    )
    # Path-style addressing: local and most self-hosted S3 servers have no per-bucket DNS.
    client_config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5})
    return await stack.enter_async_context(
        session.client("s3", endpoint_url=cfg.s3_endpoint_url or None, config=client_config)
    )


class EventLog:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    async def ensure_bucket(self) -> None:
        try:
            await self._s3.head_bucket(Bucket=self._bucket)
        except ClientError:
            await self._s3.create_bucket(Bucket=self._bucket)

    async def ping(self) -> None:
        await self._s3.head_bucket(Bucket=self._bucket)

    async def append(self, project_id: str, received_at: datetime, raw: bytes) -> str:
        """Writes one request body as it arrived (batch JSON or an OTLP export, possibly gzip)
        and returns its key. Keys sort by project and time, so a replay or a deletion reads one
        prefix."""
        key = f"events/{project_id}/{received_at:%Y/%m/%d/%H}/{uuid.uuid4().hex}"
        await self._s3.put_object(Bucket=self._bucket, Key=key, Body=raw)
        return key
