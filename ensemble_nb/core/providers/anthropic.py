"""Anthropic's Messages API (``POST /v1/messages``), streamed as SSE over httpx.

Anthropic returns no token probabilities, so every token carries ``entropy_kind == "none"``
and no logprob: the member's confidence must come from elsewhere (agreement with the others),
never from a made-up entropy. Extended-thinking text is counted but not shown as answer tokens.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProtocolError,
    ProviderError,
    RateLimited,
    ServerError,
)
from ensemble_nb.core.providers import effort
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.http_base import HttpProvider, transport_error
from ensemble_nb.core.providers.openai_wire import parse_retry_after, server_message
from ensemble_nb.core.providers.sse import bound
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Completion, StreamItem, Token, Usage

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"

_CONTEXT_RE = re.compile(r"prompt is too long|context window|too many (?:input )?tokens", re.IGNORECASE)
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                 "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                 "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "refusal": "safety"}


def build_body(model: str, request: GenerationRequest, *, thinking_budget: int | None) -> dict[str, Any]:
    messages: list[dict[str, str]] = [{"role": "user", "content": request.user_content()}]
    # The API rejects a prefill that ends in whitespace; the parser drops the model's
    # matching leading space so prefix + answer still reads right.
    prefill = request.prefix.rstrip()
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
        thinking_budget = None  # prefill and extended thinking exclude each other
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "messages": messages,
                            "stream": True}
    if request.system:
        body["system"] = request.system
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if thinking_budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
        # The budget counts against max_tokens; thinking also forbids changing temperature.
        body["max_tokens"] = request.max_tokens + thinking_budget
    else:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0-1
        if request.top_p < 1.0:  # newer models refuse temperature and top_p together
            body["top_p"] = request.top_p
    return body


def _error_type(body: bytes) -> str:
    try:
        error = json.loads(body).get("error") or {}
        return str(error.get("type") or "")
    except (ValueError, AttributeError):
        return ""


def anthropic_error(status: int, headers: Mapping[str, str], body: bytes, *, who: str, key_env: str | None,
                    secret: str | None, stage: str = "HTTP") -> ProviderError:
    """One actionable error for an error answer or an in-stream ``error`` event."""
    detail = server_message(body, secret)
    kind = _error_type(body)
    said = f"({stage} {status}{' ' + kind if kind else ''}{': ' + detail if detail else ''})"
    env = key_env or "ANTHROPIC_API_KEY"
    retry_after = parse_retry_after(headers)
    if status == 529 or kind == "overloaded_error":
        return ServerError(f"{who}: Anthropic is overloaded {said}; retry later", status=529,
                           retry_after=retry_after)
    if status == 429:
        wait = f"retry in {retry_after:g} s" if retry_after is not None else "retry later"
        return RateLimited(f"{who}: rate limited {said}; {wait} or run fewer models at once", status=429,
                           retry_after=retry_after)
    if status == 401:
        action = f"check the key in {env}" if secret else f"set {env}"
        return AuthError(f"{who}: Anthropic refused the credentials {said}; {action}", status=status)
    if status == 403:
        return AuthError(f"{who}: the key in {env} may not use this model {said}", status=status)
    if status == 413 or _CONTEXT_RE.search(detail):
        return ContextTooLong(f"{who}: the prompt does not fit the model's context {said}; shorten the "
                              "prompt or the retrieved passages", status=status)
    if status == 402 or "credit balance" in detail.lower():
        return BadRequest(f"{who}: the account is out of credit {said}; check billing in the Anthropic console",
                          status=status)
    if status == 404:
        return BadRequest(f"{who}: unknown model or address {said}; check the model name", status=status)
    if status >= 500:
        return ServerError(f"{who}: server error {said}; retry later", status=status, retry_after=retry_after)
    return BadRequest(f"{who}: Anthropic rejected the request {said}", status=status)


class AnthropicParser:
    """Turns Messages API events into tokens; remembers the stop reason and usage."""

    def __init__(self, *, who: str, key_env: str | None, secret: str | None, strip_leading: bool) -> None:
        self.who = who
        self.key_env = key_env
        self.secret = secret
        self.strip_leading = strip_leading
        self.stop_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.output_tokens = 0
        self.thinking_chars = 0
        self.tokens = 0
        self.done = False

    def feed(self, event: str, data: str) -> list[Token]:
        if event == "ping" or not data.strip():
            return []
        try:
            obj = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"{self.who}: the server sent invalid JSON in its event stream ({exc.msg}): "
                                "check that the base URL points at the Anthropic API") from exc
        try:
            return self._event(str(obj.get("type") or event), obj, data)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise ProtocolError(f"{self.who}: the server sent an event of unexpected shape ({exc})") from exc

    def _event(self, kind: str, obj: Mapping[str, Any], data: str) -> list[Token]:
        if kind == "error":
            status = _ERROR_STATUS.get(str((obj.get("error") or {}).get("type")), 500)
            raise anthropic_error(status, {}, data.encode(), who=self.who, key_env=self.key_env,
                                  secret=self.secret, stage="mid-stream")
        if kind == "message_start":
            self._usage(obj["message"].get("usage") or {})
        elif kind == "message_delta":
            self.stop_reason = (obj.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._usage(obj.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        elif kind == "content_block_delta":
            delta = obj["delta"]
            if delta.get("type") == "thinking_delta":
                self.thinking_chars += len(str(delta.get("thinking") or ""))
            elif delta.get("type") == "text_delta":
                return self._text(str(delta.get("text") or ""))
        # content_block_start/stop carry nothing we show; unknown new event types are skipped,
        # as Anthropic's versioning policy asks of clients.
        return []

    def _text(self, text: str) -> list[Token]:
        if self.strip_leading and text:
            text = text.lstrip()
            self.strip_leading = not text
        if not text:
            return []
        self.tokens += 1
        return [Token(text)]  # no logprob, no entropy: entropy_kind "none"

    def _usage(self, usage: Mapping[str, Any]) -> None:
        if usage.get("input_tokens") is not None:
            # Cached prompt tokens are billed too (at other rates); count them as prompt.
            self.prompt_tokens = sum(int(usage.get(k) or 0) for k in
                                     ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        if usage.get("output_tokens") is not None:
            self.output_tokens = int(usage["output_tokens"])  # cumulative, thinking included

    def completion(self, prompt_chars: int) -> Completion:
        raw = self.stop_reason or "end_turn"
        finish = _FINISH.get(raw, "stop")
        extra = {} if raw in ("end_turn", "stop_sequence", "max_tokens") else {"finish_reason": raw}
        if finish == "safety":
            if not self.tokens:
                raise BadRequest(f"{self.who}: Claude declined to answer ({raw}); rephrase the prompt")
            extra["note"] = "Claude stopped the answer early (refusal); rephrase the prompt to get all of it"
        if self.thinking_chars:
            extra["thinking_chars"] = str(self.thinking_chars)
        if self.prompt_tokens is None:
            extra["usage"] = "estimated"
        prompt = self.prompt_tokens if self.prompt_tokens is not None else math.ceil(prompt_chars / 4)
        return Completion(finish, Usage(prompt, max(self.output_tokens, self.tokens)), extra)


class AnthropicProvider(HttpProvider):
    """Streams one Messages API call per :meth:`stream` call (key in ``x-api-key``)."""

    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient | None = None, *,
                 api_key: str | None = None, timeout: httpx.Timeout | None = None) -> None:
        super().__init__(spec, client, timeout, api_key)
        self._base_url = (spec.resolved_base_url() or ANTHROPIC_BASE_URL).rstrip("/")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=False, max_top_k=0, full_vocab_entropy=False, prefix=True,
                            vocab_size=self._spec.vocab_size)

    @property
    def url(self) -> str:
        return f"{self._base_url}/messages"

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "accept": "text/event-stream"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        who, key_env = self._spec.id, self._spec.api_key_env
        budget = effort.anthropic_budget(request.reasoning_effort or self._spec.reasoning_effort)
        body = build_body(self._spec.model or self._spec.id, request, thinking_budget=budget)
        try:
            # Leaving this block (end, error, aclose() or cancellation) closes the response.
            async with aconnect_sse(self._client, "POST", self.url, json=body, headers=self._headers()) as source:
                response = source.response
                if response.status_code != 200:
                    await response.aread()
                    raise anthropic_error(response.status_code, response.headers, response.content, who=who,
                                          key_env=key_env, secret=self._api_key)
                content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                if content_type != "text/event-stream":
                    raise ProtocolError(f"{who}: expected an event stream from {self._base_url}, got "
                                        f"{content_type or 'no content type'}; check the base URL")
                bound(response, who=who)  # caps what httpx-sse may buffer
                parser = AnthropicParser(who=who, key_env=key_env, secret=self._api_key,
                                         strip_leading=request.prefix != request.prefix.rstrip())
                async with aclosing(source.aiter_sse()) as events:
                    async for event in events:
                        for token in parser.feed(event.event, event.data):
                            yield token
                        if parser.done:
                            break
                if not parser.done:
                    raise ServerError(f"{who}: the stream from {self._base_url} ended before the answer "
                                      "was complete; retry")
            yield parser.completion(len(request.system or "") + len(request.user_content()))
        except (httpx.HTTPError, SSEError) as exc:
            raise transport_error(exc, who=who, base_url=self._base_url,
                                  unreachable="check the network or ANTHROPIC_BASE_URL") from exc

