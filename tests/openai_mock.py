"""A fake OpenAI chat-completions server for httpx's ``MockTransport``.

It streams the real wire format: ``data: {chat.completion.chunk}\\n\\n`` events (a role chunk,
one chunk per token group with ``choices[0].logprobs.content[]``, a finish chunk, a usage chunk
with empty ``choices``, then ``data: [DONE]``). It honours ``max_tokens``, ``logprobs``,
``top_logprobs``, ``stream_options.include_usage``, ``temperature`` (0 is greedy, otherwise a
seeded sample) and records every request. Every response body is a :class:`CountingStream`,
so a test can check that the client closed each one (``server.open_streams == 0``).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import math
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class MockToken:
    """One token the server generates and the distribution it came from.

    ``probs`` maps candidate tokens (the chosen one included) to probabilities; the missing
    mass stands for the unseen vocabulary. ``data`` gives the raw bytes of a byte-fallback token
    that holds only part of a UTF-8 character.
    """

    text: str
    probs: Mapping[str, float] = field(default_factory=dict)
    data: bytes | None = None

    def prob(self) -> float:
        return self.probs.get(self.text, 1.0 if not self.probs else 1e-9)

    def raw(self) -> bytes:
        return self.data if self.data is not None else self.text.encode()

    def wire_token(self) -> str:
        if self.data is not None:  # how OpenAI spells a partial character
            return "bytes:" + "".join(f"\\x{b:02x}" for b in self.data)
        return self.text


def tokens_from_text(text: str, confidence: float = 0.8, spread: int = 4) -> list[MockToken]:
    """Word tokens, each chosen with ``confidence`` and ``spread`` rivals sharing 90 % of the rest."""
    words = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
    rest = 0.9 * (1.0 - confidence) / spread if spread else 0.0
    return [MockToken(w, {w: confidence, **{f"{w}~{j}": rest for j in range(spread)}}) for w in words]


class MockServerBase:
    """What every vendor's fake server records: requests, their JSON bodies, and how many
    response streams it opened and saw closed (a harness asserts none is left open)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []
        self.opened = 0
        self.closed = 0

    @property
    def open_streams(self) -> int:
        return self.opened - self.closed

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)  # type: ignore[arg-type]  # subclasses are the handler

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())


class CountingStream(httpx.AsyncByteStream):
    """A response body that yields its pieces (with an optional delay) and counts closes."""

    def __init__(self, server: MockServerBase, pieces: Sequence[bytes], delay: float) -> None:
        self._server = server
        self._pieces = pieces
        self._delay = delay
        self._closed = False
        server.opened += 1

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            # Always yield to the loop, as a socket read would; the delay makes cancellation
            # land mid-stream.
            await asyncio.sleep(self._delay)
            yield piece

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.closed += 1


class MockOpenAIServer(MockServerBase):
    """Call it with an ``httpx.Request`` (it is a MockTransport handler).

    ``status``/``error_body``/``headers`` make it answer an error instead; ``raw_events`` replaces
    the generated body with given bytes; ``keepalive`` interleaves ``: keep-alive`` comments;
    ``ignore_logprobs`` answers like a server that silently drops the logprobs fields;
    ``tokens_per_chunk`` groups several tokens in one chunk; ``split`` re-cuts the body into pieces
    of that many bytes (as TCP may); ``send_usage`` and ``send_done`` drop those parts.
    """

    def __init__(
        self,
        script: Sequence[MockToken],
        *,
        model: str = "mock-model",
        status: int = 200,
        error_body: Any = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/event-stream; charset=utf-8",
        raw_events: Sequence[bytes] | None = None,
        keepalive: bool = False,
        ignore_logprobs: bool = False,
        tokens_per_chunk: int = 1,
        split: int | None = None,
        send_usage: bool = True,
        send_done: bool = True,
        delay: float = 0.0,
    ) -> None:
        self.script = list(script)
        self.model = model
        self.status = status
        self.error_body = error_body
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.raw_events = raw_events
        self.keepalive = keepalive
        self.ignore_logprobs = ignore_logprobs
        self.tokens_per_chunk = tokens_per_chunk
        self.split = split
        self.send_usage = send_usage
        self.send_done = send_done
        self.delay = delay
        super().__init__()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body: dict[str, Any] = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            payload = self.error_body if self.error_body is not None else {
                "error": {"message": f"mock error {self.status}", "type": "invalid_request_error",
                          "param": None, "code": None}}
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            return self._response(self.status, "application/json", [data])
        pieces = list(self.raw_events) if self.raw_events is not None else self._events(body)
        if self.split:
            joined = b"".join(pieces)
            pieces = [joined[i : i + self.split] for i in range(0, len(joined), self.split)]
        return self._response(200, self.content_type, pieces)

    def _response(self, status: int, content_type: str, pieces: Sequence[bytes]) -> httpx.Response:
        headers = {"content-type": content_type, **self.headers}
        return httpx.Response(status, headers=headers, stream=CountingStream(self, pieces, self.delay))

    def _events(self, body: Mapping[str, Any]) -> list[bytes]:
        usage_on = self.send_usage and bool((body.get("stream_options") or {}).get("include_usage"))
        want_lp = bool(body.get("logprobs")) and not self.ignore_logprobs
        top_n = int(body.get("top_logprobs") or 0)
        max_tokens = int(body.get("max_tokens") or 1 << 30)
        temperature = float(body.get("temperature", 1.0))
        rng = random.Random(body.get("seed"))
        chosen = [self._choose(t, temperature, rng) for t in self.script[:max_tokens]]
        finish = "length" if len(self.script) > max_tokens else "stop"

        def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
            obj: dict[str, Any] = {"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                                   "created": 1_700_000_000, "model": self.model,
                                   "system_fingerprint": "fp_mock", "choices": choices}
            if usage_on:
                obj["usage"] = usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        def choice(delta: dict[str, Any], logprobs: Any = None,
                   finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}

        events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
        utf8 = codecs.getincrementaldecoder("utf-8")()
        for i in range(0, len(chosen), self.tokens_per_chunk):
            group = chosen[i : i + self.tokens_per_chunk]
            content = "".join(utf8.decode(t.raw()) for t in group)
            logprobs = {"content": [_entry(t, top_n) for t in group], "refusal": None} if want_lp else None
            events.append(chunk([choice({"content": content}, logprobs)]))
        events.append(chunk([choice({}, None, finish)]))
        if usage_on:
            prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            events.append(chunk([], {"prompt_tokens": prompt, "completion_tokens": len(chosen),
                                     "total_tokens": prompt + len(chosen)}))
        if self.send_done:
            events.append(b"data: [DONE]\n\n")
        if self.keepalive:
            events = [e for ev in events for e in (b": keep-alive\n\n", ev)]
        return events

    @staticmethod
    def _choose(token: MockToken, temperature: float, rng: random.Random) -> MockToken:
        if temperature == 0 or not token.probs:
            return token
        texts = list(token.probs)
        pick = rng.choices(texts, weights=[token.probs[t] for t in texts])[0]
        return token if pick == token.text else MockToken(pick, token.probs)


def _entry(token: MockToken, top_n: int) -> dict[str, Any]:
    ranked = sorted(token.probs.items(), key=lambda kv: -kv[1])[:top_n]
    top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in ranked]
    if not token.probs and top_n:
        top = [{"token": token.wire_token(), "logprob": 0.0, "bytes": list(token.raw())}]
    return {"token": token.wire_token(), "logprob": math.log(token.prob()), "bytes": list(token.raw()),
            "top_logprobs": top}
