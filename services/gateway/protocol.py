"""uvicorn's HTTP protocol with bounds on request headers: a deadline and a size.

uvicorn closes idle keep-alive connections, but any byte received cancels that timer, and it
limits neither how long a request's headers may take nor how large they may grow: a client
sending half its headers, then a byte now and then, holds a connection forever (slowloris), and
one sending an endless header fills memory. Here each connection must complete its request
headers within `header_seconds` of connecting, or of its previous response, else it is closed;
and headers larger than MAX_HEADER_BYTES are answered 431 and the connection closed. Bodies have
their own limits (middleware.BodyLimit)."""

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.errors import ERROR_NAMES

# Far above what any SDK sends (a few hundred bytes), and what Node and nginx allow by default.
MAX_HEADER_BYTES = 64 * 1024


class _BoundedHeaderProtocol(HttpToolsProtocol):
    header_seconds = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    # Bytes received while a request's headers were incomplete (pipelined ones included).
    _in_headers = False
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted only when the headers are still incomplete after this chunk, so a body that
        # arrives in the same read as its headers does not count.
        if self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse_large_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request waiting in the queue already has its headers.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_timer = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_large_headers(self) -> None:
        self._disarm_header_deadline()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request: no answer amid the one being written
            return
        body = orjson.dumps(
            {
                "message": f"Request headers exceed {MAX_HEADER_BYTES} bytes",
                "error": ERROR_NAMES[431],
            }
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


def bounded_header_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), with this header deadline."""

    class BoundedHeaderProtocol(_BoundedHeaderProtocol):
        header_seconds = seconds

    return BoundedHeaderProtocol
