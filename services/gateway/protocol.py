"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn closes idle keep-alive connections, but any byte received cancels that timer, and it has no
limit on how long a request's headers may take: a client sending half its headers, then a byte now
and then, holds a connection forever (slowloris). Here each connection must complete its request
headers within `header_seconds` of connecting, or of its previous response; otherwise it is
closed. Bodies have their own deadline (middleware.BodyLimit)."""

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    header_seconds = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
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


def header_deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), with this header deadline."""

    class HeaderDeadlineProtocol(_HeaderDeadlineProtocol):
        header_seconds = seconds

    return HeaderDeadlineProtocol
