"""Prompt management: `/api/public/v2/prompts[...]`, served by the prompts service.

Names may contain `/` (folders); the SDKs send them URL-encoded as one path segment (`%2F`), so
the name is taken from the raw path and decoded here, after routing.

Fetches by name are answered from the gateway's own cache when they can be: it is keyed by a
per-project generation token (libs/common/gencache.py) that every write through any gateway
replaces before it is answered, so no replica serves a version older than an answered change.
Writes made elsewhere (other services over gRPC) replace it when their change event arrives."""

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.chat_messages import chat_message_dict
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gen.obs.prompts.v1 import prompts_pb2
from libs.common.gencache import GenerationCache
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    backend_options,
    endpoint,
    page_meta,
    page_params,
    query_int,
    query_time,
    read_json,
    state_of,
)
from services.gateway.errors import ApiError, JsonResponse
from services.gateway.state import GatewayState

PREFIX = "/api/public/v2/prompts/"
_TYPES = {"text": prompts_pb2.PROMPT_TYPE_TEXT, "chat": prompts_pb2.PROMPT_TYPE_CHAT}
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}


async def create_prompt(request: Request, scope: ProjectScope) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid request data: expected a JSON object")
    state = state_of(request)
    reply = await state.backends.prompts.CreatePrompt(
        create_request(body), **backend_options(request, scope)
    )
    await _invalidate(state, scope.project_id)
    return JsonResponse(prompt_json(reply.prompt), status_code=201)


async def list_prompts(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=10)
    params = request.query_params
    message = prompts_pb2.ListPromptsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        name=params.get("name", ""),
        label=params.get("label", ""),
        tag=params.get("tag", ""),
    )
    for param, field in (("fromUpdatedAt", "from_updated_at"), ("toUpdatedAt", "to_updated_at")):
        stamp = query_time(request, param)
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)
    reply = await state_of(request).backends.prompts.ListPrompts(
        message, **backend_options(request, scope)
    )
    items = [
        {
            "name": p.name,
            "type": _TYPE_NAMES[p.type],
            "versions": list(p.versions),
            "labels": list(p.labels),
            "tags": list(p.tags),
            "lastUpdatedAt": _iso(p.last_updated_at),
            "lastConfig": orjson.loads(p.last_config_json or b"{}"),
        }
        for p in reply.prompts
    ]
    return JsonResponse({"data": items, "meta": page_meta(reply.meta)})


async def prompt_by_name(request: Request, scope: ProjectScope) -> Response:
    segments = _raw_segments(request)
    state = state_of(request)
    options = backend_options(request, scope)
    if request.method == "PATCH":
        if len(segments) < 3 or segments[-2] != "versions":
            raise ApiError(404, "Route not found")
        version = _int_segment(segments[-1])
        body = await read_json(request)
        labels = body.get("newLabels") if isinstance(body, dict) else None
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise ApiError(400, "Invalid request data: newLabels must be a list of strings")
        reply = await state.backends.prompts.UpdatePromptLabels(
            prompts_pb2.UpdatePromptLabelsRequest(
                name=_name(segments[:-2]), version=version, new_labels=labels
            ),
            **options,
        )
        await _invalidate(state, scope.project_id)
        return JsonResponse(prompt_json(reply.prompt))
    name = _name(segments)
    version = query_int(request, "version")
    label = request.query_params.get("label", "")
    if request.method == "DELETE":
        await state.backends.prompts.DeletePrompt(
            prompts_pb2.DeletePromptRequest(name=name, version=version, label=label),
            **options,
        )
        await _invalidate(state, scope.project_id)
        return Response(status_code=204)
    if version is not None and label:
        raise ApiError(400, "Invalid request data: specify either version or label, not both")
    resolve = request.query_params.get("resolve", "true").lower() != "false"
    cache_key = f"{name}\x00{version or ''}\x00{label}\x00{resolve}"
    generation = await state.prompt_cache.generation(scope.project_id)
    content = None
    if generation is not None:
        content = await state.prompt_cache.get(scope.project_id, generation, cache_key)
    if content is None:
        reply = await state.backends.prompts.GetPrompt(
            prompts_pb2.GetPromptRequest(name=name, version=version, label=label, resolve=resolve),
            **options,
        )
        content = orjson.dumps(prompt_json(reply.prompt))
        if generation is not None:
            await state.prompt_cache.put(scope.project_id, generation, cache_key, content)
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(content, media_type="application/json", headers={"ETag": etag})


