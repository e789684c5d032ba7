"""The Gemini wire format: request bodies, streamed chunks, error bodies.

Pure functions and one small parser, so :mod:`gemini` only deals with transport (URLs,
credentials, the HTTP stream), as :mod:`openai_wire` does for :mod:`openai_compat`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ensemble_nb.core.entropy import topk_entropy
from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProtocolError,
    ProviderError,
)
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.openai_wire import error_from_status, server_message, stream_error
from ensemble_nb.core.tokens import Alternative, Completion, Token, Usage

MAX_STOP_SEQUENCES = 5  # the API rejects more

_LOGPROBS_RE = re.compile(r"logprob", re.IGNORECASE)
_KEY_INVALID_RE = re.compile(r"API_KEY_INVALID|API key not valid|API key expired", re.IGNORECASE)
_CONTEXT_RE = re.compile(r"input token count.*exceed|exceeds the maximum number of tokens", re.IGNORECASE)
_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_SAFETY_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def build_body(request: GenerationRequest, *, logprobs: bool, max_top_k: int,
               thinking_budget: int | None) -> dict[str, Any]:
    contents: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": request.user_content()}]}]
    if request.prefix:
        # Gemini usually answers a trailing model turn afresh, hence capabilities.prefix = False.
        contents.append({"role": "model", "parts": [{"text": request.prefix}]})
    config: dict[str, Any] = {
        "candidateCount": 1,
        "maxOutputTokens": request.max_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "seed": request.seed,
    }
    if request.stop:
        config["stopSequences"] = list(request.stop[:MAX_STOP_SEQUENCES])
    if logprobs:
        config["responseLogprobs"] = True
        k = min(request.top_k, max_top_k, 20)
        if k > 0:  # the API wants 1-20; without it only the chosen tokens come back
            config["logprobs"] = k
    if thinking_budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": thinking_budget}
        # Thinking tokens count against maxOutputTokens; leave the answer its full allowance.
        config["maxOutputTokens"] = request.max_tokens + thinking_budget
    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    return body


def retry_delay(body: bytes) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``), if any."""
    try:
        details = json.loads(body)["error"]["details"]
        for detail in details:
            match = _DELAY_RE.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def gemini_error(status: int, headers: Mapping[str, str], body: bytes, *, who: str, key_env: str | None,
                 secret: str | None, vertex: bool) -> ProviderError:
    """Google's error bodies mapped to the project's errors; generic cases as for OpenAI."""
    detail = server_message(body, secret)
    said = f": {detail}" if detail else ""
    env = key_env or "the API key variable"
    if vertex and status in (401, 403):
        return AuthError(f"{who}: Vertex AI refused the access token (HTTP {status}{said}); tokens expire "
                         f"after an hour: export {env}=$(gcloud auth print-access-token)", status=status)
    if status == 400 and _KEY_INVALID_RE.search(body.decode("utf-8", errors="replace")):
        return AuthError(f"{who}: Google refused the API key (HTTP 400{said}); check the key in {env}",
                         status=status)
    if status == 400 and _CONTEXT_RE.search(detail):
        return ContextTooLong(f"{who}: the prompt does not fit the model's context (HTTP 400{said}); "
                              "shorten the prompt or the retrieved passages", status=status)
    if status == 429 and "retry-after" not in headers:
        delay = retry_delay(body)
        if delay is not None:  # Google puts it in the body; error_from_status reads headers
            headers = {**headers, "retry-after": f"{delay:g}"}
    return error_from_status(status, headers, body, who=who, key_env=key_env, secret=secret)


