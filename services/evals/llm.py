"""The judge's LLM call: OpenAI's chat completions over httpx, to any OpenAI-compatible base URL.
The reply is asked for as a JSON object `{score, reasoning}` (`response_format` with a JSON
schema) and validated by the caller. Errors say whether a retry may help (429, 5xx, timeouts,
refused connections) and carry the provider's own message, never the request's headers (the
secret key travels in them)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Provider messages are shown through the API: long ones are cut.
MAX_MESSAGE = 1000


class LlmError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message[:MAX_MESSAGE])
        self.message = message[:MAX_MESSAGE]
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str | None
    secret_key: str
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never the key, even in a traceback's locals
        return f"Endpoint(base_url={self.base_url!r})"


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    started_at: datetime
    ended_at: datetime


async def chat(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    model: str,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    timeout: float,
) -> Completion:
    url = (endpoint.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
    headers = {
        **endpoint.extra_headers,
        "Authorization": f"Bearer {endpoint.secret_key}",
        "Content-Type": "application/json",
    }
    body = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "score", "strict": True, "schema": schema},
        },
    }
    started_at = datetime.now(UTC)
    try:
        response = await client.post(url, content=orjson.dumps(body), headers=headers,
                                     timeout=timeout)  # fmt: skip
    except httpx.TimeoutException as exc:
        raise LlmError(f"the LLM call timed out after {timeout:g} s", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise LlmError(f"the LLM endpoint cannot be reached: {type(exc).__name__}: {exc}",
                       retryable=True) from exc  # fmt: skip
    ended_at = datetime.now(UTC)
    if response.status_code != 200:
        raise _http_error(response)
    try:
        reply = orjson.loads(response.content)
        message = reply["choices"][0]["message"]
        content = message.get("content")
        if content is None and message.get("tool_calls"):
            content = message["tool_calls"][0]["function"]["arguments"]
        if not isinstance(content, str):
            raise TypeError("no text content")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise LlmError(f"the LLM reply is not a chat completion: {exc}", retryable=False) from exc
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    return Completion(
        content=content,
        model=reply.get("model") if isinstance(reply.get("model"), str) else model,
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
        started_at=started_at,
        ended_at=ended_at,
    )


def _http_error(response: httpx.Response) -> LlmError:
    status = response.status_code
    try:
        error = orjson.loads(response.content).get("error")
        detail = error.get("message") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.text[:200]
    message = f"the LLM endpoint answered {status}: {detail}"
    retryable = status in (408, 409, 429) or status >= 500
    return LlmError(message, retryable=retryable, retry_after=retry_after(response))


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds or as an HTTP date."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
