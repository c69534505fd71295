"""Listens to `prompts.changes.v1` and drops this replica's in-process entries of the changed
project. Freshness does not depend on it (see cache.py); it frees memory and keeps replicas from
holding entries no read will ask for again."""

import uuid
from collections.abc import Sequence

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, Record, Topic
from services.prompts.cache import PromptCache


def change_listener_settings(bootstrap_servers: str) -> ConsumerSettings:
    # A group of its own per replica: every replica must see every change.
    return ConsumerSettings(
        bootstrap_servers=bootstrap_servers,
        group_id=f"prompts.cache-{uuid.uuid4().hex[:12]}",
        topics=(Topic.PROMPT_CHANGES,),
        auto_offset_reset="latest",
        max_wait_ms=100,
    )


def decode_change(record: Record) -> events_pb2.PromptChanged:
    try:
        return events_pb2.PromptChanged.FromString(record.value or b"")
    except Exception as exc:
        raise InvalidMessage(f"not a PromptChanged message: {exc}") from exc


class ChangeListener:
    def __init__(self, cache: PromptCache) -> None:
        self._cache = cache

    async def handle(self, changes: Sequence[events_pb2.PromptChanged]) -> None:
        for project_id in {change.project_id for change in changes}:
            self._cache.forget(project_id)
