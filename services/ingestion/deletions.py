"""The consumer of `ingestion.deletions.v1` (group `ingestion.event-log-cleaner`): deleted traces
lose their events in the event log too, and their media links: a media no other trace or dataset
item references is deleted, record and object (services/ingestion/media.py).

An event-log object holds every trace of one request, so a deleted trace's objects (found in the
index) are rewritten without its events, or deleted when nothing else is left, and only then are
its index rows deleted: a crash in between leaves rows that the notice's redelivery finds again,
and rewriting an object that no longer holds the trace changes nothing. Two rewrites of one
object never race: an object holds one project's events, and the notices are keyed by project
(services/query/deletions.py), so one project's are on one partition (the topic has one), handled
in turn by one consumer. A rewrite never brings back an object deleted meanwhile (store.py).
A notice whose deletion fails for any reason but an outage ends on the DLQ (libs/common/kafka.py).
"""

import asyncio
from collections import Counter
from collections.abc import Sequence

import structlog
from google.protobuf.message import DecodeError

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, KafkaCluster, Record, Topic
from services.ingestion.event_index import EventLogIndex
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
    def __init__(self, event_log: EventLog, index: EventLogIndex, media: Media) -> None:
        self._event_log = event_log
        self._index = index
        self._media = media

    async def handle(self, notices: Sequence[events_pb2.TracesDeleted]) -> None:
        for notice in notices:
            project_id, trace_ids = notice.project_id, set(notice.trace_ids)
            keys = await self._index.keys_of(project_id, trace_ids)
            done: Counter[str] = Counter()
            for start in range(0, len(keys), _REWRITES_AT_ONCE):
                chunk = keys[start : start + _REWRITES_AT_ONCE]
                done.update(await asyncio.gather(*(
                    self._event_log.remove_traces(key, trace_ids) for key in chunk
                )))  # fmt: skip
            await self._index.forget_traces(project_id, trace_ids)
            media = await self._media.forget_traces(project_id, trace_ids)
            log.info("event_log_traces_deleted", project_id=project_id, traces=len(trace_ids),
                     objects_rewritten=done["rewritten"], objects_deleted=done["deleted"],
                     media=media)  # fmt: skip


# Objects read and written at once: a long trace spans an object per request that carried it.
_REWRITES_AT_ONCE = 16
