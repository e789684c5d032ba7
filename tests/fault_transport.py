"""Fault injection on top of :class:`tests.openai_mock.MockOpenAIServer`.

:class:`FaultServer` is a MockTransport handler. Each request takes the next :class:`Fault`
from its schedule (the last one repeats; ``None`` answers healthily through the mock server),
so "429, then fine" and "500 every time" are both one line. Every body it returns is counted
by the mock server, so ``server.open_streams == 0`` proves each response was closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.openai_mock import CountingStream, MockOpenAIServer, tokens_from_text

ANSWER = "Paris is the capital and largest city of France."


@dataclass(frozen=True)
class Fault:
    """What one request gets.

    ``status``: answer this HTTP status with ``body`` and ``headers``. ``refuse``: fail to
    connect. Otherwise a 200 stream: the first ``tokens`` token chunks of a healthy answer (all
    when None), then ``then``: "reset" (connection reset), "stall" (silence until closed),
    "timeout" (httpx's read timeout), or raw bytes to send instead of the rest. ``inject`` puts
    raw bytes after those ``tokens`` chunks and goes on with the rest. ``first_delay``
    holds the first byte back; ``content_type`` and ``ignore_max_tokens`` bend the headers and
    the length; ``no_logprobs`` answers like a server that drops the logprobs fields.
    """

    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    refuse: bool = False
    tokens: int | None = None
    then: str | bytes | None = None
    inject: bytes | None = None
    first_delay: float = 0.0
    content_type: str = "text/event-stream"
    ignore_max_tokens: bool = False
    no_logprobs: bool = False
    echo_headers: bool = False


class FaultStream(CountingStream):
    """A counted body that can hold its first byte back and end in a fault."""

    def __init__(self, server: MockOpenAIServer, pieces: Sequence[bytes], *, first_delay: float,
                 then: str | None) -> None:
        super().__init__(server, pieces, 0.0)
        self._first_delay = first_delay
        self._then = then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.sleep(self._first_delay)
        for piece in self._pieces:
            await asyncio.sleep(0)
            yield piece
        if self._then == "reset":
            raise httpx.ReadError("[Errno 104] Connection reset by peer")
        if self._then == "timeout":
            raise httpx.ReadTimeout("timed out")
        if self._then == "stall":
            await asyncio.sleep(3600)  # ended only by the client closing the response


class FaultServer:
    """A MockTransport handler answering each request with the next scheduled fault."""

    def __init__(self, schedule: Sequence[Fault | None], *, answer: str = ANSWER, **mock: Any) -> None:
        self.mock = MockOpenAIServer(tokens_from_text(answer), **mock)
        self.schedule = list(schedule) or [None]
        self.requests: list[httpx.Request] = []

    @property
    def open_streams(self) -> int:
        return self.mock.open_streams

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        fault = self.schedule[min(len(self.requests), len(self.schedule) - 1)]
        self.requests.append(request)
        if fault is None:
            return await self.mock(request)
        if fault.refuse:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if fault.status is not None:
            body = fault.body or json.dumps({"error": {"message": f"fault {fault.status}"}}).encode()
            if fault.echo_headers:  # as some proxies do: the request headers back in the error body
                body = json.dumps({"error": {"message": "denied", "request_headers": dict(request.headers)}}).encode()
            stream = FaultStream(self.mock, [body], first_delay=0.0, then=None)
            return httpx.Response(fault.status, headers={"content-type": "application/json", **fault.headers},
                                  stream=stream)
        body_obj: dict[str, Any] = json.loads(request.content)
        if fault.ignore_max_tokens:
            body_obj["max_tokens"] = 1 << 20
        if fault.no_logprobs:
            body_obj["logprobs"] = False
        pieces = self.mock._events(body_obj)
        then: str | None = None
        if fault.inject is not None:
            cut = 1 + (fault.tokens or 0)  # after the role chunk and that many token chunks
            pieces = [*pieces[:cut], fault.inject, *pieces[cut:]]
        elif fault.tokens is not None:
            pieces = pieces[: fault.tokens + 1]
        if isinstance(fault.then, bytes):
            pieces = [*pieces, fault.then]
        else:
            then = fault.then
        stream = FaultStream(self.mock, pieces, first_delay=fault.first_delay, then=then)
        return httpx.Response(200, headers={"content-type": fault.content_type, **fault.headers}, stream=stream)


def long_answer(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))
