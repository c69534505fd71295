"""Chat messages of the prompts contract (`obs.prompts.v1.ChatMessage`) as the public API's JSON
objects: the prompts service compiles with them and the gateway answers with them."""

from typing import Any

from libs.common.gen.obs.prompts.v1 import prompts_pb2


def chat_message_dict(message: prompts_pb2.ChatMessage) -> dict[str, Any]:
    if message.type == "placeholder":
        return {"type": "placeholder", "name": message.name}
    result: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.type:
        result["type"] = message.type
    return result
