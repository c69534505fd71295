"""Server-side compilation (the SDKs compile client-side; internal services call CompilePrompt)."""

from typing import Any

from services.prompts.versions import fill_variables


def compile_chat(
    messages: list[dict[str, Any]],
    variables: dict[str, str],
    placeholders: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Fills variables in every message and splices each placeholder's messages in its place;
    a placeholder without a value stays, as the SDKs leave it."""
    compiled: list[dict[str, Any]] = []
    for message in messages:
        if message.get("type") == "placeholder":
            if message.get("name") in placeholders:
                compiled.extend(placeholders[message["name"]])
            else:
                compiled.append(message)
            continue
        compiled.append({**message, "content": fill_variables(message["content"], variables)})
    return compiled


def compile_text(text: str, variables: dict[str, str]) -> str:
    return fill_variables(text, variables)
