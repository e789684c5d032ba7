"""The OpenAI chat-completions wire format: request bodies, streamed chunks, error bodies.

Pure functions and one small parser, so :mod:`openai_compat` only deals with transport and
can be tested against the parser without a network.
"""

from __future__ import annotations

import codecs
import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from ensemble_nb.core.entropy import topk_entropy
from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    redact,
)
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.effort import openai_effort
from ensemble_nb.core.tokens import Alternative, Completion, Token, Usage

UNKNOWN_LOGPROB = -9999.0
"""OpenAI's marker for a log-probability it could not compute."""

MAX_DETAIL = 200

_CONTEXT_RE = re.compile(
    r"context[ _-]?length|context_length_exceeded|maximum context|context window|prompt is too long"
    r"|too many (?:input )?tokens|exceeds? (?:the )?(?:model'?s? )?(?:maximum )?context",
    re.IGNORECASE,
)
_LOGPROBS_RE = re.compile(r"logprobs", re.IGNORECASE)



def build_body(model: str, request: GenerationRequest, *, logprobs: bool, max_top_k: int) -> dict[str, Any]:
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.user_content()})
    if request.prefix:
        # A trailing assistant message is continued only by some servers (llama.cpp, vLLM with
        # continue_final_message, DeepSeek's prefix mode); OpenAI answers afresh. Hence the
        # provider reports capabilities.prefix = False.
        messages.append({"role": "assistant", "content": request.prefix})
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if logprobs:
        body["logprobs"] = True
        k = min(request.top_k, max_top_k)
        if k > 0:  # servers reject top_logprobs: 0 together with some models, so leave it out
            body["top_logprobs"] = k
    effort = openai_effort(request.reasoning_effort)
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def _logprob(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    lp = float(value)
    if not math.isfinite(lp) or lp <= UNKNOWN_LOGPROB:
        return None
    return min(lp, 0.0)  # a rounded +1e-7 from a server is still probability 1


class ChunkParser:
    """Turns the ``data`` of each SSE event into tokens; remembers finish reason and usage."""

    def __init__(self, top_k: int, vocab_size: int, *, who: str = "server",
                 secret: str | None = None) -> None:
        self.top_k = top_k
        self.who = who
        self.secret = secret
        self.vocab_size = vocab_size
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.logprob_tokens = 0
        self.chars = 0
        # Byte-fallback tokens carry half a UTF-8 character; decode their bytes incrementally
        # so the token texts still concatenate to the answer.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: str) -> list[Token]:
        if data.strip() == "[DONE]":
            self.done = True
            return []
        if not data.strip():
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProtocolError(
                f"{self.who}: the server sent invalid JSON in its event stream ({exc.msg}): "
                "check that the base URL points at an OpenAI-compatible /v1 endpoint"
            ) from exc
        try:
            return self._chunk(chunk)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise ProtocolError(f"{self.who}: the server sent a chunk of unexpected shape ({exc})") from exc

    def _chunk(self, chunk: Mapping[str, Any]) -> list[Token]:
        if chunk.get("error"):
            raise stream_error(chunk["error"], who=self.who, secret=self.secret)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        choices = chunk.get("choices") or []
        if not choices:
            return []
        choice = choices[0]  # we never ask for n > 1
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        entries = (choice.get("logprobs") or {}).get("content") or []
        content = (choice.get("delta") or {}).get("content")
        if entries:
            # When both are present the entries spell out the content, token by token.
            tokens = [self._token(e) for e in entries]
            self.logprob_tokens += len(tokens)
        elif content:
            # The server ignored the logprobs request (e.g. some OpenRouter endpoints).
            tokens = [Token(str(content))]
        else:
            return []
        self.chars += sum(len(t.text) for t in tokens)
        return tokens

    def _token(self, entry: Mapping[str, Any]) -> Token:
        raw = str(entry.get("token", ""))
        text = raw
        if isinstance(entry.get("bytes"), list):
            try:
                text = self._utf8.decode(bytes(entry["bytes"]))
            except (ValueError, TypeError):  # malformed bytes: the token string will do
                text = raw
        logprob = _logprob(entry.get("logprob"))
        alts: list[Alternative] = []
        for alt in entry.get("top_logprobs") or []:
            alp = _logprob(alt.get("logprob"))
            if alp is not None:
                alts.append(Alternative(str(alt.get("token", "")), alp))
        alts.sort(key=lambda a: -a.logprob)
        known = [a.logprob for a in alts]
        if logprob is not None and all(a.text != raw for a in alts):
            known.append(logprob)  # a sampled token outside the top-k is one more known mass
        if not known:
            return Token(text, logprob, alternatives=tuple(alts[: self.top_k]))
        try:
            entropy, bounds = topk_entropy(known, self.vocab_size)
        except ValueError:  # every probability underflowed to zero
            return Token(text, logprob, alternatives=tuple(alts[: self.top_k]))
        return Token(text, logprob, entropy, "topk", tuple(alts[: self.top_k]), bounds)

    def completion(self, prompt_chars: int) -> Completion:
        raw = self.finish_reason or "stop"
        finish = "length" if raw in ("length", "max_tokens") else "stop"
        extra = {} if raw in ("stop", "length") else {"finish_reason": raw}
        if self.usage is not None:
            return Completion(finish, self.usage, extra)
        # Rough counts (about 4 characters a token) so cost estimates are never blank.
        completion = self.logprob_tokens or math.ceil(self.chars / 4)
        extra["usage"] = "estimated"
        return Completion(finish, Usage(math.ceil(prompt_chars / 4), completion), extra)


def one_line(text: str, limit: int = MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(text: str, secret: str | None) -> str:
    # errors.redact knows keys from the environment; a key passed in code is only known here.
    return text.replace(secret, "[redacted]") if secret else text


def server_message(body: bytes, secret: str | None = None) -> str:
    """The human part of an error body: OpenAI's ``error.message`` and its common variants."""
    # Redact before truncating: a key cut in half would no longer be recognised.
    text = redact(scrub(body.decode("utf-8", errors="replace"), secret))
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError:
        return one_line(text)
    for key in ("error", "detail", "message"):
        value = obj.get(key) if isinstance(obj, Mapping) else None
        if isinstance(value, Mapping):
            value = value.get("message") or value.get("msg") or json.dumps(value)
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            value = value[0].get("msg") or value[0].get("message")
        if isinstance(value, str) and value:
            return one_line(value)
    return one_line(text)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_status(status: int, headers: Mapping[str, str], body: bytes, *, who: str,
                      key_env: str | None, secret: str | None) -> ProviderError:
    """One actionable error for a non-200 answer. The body is the server's, never our request."""
    detail = server_message(body, secret)
    said = f": {detail}" if detail else ""
    env = key_env or "the provider's API key variable"
    if status in (401, 403):
        action = f"check the key in {env}" if secret else f"set {env}"
        return AuthError(f"{who}: the server refused the credentials (HTTP {status}{said}); {action}",
                         status=status)
    if status == 429:
        retry_after = parse_retry_after(headers)
        if "quota" in detail.lower() and "insufficient" in detail.lower():
            return BadRequest(f"{who}: the account is out of quota (HTTP 429{said}); check billing",
                              status=429)
        wait = f"retry in {retry_after:g} s" if retry_after is not None else "retry later"
        return RateLimited(f"{who}: rate limited (HTTP 429{said}); {wait} or run fewer models at once",
                           status=429, retry_after=retry_after)
    if status >= 500:
        return ServerError(f"{who}: server error (HTTP {status}{said}); retry later", status=status,
                           retry_after=parse_retry_after(headers))
    if status == 408:
        return ProviderTimeout(f"{who}: the server timed out the request (HTTP 408); retry", status=408)
    if _CONTEXT_RE.search(detail):
        return ContextTooLong(f"{who}: the prompt does not fit the model's context (HTTP {status}{said}); "
                              "shorten the prompt or the retrieved passages", status=status)
    return BadRequest(f"{who}: the server rejected the request (HTTP {status}{said})", status=status)


def rejects_logprobs(error: ProviderError) -> bool:
    """Whether a 400 says the model cannot return logprobs (e.g. OpenAI reasoning models)."""
    detail = str(error).split(": ", 1)[-1]  # not the model id, which might mention logprobs
    return type(error) is BadRequest and error.status == 400 and bool(_LOGPROBS_RE.search(detail))


def stream_error(error: object, *, who: str, secret: str | None) -> ProviderError:
    """An ``error`` sent inside the event stream after a 200 (a chunk field or an error event)."""
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except json.JSONDecodeError:
            pass
    if isinstance(error, Mapping) and "error" in error:
        error = error["error"]
    if isinstance(error, Mapping):
        message = str(error.get("message") or json.dumps(error))
        code = error.get("code")
    else:
        message, code = str(error), None
    detail = one_line(redact(scrub(message, secret)))
    if _CONTEXT_RE.search(detail):
        return ContextTooLong(f"{who}: the prompt does not fit the model's context ({detail}); shorten it")
    status = code if isinstance(code, int) else None
    if status is not None and 400 <= status < 500 and status != 429:
        return BadRequest(f"{who}: the server stopped the stream: {detail}", status=status)
    return ServerError(f"{who}: the server stopped the stream: {detail}; retry", status=status)
