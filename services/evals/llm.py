"""The judge's LLM call: OpenAI's chat completions over HTTP/1.1, to any OpenAI-compatible base
URL. The reply is asked for as a JSON object `{score, reasoning}` (`response_format` with a JSON
schema) and validated by the caller. Errors say whether a retry may help (429, 5xx, timeouts,
refused connections) and carry the provider's own message, never the request's headers (the
secret key travels in them).

The client is aiohttp (a dependency of aioboto3, already in the image): one session per LLM
connection, its keep-alive pool as large as the calls allowed in flight. httpx was measured at
1.5-2.5 ms of CPU per call at 32 in flight (its pool scans every connection for every request),
aiohttp at ~0.15 ms: at 100 judge calls/s, a fifth of a core against a sixtieth."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
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


# Idle connections are closed before servers commonly close them (5 s: uvicorn, Node), so a call
# seldom goes out on a connection the server is closing.
KEEPALIVE_SECONDS = 4.0


def session(connections: int) -> aiohttp.ClientSession:
    """A keep-alive pool of at most `connections` HTTP/1.1 connections, for one LLM connection's
    calls (no proxies or .netrc from the environment: the base URL is called as given)."""
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=KEEPALIVE_SECONDS)
    return aiohttp.ClientSession(connector=connector)


async def chat(
    client: aiohttp.ClientSession,
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
        async with client.post(url, data=orjson.dumps(body), headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout),
                               allow_redirects=False) as response:  # fmt: skip
            status, content = response.status, await response.read()
            wait = retry_after(response.headers.get("retry-after"))
    except TimeoutError as exc:
        raise LlmError(f"the LLM call timed out after {timeout:g} s", retryable=True) from exc
    except aiohttp.ClientError as exc:
        raise LlmError(f"the LLM endpoint cannot be reached: {type(exc).__name__}: {exc}",
                       retryable=True) from exc  # fmt: skip
    ended_at = datetime.now(UTC)
    if status != 200:
        raise _http_error(status, content, wait)
    try:
        reply = orjson.loads(content)
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


def _http_error(status: int, content: bytes, wait: float | None) -> LlmError:
    try:
        error = orjson.loads(content).get("error")
        detail = error.get("message") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        detail = content[:200].decode(errors="replace")
    message = f"the LLM endpoint answered {status}: {detail}"
    retryable = status in (408, 409, 429) or status >= 500
    return LlmError(message, retryable=retryable, retry_after=wait)


def retry_after(raw: str | None) -> float | None:
    """A Retry-After header's value in seconds, given in seconds or as an HTTP date."""
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
