"""A fake Gemini ``streamGenerateContent?alt=sse`` server for httpx's ``MockTransport``.

It streams the real wire format: ``data: {GenerateContentResponse}\\r\\n\\r\\n`` events, each with
``candidates[0].content.parts[].text`` and, when ``generationConfig.responseLogprobs`` is set,
``candidates[0].logprobsResult`` = ``{topCandidates: [{candidates: [{token, tokenId,
logProbability}]}], chosenCandidates: [...]}``; ``usageMetadata`` and ``modelVersion`` on every
chunk, ``finishReason`` on the last one. Zero values are omitted as proto3 JSON does. Errors use
Google's ``{"error": {"code", "message", "status", "details"}}`` body.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tests.openai_mock import CountingStream, MockServerBase, MockToken, tokens_from_text

__all__ = ["CountingStream", "MockGeminiServer", "MockToken", "google_error", "tokens_from_text"]


def google_error(code: int, message: str, status: str, details: Sequence[Mapping[str, Any]] = ()) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status,
                                 "details": list(details)}}).encode()


class MockGeminiServer(MockServerBase):
    """A MockTransport handler. ``status``/``error_body`` answer an error; ``refuse_logprobs``
    answers 400 to any request asking for logprobs; ``ignore_logprobs`` drops them silently;
    ``finish_reason`` replaces the last chunk's reason; ``block_prompt`` sends only a
    ``promptFeedback.blockReason``; ``thought`` prepends a thought part when thinking is asked for;
    ``raw_events`` replaces the generated body; ``send_finish`` False ends the stream early."""

    def __init__(self, script: Sequence[MockToken], *, status: int = 200, error_body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, refuse_logprobs: bool = False,
                 ignore_logprobs: bool = False, finish_reason: str | None = None, block_prompt: str | None = None,
                 thought: str | None = None, tokens_per_chunk: int = 1, raw_events: Sequence[bytes] | None = None,
                 send_finish: bool = True, content_type: str = "text/event-stream", delay: float = 0.0) -> None:
        self.script = list(script)
        self.status = status
        self.error_body = error_body
        self.headers = dict(headers or {})
        self.refuse_logprobs = refuse_logprobs
        self.ignore_logprobs = ignore_logprobs
        self.finish_reason = finish_reason
        self.block_prompt = block_prompt
        self.thought = thought
        self.tokens_per_chunk = tokens_per_chunk
        self.raw_events = raw_events
        self.send_finish = send_finish
        self.content_type = content_type
        self.delay = delay
        super().__init__()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body: dict[str, Any] = json.loads(request.content)
        self.bodies.append(body)
        config = body.get("generationConfig") or {}
        if self.status != 200:
            data = self.error_body or google_error(self.status, f"mock error {self.status}", "INTERNAL")
            return self._response(self.status, "application/json", [data])
        if self.refuse_logprobs and config.get("responseLogprobs"):
            data = google_error(400, "Logprobs is not supported for the current model.", "INVALID_ARGUMENT")
            return self._response(400, "application/json", [data])
        pieces = list(self.raw_events) if self.raw_events is not None else self._events(body, config)
        return self._response(200, self.content_type, pieces)

    def _response(self, status: int, content_type: str, pieces: Sequence[bytes]) -> httpx.Response:
        headers = {"content-type": content_type, **self.headers}
        return httpx.Response(status, headers=headers, stream=CountingStream(self, pieces, self.delay))

    def _events(self, body: Mapping[str, Any], config: Mapping[str, Any]) -> list[bytes]:
        prompt = sum(len(str(p.get("text", "")).split()) for c in body["contents"] for p in c["parts"])
        if self.block_prompt:
            return [_event({"promptFeedback": {"blockReason": self.block_prompt},
                            "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}})]
        want_lp = bool(config.get("responseLogprobs")) and not self.ignore_logprobs
        top_n = int(config.get("logprobs") or 0)
        max_tokens = int(config.get("maxOutputTokens") or 1 << 30)
        rng = random.Random(config.get("seed"))
        temperature = float(config.get("temperature", 1.0))
        chosen = [_choose(t, temperature, rng) for t in self.script[:max_tokens]]
        finish = self.finish_reason or ("MAX_TOKENS" if len(self.script) > max_tokens else "STOP")
        thinking = self.thought if self.thought and "thinkingConfig" in config else None
        events: list[bytes] = []
        groups = [chosen[i : i + self.tokens_per_chunk] for i in range(0, len(chosen), self.tokens_per_chunk)]
        if not groups and self.send_finish:  # a withheld answer: one chunk with the reason only
            events.append(_event({"candidates": [{"content": {"role": "model"}, "finishReason": finish}],
                                  "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}}))
        for n, group in enumerate(groups):
            parts: list[dict[str, Any]] = [{"text": "".join(t.text for t in group)}]
            if thinking and n == 0:
                parts.insert(0, {"text": thinking, "thought": True})
            cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
            if want_lp:
                cand["logprobsResult"] = {
                    "topCandidates": [{"candidates": _top(t, top_n)} for t in group] if top_n else [],
                    "chosenCandidates": [_candidate(t.text, t.prob()) for t in group]}
            last = n == len(groups) - 1
            if last and self.send_finish:
                cand["finishReason"] = finish
            done = sum(len(g) for g in groups[: n + 1])
            usage = {"promptTokenCount": prompt, "candidatesTokenCount": done, "totalTokenCount": prompt + done}
            if thinking:
                usage["thoughtsTokenCount"] = len(thinking.split())
            events.append(_event({"candidates": [cand], "usageMetadata": usage,
                                  "modelVersion": "gemini-mock", "responseId": "mock-id"}))
        return events


def _event(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"  # Google ends SSE lines with CRLF


def _candidate(text: str, prob: float) -> dict[str, Any]:
    out: dict[str, Any] = {"token": text, "tokenId": zlib.crc32(text.encode()) % 256_000}
    lp = math.log(prob)
    if lp != 0.0:  # proto3 JSON drops zero values
        out["logProbability"] = lp
    return out


def _top(token: MockToken, top_n: int) -> list[dict[str, Any]]:
    ranked = sorted(token.probs.items(), key=lambda kv: -kv[1])[:top_n]
    return [_candidate(t, p) for t, p in ranked] or [_candidate(token.text, 1.0)]


def _choose(token: MockToken, temperature: float, rng: random.Random) -> MockToken:
    if temperature == 0 or not token.probs:
        return token
    texts = list(token.probs)
    pick = rng.choices(texts, weights=[token.probs[t] for t in texts])[0]
    return token if pick == token.text else MockToken(pick, token.probs)
