"""Prompt versions to and from their gRPC messages."""

from datetime import datetime
from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.errors import InvalidArgument
from libs.common.gen.obs.prompts.v1 import prompts_pb2
from services.prompts.versions import PromptType, PromptVersion

TYPES = {
    prompts_pb2.PROMPT_TYPE_TEXT: PromptType.TEXT,
    prompts_pb2.PROMPT_TYPE_CHAT: PromptType.CHAT,
}
TYPE_TO_PROTO = {v: k for k, v in TYPES.items()}


def parse_json(raw: bytes, default: Any) -> Any:
    if not raw:
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument("Invalid JSON") from exc


def message_proto(message: dict[str, Any]) -> prompts_pb2.ChatMessage:
    return prompts_pb2.ChatMessage(
        role=str(message.get("role", "")),
        content=str(message.get("content", "")),
        type=str(message.get("type", "")),
        name=str(message.get("name", "")),
    )


def to_proto(
    version: PromptVersion, content: str | list[dict[str, Any]], graph: Any
) -> prompts_pb2.Prompt:
    prompt = prompts_pb2.Prompt(
        id=version.id,
        project_id=version.project_id,
        name=version.name,
        version=version.version,
        type=TYPE_TO_PROTO[version.type],
        config_json=orjson.dumps(version.config),
        labels=version.labels,
        tags=version.tags,
        commit_message=version.commit_message or "",
        created_at=timestamp(version.created_at),
        updated_at=timestamp(version.updated_at),
        resolution_graph_json=orjson.dumps(graph) if graph is not None else b"",
    )
    if isinstance(content, str):
        prompt.text = content
    else:
        prompt.messages.extend(message_proto(m) for m in content)
    return prompt


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
