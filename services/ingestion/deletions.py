"""The consumer of `ingestion.deletions.v1` (group `ingestion.event-log-cleaner`): deleted traces
lose their event-log objects too, and their media links: a media no other trace or dataset item
references is deleted, record and object (services/ingestion/media.py). Deleting is idempotent,
so a replayed notice changes nothing; a notice whose deletion fails for any reason but an outage
ends on the DLQ (libs/common/kafka.py)."""

from collections.abc import Sequence

import structlog
from google.protobuf.message import DecodeError

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, KafkaCluster, Record, Topic
from services.ingestion.media import Media
from services.ingestion.store import EventLog

GROUP = "ingestion.event-log-cleaner"
log = structlog.get_logger()


def cleaner_settings(kafka: KafkaCluster) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(GROUP),
        topics=(kafka.topic(Topic.INGESTION_DELETIONS),),
    )


def decode_notice(record: Record) -> events_pb2.TracesDeleted:
    try:
        notice = events_pb2.TracesDeleted.FromString(record.value or b"")
    except DecodeError as exc:
        raise InvalidMessage(f"not a TracesDeleted notice: {exc}") from exc
    if not notice.project_id:
        raise InvalidMessage("a deletion notice without a project")
    return notice


class EventLogCleaner:
    def __init__(self, event_log: EventLog, media: Media) -> None:
        self._event_log = event_log
        self._media = media

    async def handle(self, notices: Sequence[events_pb2.TracesDeleted]) -> None:
        for notice in notices:
            trace_ids = list(notice.trace_ids)
            removed = await self._event_log.delete_traces(notice.project_id, trace_ids)
            media = await self._media.forget_traces(notice.project_id, trace_ids)
            log.info("event_log_traces_deleted", project_id=notice.project_id,
                     traces=len(trace_ids), objects=removed, media=media)  # fmt: skip
