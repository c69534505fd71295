"""The stack's event log read as ingestion wrote it: an object per request holds every trace of
that request, so a trace's events are counted by decoding the objects written since a test
began (their keys sort by arrival: services/ingestion/store.py)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from libs.common.event_batches import decode_event_batch
from services.ingestion.store import EventLog, trace_of


class LoggedEvents:
    def __init__(self, s3: Any, bucket: str, project_id: str) -> None:
        self._s3, self._bucket = s3, bucket
        # Every key written from a second before now on sorts after this one.
        key = EventLog.key(project_id, datetime.now(UTC) - timedelta(seconds=1))
        self._since = key.rsplit("-", 1)[0]
        self._prefix = "/".join(key.split("/")[:2]) + "/"

    async def count(self, trace_id: str) -> int:
        """How many events of this trace the objects written since then hold."""
        count = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=self._prefix, StartAfter=self._since)
        async for page in pages:
            for item in page.get("Contents", []):
                reply = await self._s3.get_object(Bucket=self._bucket, Key=item["Key"])
                async with reply["Body"] as stream:
                    events = decode_event_batch(await stream.read()).events
                count += sum(1 for event in events if trace_of(event) == trace_id)
        return count
