"""Deleted traces announced on `ingestion.deletions.v1`: the query service removes its own rows
at once, and every other owner of trace data (the ingestion event log) deletes its part."""

from aiokafka.errors import KafkaError
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.errors import Unavailable
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import Producer


class DeletionNotices:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def traces_deleted(self, project_id: str, trace_ids: list[str]) -> None:
        deleted_at = Timestamp()
        deleted_at.GetCurrentTime()
        notice = events_pb2.TracesDeleted(
            project_id=project_id, trace_ids=trace_ids, deleted_at=deleted_at
        )
        try:
            await self._producer.send_and_wait(
                self._topic, notice.SerializeToString(), key=project_id.encode()
            )
        except KafkaError as exc:
            # The rows are already gone; a retry by the client repeats both steps harmlessly.
            raise Unavailable("deletion could not be announced, retry later") from exc
