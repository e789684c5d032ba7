"""A fake Anthropic Messages API for httpx's ``MockTransport``, streaming the real wire format.

``event: message_start`` (usage.input_tokens), a ``thinking`` block with ``thinking_delta`` and
``signature_delta`` when ``thinking`` is asked for, a ``text`` block of ``text_delta`` events,
``content_block_stop``, ``message_delta`` (stop_reason, cumulative usage.output_tokens) and
``message_stop``; ``ping`` events in between. Errors use Anthropic's
``{"type": "error", "error": {"type", "message"}}`` body, over HTTP or as an ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tests.openai_mock import CountingStream, MockServerBase, MockToken, tokens_from_text

__all__ = ["MockAnthropicServer", "MockToken", "anthropic_error_body", "tokens_from_text"]


def anthropic_error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


class MockAnthropicServer(MockServerBase):
    """A MockTransport handler. ``status``/``error_body``/``headers`` answer an error;
    ``error_after`` sends an in-stream ``error`` event of ``error_kind`` after that many tokens;
    ``stop_reason`` replaces the natural one; ``send_stop`` False ends the stream early."""

    def __init__(self, script: Sequence[MockToken], *, status: int = 200, error_body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, error_after: int | None = None,
                 error_kind: str = "overloaded_error", stop_reason: str | None = None,
                 thinking_text: str = "Paris is in France, so", send_stop: bool = True,
                 delay: float = 0.0) -> None:
        self.script = list(script)
        self.status = status
        self.error_body = error_body
        self.headers = dict(headers or {})
        self.error_after = error_after
        self.error_kind = error_kind
        self.stop_reason = stop_reason
        self.thinking_text = thinking_text
        self.send_stop = send_stop
        self.delay = delay
        super().__init__()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body: dict[str, Any] = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            data = self.error_body or anthropic_error_body("api_error", f"mock error {self.status}")
            return self._response(self.status, "application/json", [data])
        return self._response(200, "text/event-stream; charset=utf-8", self._events(body))

    def _response(self, status: int, content_type: str, pieces: Sequence[bytes]) -> httpx.Response:
        headers = {"content-type": content_type, "request-id": "req_mock", **self.headers}
        return httpx.Response(status, headers=headers, stream=CountingStream(self, pieces, self.delay))

    def _events(self, body: Mapping[str, Any]) -> list[bytes]:
        prompt = sum(len(str(m["content"]).split()) for m in body["messages"])
        thinking = body.get("thinking") or {}
        events = [_event("message_start", {"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": body["model"],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 1}}})]
        index, spent = 0, 0
        if thinking.get("type") == "enabled":
            events += [
                _event("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "thinking", "thinking": ""}}),
                _delta(0, {"type": "thinking_delta", "thinking": self.thinking_text}),
                _delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrk"}),
                _event("content_block_stop", {"type": "content_block_stop", "index": 0})]
            index, spent = 1, len(self.thinking_text.split())
        budget = int(body["max_tokens"]) - spent
        chosen = self.script[:budget]
        events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": {"type": "text", "text": ""}}))
        events.append(_event("ping", {"type": "ping"}))
        for n, token in enumerate(chosen):
            if self.error_after is not None and n == self.error_after:
                events.append(_event("error", json.loads(anthropic_error_body(self.error_kind, "Overloaded"))))
                return events
            events.append(_delta(index, {"type": "text_delta", "text": token.text}))
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        if not self.send_stop:
            return events
        stop = self.stop_reason or ("max_tokens" if len(self.script) > budget else "end_turn")
        events.append(_event("message_delta", {"type": "message_delta",
                                               "delta": {"stop_reason": stop, "stop_sequence": None},
                                               "usage": {"output_tokens": spent + len(chosen)}}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