class GeminiParser:
    """Turns the ``data`` of each SSE event into tokens; remembers finish reason and usage."""

    def __init__(self, top_k: int, vocab_size: int, *, who: str, secret: str | None) -> None:
        self.top_k = top_k
        self.vocab_size = vocab_size
        self.who = who
        self.secret = secret
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.tokens = 0
        self.chars = 0
        self.thought_chars = 0

    def feed(self, data: str) -> list[Token]:
        if not data.strip():
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"{self.who}: the server sent invalid JSON in its event stream ({exc.msg}): "
                                "check that the base URL points at the Gemini API") from exc
        try:
            tokens = self._chunk(chunk)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise ProtocolError(f"{self.who}: the server sent a chunk of unexpected shape ({exc})") from exc
        self.tokens += len(tokens)
        self.chars += sum(len(t.text) for t in tokens)
        return tokens

    def _chunk(self, chunk: Mapping[str, Any]) -> list[Token]:
        if chunk.get("error"):
            raise stream_error(chunk["error"], who=self.who, secret=self.secret)
        meta = chunk.get("usageMetadata")
        if isinstance(meta, Mapping):
            # Thinking is billed as output, so it counts as completion tokens for the cost.
            out = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
            self.usage = Usage(int(meta.get("promptTokenCount") or 0), out)
        blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise BadRequest(f"{self.who}: Gemini blocked the prompt ({blocked}): rephrase it, or relax the "
                             "safety settings of the request", status=200)
        candidates = chunk.get("candidates") or []
        if not candidates:
            return []
        cand = candidates[0]  # candidateCount is always 1
        if cand.get("finishReason"):
            self.finish_reason = str(cand["finishReason"])
        parts = (cand.get("content") or {}).get("parts") or []
        thoughts = [str(p.get("text") or "") for p in parts if p.get("thought")]
        self.thought_chars += sum(map(len, thoughts))
        text = "".join(str(p.get("text") or "") for p in parts if not p.get("thought"))
        result = cand.get("logprobsResult") or {}
        chosen = result.get("chosenCandidates") or []
        tops = result.get("topCandidates") or []
        tokens = [self._token(c, tops[i] if i < len(tops) else None) for i, c in enumerate(chosen)]
        # With thoughts in the same chunk it is unclear which text the log-probabilities cover:
        # use them only when they spell out exactly the answer text.
        if tokens and (not thoughts or "".join(t.text for t in tokens) == text):
            return tokens
        return [Token(text)] if text else []

    def _token(self, chosen: Mapping[str, Any], top: Mapping[str, Any] | None) -> Token:
        text = str(chosen.get("token", ""))
        # Proto3 JSON omits zero values: a missing logProbability means probability 1.
        logprob = _logprob(chosen.get("logProbability", 0.0))
        token_id = chosen.get("tokenId", 0) if isinstance(chosen.get("tokenId", 0), int) else None
        alts = [Alternative(str(c.get("token", "")), lp) for c in (top or {}).get("candidates") or []
                if (lp := _logprob(c.get("logProbability", 0.0))) is not None]
        alts.sort(key=lambda a: -a.logprob)
        known = [a.logprob for a in alts]
        if logprob is not None and all(a.text != text for a in alts):
            known.append(logprob)  # a sampled token outside the top-k is one more known mass
        shown = tuple(alts[: self.top_k])
        if not known:
            return Token(text, logprob, alternatives=shown, token_id=token_id)
        try:
            entropy, bounds = topk_entropy(known, self.vocab_size)
        except ValueError:  # every probability underflowed to zero
            return Token(text, logprob, alternatives=shown, token_id=token_id)
        return Token(text, logprob, entropy, "topk", shown, bounds, token_id)

    def completion(self, prompt_chars: int, notes: Mapping[str, str]) -> Completion:
        raw = self.finish_reason or "STOP"
        extra = dict(notes)
        if raw in _SAFETY_REASONS:
            if not self.tokens:
                raise BadRequest(f"{self.who}: Gemini withheld the answer ({raw}): rephrase the prompt, "
                                 "or relax the safety settings of the request", status=200)
            finish = "safety"
            extra["note"] = f"Gemini cut the answer short ({raw}); rephrase the prompt to get all of it"
        else:
            finish = "length" if raw == "MAX_TOKENS" else "stop"
        if raw not in ("STOP", "MAX_TOKENS"):
            extra["finish_reason"] = raw
        if self.thought_chars:
            extra["thought_chars"] = str(self.thought_chars)
        if self.usage is not None and self.usage.completion_tokens:
            return Completion(finish, self.usage, extra)
        # Rough counts (about 4 characters a token) so cost estimates are never blank.
        extra["usage"] = "estimated"
        return Completion(finish, Usage(math.ceil(prompt_chars / 4), self.tokens or math.ceil(self.chars / 4)),
                          extra)


def _logprob(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return min(float(value), 0.0)


def refuses_logprobs(error: ProviderError) -> bool:
    """Whether a 400 says the model cannot return logprobs."""
    detail = str(error).split(": ", 1)[-1]  # not the model id, which might mention logprobs
    return type(error) is BadRequest and error.status == 400 and bool(_LOGPROBS_RE.search(detail))


def prompt_chars(request: GenerationRequest) -> int:
    return len(request.system or "") + len(request.user_content()) + len(request.prefix)
