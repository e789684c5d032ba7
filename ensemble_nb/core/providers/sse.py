"""Memory limits for server-sent-event streams read by httpx-sse.

httpx-sse parses the events (comments such as ``: keep-alive`` or OpenRouter's
``: OPENROUTER PROCESSING`` are skipped there), but it buffers a line until its newline comes,
however long: a server or proxy that never sends one would grow that buffer without end.
:func:`bound` wraps a response's byte stream so that a line over ``max_line_bytes`` or a body
over ``max_stream_bytes`` ends the stream with :class:`ProtocolError` before httpx-sse sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ensemble_nb.core.errors import ProtocolError

DEFAULT_MAX_LINE_BYTES = 1 << 20
"""Longest line accepted (1 MiB: a chunk is usually under 2 KiB)."""
DEFAULT_MAX_STREAM_BYTES = 16 << 20
"""Largest response body accepted (16 MiB)."""


class BoundedByteStream(httpx.AsyncByteStream):
    """Passes bytes through, counting the body and the event being received.

    An event ends at a blank line; its size bounds every line in it, and it is what httpx-sse
    buffers (data lines are joined until the blank line), so one cap covers both.
    """

    def __init__(self, inner: httpx.AsyncByteStream, *, max_line_bytes: int, max_stream_bytes: int,
                 who: str, check_lines: bool) -> None:
        if max_line_bytes < 1 or max_stream_bytes < 1:
            raise ValueError("SSE limits must be positive")
        self._inner = inner
        self.max_line_bytes = max_line_bytes
        self.max_stream_bytes = max_stream_bytes
        self.who = who
        self.check_lines = check_lines
        self.received = 0
        self._event = 0  # bytes of the event received so far
        self._after_eol = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self.received += len(chunk)
            if self.received > self.max_stream_bytes:
                raise ProtocolError(f"{self.who}: the response passed {self.max_stream_bytes} bytes; stopped "
                                    "reading it (raise max_stream_bytes if this server is right)")
            if self.check_lines:
                self._count(chunk)
            yield chunk

    def _count(self, chunk: bytes) -> None:
        text = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        joined = (b"\n" if self._after_eol else b"") + text
        parts = joined.split(b"\n\n")
        if len(parts) == 1:
            self._event += len(text)
        else:
            whole = max((len(p) for p in parts[1:-1]), default=0)  # events wholly inside this chunk
            if self._event + len(parts[0]) > self.max_line_bytes or whole > self.max_line_bytes:
                self._fail()
            self._event = len(parts[-1])
        self._after_eol = text.endswith(b"\n")
        if self._event > self.max_line_bytes:
            self._fail()

    def _fail(self) -> None:
        raise ProtocolError(f"{self.who}: the event stream sent a line or event over {self.max_line_bytes} bytes; "
                            "stopped reading it (raise max_line_bytes if this server is right)")

    async def aclose(self) -> None:
        await self._inner.aclose()


def bound(response: httpx.Response, *, who: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
          max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES) -> None:
    """Limit what reading ``response`` may buffer. Call before its body is read."""
    # A compressed body's bytes say nothing about line lengths: only the total is capped then.
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    response.stream = BoundedByteStream(stream, max_line_bytes=max_line_bytes, max_stream_bytes=max_stream_bytes,
                                        who=who, check_lines=encoding in ("", "identity"))
