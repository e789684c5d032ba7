"""A bounded server-sent-events reader: bytes in, events out, memory capped.

httpx-sse buffers a line until its newline comes, however long: a server (or a proxy) that
never sends one grows the buffer without end. :class:`SSEReader` fails with
:class:`ProtocolError` as soon as a line, an event's data or the whole stream passes its cap.
Comment lines (``: keep-alive``, OpenRouter's ``: OPENROUTER PROCESSING``) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ensemble_nb.core.errors import ProtocolError

DEFAULT_MAX_LINE_BYTES = 1 << 20
"""Longest line, and longest event data, accepted (1 MiB: a chunk is usually under 2 KiB)."""
DEFAULT_MAX_STREAM_BYTES = 16 << 20
"""Largest response body accepted (16 MiB)."""

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEReader:
    """Incremental SSE parsing (the WHATWG rules for ``event`` and ``data``; ``id`` and
    ``retry`` are ignored) with per-line and per-stream byte limits. As in the standard, an
    event not closed by a blank line before the body ends is dropped."""

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES, who: str = "server") -> None:
        if max_line_bytes < 1 or max_stream_bytes < 1:
            raise ValueError("SSE limits must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_stream_bytes = max_stream_bytes
        self.who = who
        self.received = 0
        self._partial = bytearray()
        self._skip_lf = False  # a chunk ended in \r: a \n opening the next one ends the same line
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        self.received += len(chunk)
        if self.received > self.max_stream_bytes:
            raise ProtocolError(f"{self.who}: the response passed {self.max_stream_bytes} bytes; stopped "
                                "reading it (raise max_stream_bytes if this server is right)")
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        events: list[SSEEvent] = []
        for match in _EOL.finditer(chunk, start):
            self._check(len(self._partial) + match.start() - start)
            line = bytes(self._partial) + chunk[start:match.start()]
            self._partial.clear()
            start = match.end()
            if match.group() == b"\r" and start == len(chunk):
                self._skip_lf = True
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._check(len(self._partial) + len(chunk) - start)
        self._partial += chunk[start:]
        return events

    def _check(self, size: int) -> None:
        if size > self.max_line_bytes:
            raise ProtocolError(f"{self.who}: the event stream sent a line over {self.max_line_bytes} bytes; "
                                "stopped reading it (raise max_line_bytes if this server is right)")

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data, self._data_bytes = "", [], 0
            return event
        if raw.startswith(b":"):
            return None  # a comment: keep-alive, or a provider's "still working"
        line = raw.decode("utf-8", errors="replace")
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data_bytes += len(raw)
            self._check(self._data_bytes)
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
