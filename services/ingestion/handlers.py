"""IngestionServicer: validate per event, log the accepted ones to S3 (indexed in PostgreSQL),
publish them to Kafka, and answer only once all three are durable (a success means the event
will become visible, and its trace's deletion will find it)."""

import asyncio
from datetime import UTC, datetime

import asyncpg
import grpc
import orjson
import structlog
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError

from libs.common.errors import InvalidArgument, Unavailable
from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from libs.common.kafka import Producer, partition_of
from libs.common.scope import scope_from
from services.ingestion.batch import EventError, accept, parse_envelope, score_event
from services.ingestion.event_index import EventLogIndex
from services.ingestion.media import Media
from services.ingestion.otel import otel_events
from services.ingestion.otlp import OtlpError, read_export
from services.ingestion.score_configs import (
    ScoreConfigs,
    check_scores,
    config_ids_of_batch,
    config_ids_of_scores,
)
from services.ingestion.store import EventLog, trace_of

log = structlog.get_logger()


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        event_log: EventLog,
        index: EventLogIndex,
        producer: Producer,
        topic: str,
        *,
        score_configs: ScoreConfigs,
        max_otlp_bytes: int = 32 * 1024 * 1024,
        media: Media | None = None,
    ) -> None:
        self._event_log = event_log
        self._index = index
        self._media = media
        self._score_configs = score_configs
        self._producer = producer
        self._topic = topic
        self._max_otlp_bytes = max_otlp_bytes

    async def IngestBatch(  # noqa: N802
        self, request: ingestion_pb2.IngestBatchRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestBatchResponse:
        scope = scope_from(context)
        try:
            items = parse_envelope(request.body)
        except ValueError as exc:
            raise InvalidArgument(f"Invalid request data: {exc}") from exc
        received_at = datetime.now(UTC)
        response = ingestion_pb2.IngestBatchResponse()
        events: list[events_pb2.IngestionEvent] = []
        configs = await self._score_configs.lookup(scope.project_id, config_ids_of_batch(items))
        for position, item in enumerate(items):
            try:
                accepted = accept(item, scope.project_id, scope.access, received_at)
                check_scores(accepted.events, configs)
            except EventError as exc:
                response.errors.add(id=exc.event_id or str(position), status=exc.status,
                                    message=exc.message, error=exc.error)  # fmt: skip
                continue
            except Exception:
                # A bug must cost only its own event: the good ones beside it are still published.
                log.exception("event_failed", position=position)
                response.errors.add(id=_event_id(item, position), status=500,
                                    message="Internal Server Error", error="")  # fmt: skip
                continue
            events.extend(accepted.events)
            response.successes.add(id=accepted.envelope_id, status=201)
        if events:
            await self._publish(scope.project_id, received_at, events)
        return response

    async def IngestOtlp(  # noqa: N802
        self, request: ingestion_pb2.IngestOtlpRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestOtlpResponse:
        scope = scope_from(context)
        scope.require_project_access()
        try:
            spans = read_export(request.body, request.content_type, request.content_encoding,
                                self._max_otlp_bytes)  # fmt: skip
        except OtlpError as exc:
            raise InvalidArgument(str(exc)) from exc
        received_at = datetime.now(UTC)
        events = otel_events(spans, scope.project_id, received_at, request.sdk_name,
                             request.sdk_version)  # fmt: skip
        if events:
            await self._publish(scope.project_id, received_at, events)
        return ingestion_pb2.IngestOtlpResponse()

    async def IngestScores(  # noqa: N802
        self, request: ingestion_pb2.IngestScoresRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestScoresResponse:
        scope = scope_from(context)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument("Invalid request data: the body is not valid JSON") from exc
        received_at = datetime.now(UTC)
        response = ingestion_pb2.IngestScoresResponse()
        events = []
        items = body if isinstance(body, list) else [body]
        configs = await self._score_configs.lookup(scope.project_id, config_ids_of_scores(items))
        for position, item in enumerate(items):
            try:
                event = score_event(item, scope.project_id, received_at)
                check_scores([event], configs)
            except EventError as exc:
                response.errors.add(id=str(position), status=exc.status, message=exc.error)
                continue
            except Exception:
                log.exception("score_failed", position=position)
                response.errors.add(id=str(position), status=500, message="Internal Server Error")
                continue
            events.append(event)
            response.ids.append(event.entity_id)
        if events:
            await self._publish(scope.project_id, received_at, events)
        return response

    async def CreateMediaUpload(  # noqa: N802
        self, request: ingestion_pb2.CreateMediaUploadRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.CreateMediaUploadResponse:
        scope = scope_from(context)
        scope.require_project_access()
        media_id, upload_url = await self._media_api().create_upload(scope.project_id, request.body)
        return ingestion_pb2.CreateMediaUploadResponse(
            media_id=media_id, upload_url=upload_url or ""
        )

    async def PatchMedia(  # noqa: N802
        self, request: ingestion_pb2.PatchMediaRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.PatchMediaResponse:
        scope = scope_from(context)
        scope.require_project_access()
        await self._media_api().patch(scope.project_id, request.media_id, request.body)
        return ingestion_pb2.PatchMediaResponse()

    async def GetMedia(  # noqa: N802
        self, request: ingestion_pb2.GetMediaRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetMediaResponse:
        scope = scope_from(context)
        scope.require_project_access()
        media_json = await self._media_api().get(scope.project_id, request.media_id)
        return ingestion_pb2.GetMediaResponse(media_json=media_json)

    def _media_api(self) -> Media:
        if self._media is None:
            raise Unavailable("media storage is not configured")
        return self._media

    async def _publish(
        self, project_id: str, received_at: datetime, events: list[events_pb2.IngestionEvent]
    ) -> None:
        """A request's events cost one event-log object, one index statement and one message per
        partition, all written at once. Each trace's events go to the partition a send keyed
        `project:trace` would take, so a trace keeps its order on one partition. The object is
        the messages' values one after the other: gzip members and serialized batches both
        concatenate, so it decodes (libs/common/event_batches.py) as one batch of every event."""
        log_key = EventLog.key(project_id, received_at)
        try:
            partitions = await self._producer.partitions(self._topic)
            partition_of_trace: dict[str, int] = {}
            by_partition: dict[int, list[events_pb2.IngestionEvent]] = {}
            for event in events:
                event.event_log_key = log_key
                trace_id = trace_of(event)
                partition = partition_of_trace.get(trace_id)
                if partition is None:
                    key = f"{project_id}:{trace_id}".encode()
                    partition = partition_of_trace[trace_id] = partition_of(key, partitions)
                by_partition.setdefault(partition, []).append(event)
            values = {
                partition: encode_event_batch(events_pb2.IngestionEventBatch(events=grouped))
                for partition, grouped in sorted(by_partition.items())
            }
            # The key names the project alone: evals skips the messages of projects without
            # rules by it, and the DLQ lists it.
            await asyncio.gather(
                self._event_log.put(log_key, b"".join(values.values())),
                self._index.add(project_id, log_key, partition_of_trace),
                *(
                    self._producer.send_and_wait(
                        self._topic, value, key=project_id.encode(), partition=partition
                    )
                    for partition, value in values.items()
                ),
            )
        except (BotoCoreError, ClientError, KafkaError, asyncpg.PostgresError, OSError) as exc:
            # Nothing is acknowledged unless the log, its index and the topic have it; the SDKs
            # retry (a retry writes a new object: the events are merged again, idempotently).
            raise Unavailable("event storage is unavailable, retry later") from exc


def _event_id(item: object, position: int) -> str:
    event_id = item.get("id") if isinstance(item, dict) else None
    return event_id if isinstance(event_id, str) else str(position)
