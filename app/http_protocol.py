"""uvicorn's httptools protocol with the two bounds uvicorn lacks (DESIGN §5, "headers are bounded"): the size of
a request's line and headers, and the time a client may take to send them.

uvicorn's `timeout_keep_alive` covers only the idle time between requests and is cancelled by the first byte of
the next one, so a client trickling a header byte by byte (slowloris), or one that connects and sends nothing,
holds a connection for ever; and httptools accumulates a header of any length. ASGI middleware cannot help: it
runs once the headers are complete. h11 has `h11_max_incomplete_event_size`, but it is pure Python and slower
on the avisos bulk path."""

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_END_OF_HEAD = b"\r\n\r\n"


@functools.cache
def _bounds() -> tuple[int, float]:
    """(max_header_bytes, header_timeout): each uvicorn worker is a fresh interpreter that unpickles this class by
    name, so it reads the bounds from the same environment `sia serve` read its settings from."""
    from app.settings import Settings

    settings = Settings()
    return settings.max_header_bytes, settings.header_timeout_seconds


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's `http=`: 431 for a head above SIA_MAX_HEADER_BYTES, and the connection closed (after a 408)
    when a head takes longer than SIA_HEADER_TIMEOUT_SECONDS."""

    _in_head = True
    _head_bytes = 0
    _head_deadline: asyncio.TimerHandle | None = None
    _head_too_large = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_header_bytes, self._header_timeout = _bounds()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._head_deadline is None:
                self._arm_head_deadline()
            self._head_bytes += len(data)
            # Coarse but early: a chunk can carry the end of the head and body bytes, and then the exact
            # count in on_headers_complete decides.
            if self._head_bytes > self._max_header_bytes and _END_OF_HEAD not in data:
                self._refuse_head(431, "Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._max_header_bytes:
            self._head_too_large = True
            # Raising stops httptools; uvicorn turns a parser error into send_400_response, below.
            raise ValueError("request head above the limit")
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request on this connection is a new head; until its first byte, keep-alive times it.
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head(431, "Request Header Fields Too Large")
        else:
            super().send_400_response(msg)

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._in_head and not self.transport.is_closing():
            self._refuse_head(408, "Request Timeout")

    def _refuse_head(self, status: int, reason: str) -> None:
        self._disarm_head_deadline()
        if self.transport.is_closing():
            return
        body = reason.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n%s"
            % (status, reason.encode(), len(body), body)
        )
        self.transport.close()
