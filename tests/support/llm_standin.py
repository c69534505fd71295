"""A small OpenAI-compatible chat-completions server for tests and `make bench`: a real HTTP
server on 127.0.0.1 (uvicorn in a thread of its own), deterministic replies, injectable latency,
scripted failures (429 with Retry-After, 5xx, replies that are not the asked JSON), and a record
of every request it saw (the rendered prompts).

    with LlmStandIn(latency=0.05) as llm:
        llm.base_url          # http://127.0.0.1:<port>/v1
        llm.fail_next(429, times=1, retry_after=1)
        llm.requests          # bodies as sent

`python -m tests.support.llm_standin --port 8089 --latency 0.05` serves until interrupted."""

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    body: bytes


class LlmStandIn:
    def __init__(self, *, latency: float = 0.0, score: float = 0.9, port: int = 0) -> None:
        self.latency = latency
        self.score = score
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        # time.monotonic() of each request's arrival (throughput figures).
        self.arrivals: list[float] = []
        self._failures: deque[_Failure] = deque()
        self._garbage = 0
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None,
                  message: str | None = None) -> None:  # fmt: skip
        """The next `times` requests are answered `status` in OpenAI's error shape."""
        text = message or f"stand-in error {status}"
        body = orjson.dumps({"error": {"message": text, "type": "stand_in", "code": status}})
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, body) for _ in range(times))

    def reply_garbage(self, times: int = 1) -> None:
        """The next `times` replies carry text that is not the asked JSON object."""
        with self._lock:
            self._garbage += times

    def prompts(self) -> list[str]:
        """The text of every request's messages, one string per request."""
        with self._lock:
            return ["\n".join(m["content"] for m in r["messages"]) for r in self.requests]

    def __enter__(self) -> "LlmStandIn":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the LLM stand-in did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    async def _handle(self, request: Request) -> Response:
        if not request.url.path.endswith("/chat/completions"):
            return Response(b'{"error":{"message":"not found"}}', status_code=404)
        body = orjson.loads(await request.body())
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
            self.authorizations.append(request.headers.get("authorization", ""))
            failure = self._failures.popleft() if self._failures else None
            garbage = self._garbage > 0
            self._garbage -= garbage
        if self.latency:
            await asyncio.sleep(self.latency)
        if failure is not None:
            headers = (
                {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
            )
            return Response(failure.body, status_code=failure.status, headers=headers,
                            media_type="application/json")  # fmt: skip
        content = "this is not JSON" if garbage else orjson.dumps(self._verdict(body)).decode()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        reply = {
            "id": f"chatcmpl-standin-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stand-in"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],  # fmt: skip
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },  # fmt: skip
        }
        return Response(orjson.dumps(reply), media_type="application/json")

    def _verdict(self, body: dict[str, Any]) -> dict[str, Any]:
        """A score of the kind the request's JSON schema asks for."""
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        score_schema = schema.get("properties", {}).get("score", {})
        score: Any = self.score
        if score_schema.get("type") == "boolean":
            score = True
        elif "enum" in score_schema:
            score = score_schema["enum"][0]
        elif score_schema.get("type") == "array":
            score = score_schema.get("items", {}).get("enum", [])[:1]
        return {"score": score, "reasoning": f"stand-in verdict {len(self.requests)}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with LlmStandIn(latency=args.latency, port=args.port) as llm:
        print(llm.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
