"""Drops this replica's in-process entries of a project when any replica changed its prompts.
Freshness does not depend on it (see libs/common/gencache.py); it frees memory early."""

from collections.abc import Sequence

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache


class ChangeListener:
    def __init__(self, cache: GenerationCache) -> None:
        self._cache = cache

    async def handle(self, changes: Sequence[events_pb2.PromptChanged]) -> None:
        for project_id in {change.project_id for change in changes}:
            self._cache.forget(project_id)
