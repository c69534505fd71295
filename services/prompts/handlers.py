"""PromptsServicer: one method per RPC. Validation lives in versions.py and composition.py, SQL in
store.py, caching in cache.py; here requests become calls and rows become messages."""

import functools
from datetime import UTC
from typing import Any

import grpc
import orjson
from redis.exceptions import RedisError

from libs.common.chat_messages import chat_message_dict
from libs.common.errors import InvalidArgument, NotFound, Unavailable
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.gencache import GenerationCache
from libs.common.kafka import KafkaCluster, Producer, Topic
from libs.common.scope import scope_from
from services.prompts.compiler import compile_chat, compile_text
from services.prompts.composition import Reference, Resolution, has_references
from services.prompts.convert import (
    TYPE_TO_PROTO,
    TYPES,
    message_proto,
    parse_json,
    timestamp,
    to_proto,
)
from services.prompts.store import Finder, ListFilter, PromptStore
from services.prompts.versions import (
    PRODUCTION,
    NewPrompt,
    PromptType,
    PromptVersion,
    validate_labels,
    validate_name,
    validate_new,
)


class PromptsServicer(prompts_pb2_grpc.PromptsServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        store: PromptStore,
        cache: GenerationCache,
        producer: Producer,
        kafka: KafkaCluster,
    ) -> None:
        self._store = store
        self._cache = cache
        self._producer = producer
        self._changes_topic = kafka.topic(Topic.PROMPT_CHANGES)

    async def CreatePrompt(  # noqa: N802
        self, request: prompts_pb2.CreatePromptRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.CreatePromptResponse:
        project_id = _writer(context)
        new = NewPrompt(
            name=request.name,
            type=TYPES.get(request.type, PromptType.TEXT),
            prompt=request.text
            if request.type != prompts_pb2.PROMPT_TYPE_CHAT
            else [chat_message_dict(m) for m in request.messages],
            config=parse_json(request.config_json, default={}),
            labels=validate_labels(list(request.labels), allow_latest=True),
            tags=tuple(request.tags.tags) if request.HasField("tags") else None,
            commit_message=request.commit_message or None,
        )
        validate_new(new)
        created = await self._store.create(project_id, new, _check_composition)
        await self._changed(project_id, new.name)
        return prompts_pb2.CreatePromptResponse(prompt=to_proto(created, created.prompt, None))

    async def GetPrompt(  # noqa: N802
        self, request: prompts_pb2.GetPromptRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.GetPromptResponse:
        project_id = scope_from(context).project_id
        return prompts_pb2.GetPromptResponse(prompt=await self._resolved(project_id, request))

    async def ListPrompts(  # noqa: N802
        self, request: prompts_pb2.ListPromptsRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.ListPromptsResponse:
        project_id = scope_from(context).project_id
        page, limit = request.page.page or 1, request.page.limit or 10
        if page < 1 or not 1 <= limit <= 100:
            raise InvalidArgument("page must be ≥ 1 and limit between 1 and 100")
        where = ListFilter(
            name=request.name or None,
            label=request.label or None,
            tag=request.tag or None,
            from_updated_at=(
                request.from_updated_at.ToDatetime(tzinfo=UTC)
                if request.HasField("from_updated_at")
                else None
            ),
            to_updated_at=(
                request.to_updated_at.ToDatetime(tzinfo=UTC)
                if request.HasField("to_updated_at")
                else None
            ),
        )
        summaries, total = await self._store.list(project_id, where, page, limit)
        return prompts_pb2.ListPromptsResponse(
            prompts=[
                prompts_pb2.PromptMeta(
                    name=s.name,
                    type=TYPE_TO_PROTO[s.type],
                    versions=s.versions,
                    labels=s.labels,
                    tags=s.tags,
                    last_updated_at=timestamp(s.last_updated_at),
                    last_config_json=orjson.dumps(s.last_config),
                )
                for s in summaries
            ],
            meta=common_pb2.PageMeta(
                page=page, limit=limit, total_items=total, total_pages=-(-total // limit)
            ),
        )

    async def UpdatePromptLabels(  # noqa: N802
        self, request: prompts_pb2.UpdatePromptLabelsRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.UpdatePromptLabelsResponse:
        project_id = _writer(context)
        labels = validate_labels(list(request.new_labels), allow_latest=False)
        updated = await self._store.add_labels(project_id, request.name, request.version, labels)
        await self._changed(project_id, request.name)
        return prompts_pb2.UpdatePromptLabelsResponse(
            prompt=to_proto(updated, updated.prompt, None)
        )

    async def DeletePrompt(  # noqa: N802
        self, request: prompts_pb2.DeletePromptRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.DeletePromptResponse:
        project_id = _writer(context)
        version = request.version if request.HasField("version") else None
        deleted = await self._store.delete(project_id, request.name, version, request.label or None)
        if deleted == 0:
            raise NotFound(f"Prompt not found: '{request.name}'")
        await self._changed(project_id, request.name)
        return prompts_pb2.DeletePromptResponse()

    async def CompilePrompt(  # noqa: N802
        self, request: prompts_pb2.CompilePromptRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.CompilePromptResponse:
        project_id = scope_from(context).project_id
        prompt = await self._resolved(project_id, request.prompt)
        variables = dict(request.variables)
        if prompt.type == prompts_pb2.PROMPT_TYPE_TEXT:
            return prompts_pb2.CompilePromptResponse(
                prompt=prompt, compiled_text=compile_text(prompt.text, variables)
            )
        placeholders = {
            name: parse_json(value, default=[]) for name, value in request.placeholders_json.items()
        }
        messages = compile_chat(
            [chat_message_dict(m) for m in prompt.messages], variables, placeholders
        )
        return prompts_pb2.CompilePromptResponse(
            prompt=prompt, compiled_messages=[message_proto(m) for m in messages]
        )

    async def GetPromptId(  # noqa: N802
        self, request: prompts_pb2.GetPromptIdRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.GetPromptIdResponse:
        project_id = scope_from(context).project_id
        found = await self._store.find(project_id, Reference(request.name, request.version, None))
        if found is None:
            raise NotFound(f"Prompt not found: '{request.name}' with version {request.version}")
        return prompts_pb2.GetPromptIdResponse(prompt_id=found.id)

    async def GetPromptVersionById(  # noqa: N802
        self, request: prompts_pb2.GetPromptVersionByIdRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.GetPromptVersionByIdResponse:
        project_id = scope_from(context).project_id
        found = await self._store.name_and_version(project_id, request.prompt_id)
        if found is None:
            raise NotFound(f"Prompt {request.prompt_id} not found within authorized project")
        name, version = found
        return prompts_pb2.GetPromptVersionByIdResponse(name=name, version=version)

    async def _resolved(
        self, project_id: str, request: prompts_pb2.GetPromptRequest
    ) -> prompts_pb2.Prompt:
        validate_name(request.name)
        version = request.version if request.HasField("version") else None
        if version is not None and request.label:
            raise InvalidArgument("Cannot specify both version and label")
        reference = Reference(
            request.name, version, None if version else request.label or PRODUCTION
        )
        cache_key = (
            f"{request.name}\x00{version or ''}\x00{reference.label or ''}\x00{request.resolve}"
        )
        generation = await self._cache.generation(project_id)
        if generation is not None:
            cached = await self._cache.get(project_id, generation, cache_key)
            if cached is not None:
                return prompts_pb2.Prompt.FromString(cached)
        found = await self._store.find(project_id, reference)
        if found is None:
            raise NotFound(f"Prompt not found: {reference.describe()}")
        content: str | list[dict[str, Any]] = found.prompt
        graph = None
        if request.resolve and has_references(found):
            finder: Finder = functools.partial(self._store.find, project_id)
            content, graph = await Resolution(finder).resolve(found)
        prompt = to_proto(found, content, graph)
        if generation is not None:
            await self._cache.put(project_id, generation, cache_key, prompt.SerializeToString())
        return prompt

    async def _changed(self, project_id: str, name: str) -> None:
        """Invalidates every replica's cache before the change is answered, then announces it."""
        try:
            await self._cache.invalidate(project_id)
        except RedisError as exc:
            raise Unavailable(
                "The prompt change was saved, but caches could not be invalidated"
            ) from exc
        event = events_pb2.PromptChanged(project_id=project_id, prompt_name=name)
        event.changed_at.GetCurrentTime()
        await self._producer.send_and_wait(
            self._changes_topic, event.SerializeToString(), key=project_id.encode()
        )


async def _check_composition(draft: PromptVersion, finder: Finder) -> None:
    if has_references(draft):
        await Resolution(finder).resolve(draft)


def _writer(context: grpc.aio.ServicerContext) -> str:
    scope = scope_from(context)
    scope.require_project_access()
    return scope.project_id