class PromptChangeListener:
    """Replaces a project's generation when its prompts changed without passing through a
    gateway (every gateway replica does it; an extra replacement only costs a cache miss)."""

    def __init__(self, cache: GenerationCache) -> None:
        self._cache = cache

    async def handle(self, changes: Sequence[events_pb2.PromptChanged]) -> None:
        for project_id in {change.project_id for change in changes}:
            await self._cache.invalidate(project_id)


async def _invalidate(state: GatewayState, project_id: str) -> None:
    """Before a write is answered, every replica's cached answers for the project must go."""
    try:
        await state.prompt_cache.invalidate(project_id)
    except RedisError as exc:
        raise ApiError(
            503, "The change was saved, but prompt caches could not be invalidated"
        ) from exc


def create_request(body: dict[str, Any]) -> prompts_pb2.CreatePromptRequest:
    name = body.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "Invalid request data: name must be a string")
    kind = "text" if body.get("type") is None else body["type"]
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ApiError(400, "Invalid request data: type must be 'text' or 'chat'")
    labels = body.get("labels") or []
    tags = body.get("tags")
    if not _strings(labels) or (tags is not None and not _strings(tags)):
        raise ApiError(400, "Invalid request data: labels and tags must be lists of strings")
    commit = body.get("commitMessage")
    if commit is not None and not isinstance(commit, str):
        raise ApiError(400, "Invalid request data: commitMessage must be a string")
    message = prompts_pb2.CreatePromptRequest(
        name=name,
        type=_TYPES[kind],
        config_json=orjson.dumps(body.get("config") if body.get("config") is not None else {}),
        labels=labels,
        commit_message=commit or "",
    )
    if tags is not None:
        message.tags.tags.extend(tags)
    prompt = body.get("prompt")
    if kind == "text":
        if not isinstance(prompt, str):
            raise ApiError(400, "Invalid request data: a text prompt must be a string")
        message.text = prompt
    else:
        if not isinstance(prompt, list) or not all(isinstance(m, dict) for m in prompt):
            raise ApiError(400, "Invalid request data: a chat prompt must be a list of messages")
        message.messages.extend(_chat_message(m) for m in prompt)
    return message


def prompt_json(prompt: prompts_pb2.Prompt) -> dict[str, Any]:
    content: str | list[dict[str, Any]]
    if prompt.type == prompts_pb2.PROMPT_TYPE_CHAT:
        content = [chat_message_dict(m) for m in prompt.messages]
    else:
        content = prompt.text
    return {
        "id": prompt.id,
        "projectId": prompt.project_id,
        "name": prompt.name,
        "version": prompt.version,
        "type": _TYPE_NAMES[prompt.type],
        "prompt": content,
        "config": orjson.loads(prompt.config_json or b"{}"),
        "labels": list(prompt.labels),
        "tags": list(prompt.tags),
        "commitMessage": prompt.commit_message or None,
        "createdAt": _iso(prompt.created_at),
        "updatedAt": _iso(prompt.updated_at),
        "createdBy": "API",
        "isActive": "production" in prompt.labels,
        "resolutionGraph": (
            orjson.loads(prompt.resolution_graph_json) if prompt.resolution_graph_json else None
        ),
    }


def _chat_message(message: dict[str, Any]) -> prompts_pb2.ChatMessage:
    if message.get("type") == "placeholder":
        name = message.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "Invalid request data: a placeholder needs a string name")
        return prompts_pb2.ChatMessage(type="placeholder", name=name)
    role, content, kind = message.get("role"), message.get("content"), message.get("type") or ""
    if not isinstance(role, str) or not isinstance(content, str) or not isinstance(kind, str):
        raise ApiError(400, "Invalid request data: a chat message needs a string role and content")
    return prompts_pb2.ChatMessage(role=role, content=content, type=kind)


def _raw_segments(request: Request) -> list[str]:
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").removeprefix(PREFIX).split("/")


def _name(raw_segments: list[str]) -> str:
    name = unquote("/".join(raw_segments))
    if not name:
        raise ApiError(404, "Route not found")
    return name


def _int_segment(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) >= 2**31:  # an int32 field
        raise ApiError(400, "Invalid request data: version must be a positive 32-bit integer")
    return int(raw)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime().isoformat(timespec="milliseconds") + "Z"


ROUTES = [
    Route("/api/public/v2/prompts", endpoint(create_prompt), methods=["POST"]),
    Route("/api/public/v2/prompts", endpoint(list_prompts), methods=["GET"]),
    Route(
        "/api/public/v2/prompts/{rest:path}",
        endpoint(prompt_by_name),
        methods=["GET", "PATCH", "DELETE"],
    ),
]
