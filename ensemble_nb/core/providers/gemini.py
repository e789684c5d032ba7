"""Google Gemini, through the Generative Language API or Vertex AI, streamed as SSE over httpx.

Token log-probabilities come from ``candidates[0].logprobsResult`` when the model honours
``generationConfig.responseLogprobs``; a model that refuses them with a 400 is asked once more
without, and its tokens then carry ``entropy_kind == "none"``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from ensemble_nb.core.entropy import topk_entropy
from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ContextTooLong,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ServerError,
    UserError,
)
from ensemble_nb.core.providers import effort
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.openai_wire import error_from_status, server_message, stream_error
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Alternative, Completion, StreamItem, Token, Usage

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
VERTEX_TOKEN_ENV = "VERTEX_ACCESS_TOKEN"
VERTEX_PROJECT_ENVS = ("VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
VERTEX_LOCATION_ENVS = ("VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION")
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
MAX_STOP_SEQUENCES = 5  # the API rejects more

_LOGPROBS_RE = re.compile(r"logprob", re.IGNORECASE)
_KEY_INVALID_RE = re.compile(r"API_KEY_INVALID|API key not valid|API key expired", re.IGNORECASE)
_CONTEXT_RE = re.compile(r"input token count.*exceed|exceeds the maximum number of tokens", re.IGNORECASE)
_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_SAFETY_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def vertex_base_url(project: str, location: str) -> str:
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{location}/publishers/google/models"


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


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class GeminiProvider:
    """Streams one ``streamGenerateContent`` call per :meth:`stream` call.

    The Generative Language API gets the key in ``x-goog-api-key`` (never in the URL, where it
    could end up in an error message or a log). Vertex AI (a spec tagged ``vertex``) gets a
    bearer token and needs a project and a location, from arguments or the environment.
    """

    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient | None = None, *,
                 api_key: str | None = None, timeout: httpx.Timeout | None = None,
                 project: str | None = None, location: str | None = None) -> None:
        self._spec = spec
        self._vertex = "vertex" in spec.tags
        base = spec.resolved_base_url()
        if base is None and self._vertex:
            project = project or _first_env(VERTEX_PROJECT_ENVS)
            if not project:
                raise UserError(f"model '{spec.id}' runs on Vertex AI and needs a project: "
                                "export GOOGLE_CLOUD_PROJECT=your-project (and GOOGLE_CLOUD_LOCATION)")
            base = vertex_base_url(project, location or _first_env(VERTEX_LOCATION_ENVS) or "us-central1")
        self._base_url = (base or GEMINI_BASE_URL).rstrip("/")
        self._api_key = (api_key if api_key is not None else spec.api_key()) or None
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout or DEFAULT_TIMEOUT)

    @property
    def model_id(self) -> str:
        return self._spec.id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=self._spec.logprobs, max_top_k=min(self._spec.max_top_k, 20),
                            full_vocab_entropy=False, prefix=False, vocab_size=self._spec.vocab_size)

    @property
    def url(self) -> str:
        model = (self._spec.model or self._spec.id.split(":", 1)[-1]).removeprefix("models/")
        return f"{self._base_url}/{model}:streamGenerateContent?alt=sse"

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            return {}
        if self._vertex:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {"x-goog-api-key": self._api_key}

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        who = self._spec.id
        want_logprobs = self._spec.logprobs
        notes: dict[str, str] = {}
        budget = effort.gemini_budget(request.reasoning_effort or self._spec.reasoning_effort)
        try:
            while True:
                body = build_body(request, logprobs=want_logprobs, max_top_k=self._spec.max_top_k,
                                  thinking_budget=budget)
                # Leaving this block (end, error, aclose() or cancellation) closes the response.
                async with aconnect_sse(self._client, "POST", self.url, json=body,
                                        headers=self._headers()) as source:
                    response = source.response
                    if response.status_code != 200:
                        await response.aread()
                        error = gemini_error(response.status_code, response.headers, response.content, who=who,
                                             key_env=self._spec.api_key_env, secret=self._api_key,
                                             vertex=self._vertex)
                        if want_logprobs and _refuses_logprobs(error):
                            want_logprobs = False
                            notes["logprobs"] = "the model refused logprobs; its tokens carry no probabilities"
                            continue
                        raise error
                    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                    if content_type != "text/event-stream":
                        raise ProtocolError(f"{who}: expected an event stream from {self._base_url}, got "
                                            f"{content_type or 'no content type'}; check the base URL")
                    parser = GeminiParser(request.top_k, self._spec.vocab_size, who=who, secret=self._api_key)
                    async with aclosing(source.aiter_sse()) as events:
                        async for event in events:
                            if event.event == "error":
                                raise stream_error(event.data, who=who, secret=self._api_key)
                            for token in parser.feed(event.data):
                                yield token
                    if parser.finish_reason is None:
                        raise ServerError(f"{who}: the stream from {self._base_url} ended before the "
                                          "answer was complete; retry")
                yield parser.completion(_prompt_chars(request), notes)
                return
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ConnectError(f"{who}: cannot reach {self._base_url}: check the network or the "
                               "base URL") from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{who}: {self._base_url} sent nothing for too long "
                                  f"({type(exc).__name__}); retry, or pass a longer httpx timeout") from exc
        except SSEError as exc:
            raise ProtocolError(f"{who}: unreadable event stream from {self._base_url}: {exc}") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise ServerError(f"{who}: the connection to {self._base_url} dropped mid-answer "
                              f"({type(exc).__name__}); retry") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{who}: the request to {self._base_url} failed "
                                f"({type(exc).__name__}: {exc})") from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _refuses_logprobs(error: ProviderError) -> bool:
    detail = str(error).split(": ", 1)[-1]  # not the model id, which might mention logprobs
    return type(error) is BadRequest and error.status == 400 and bool(_LOGPROBS_RE.search(detail))


def _prompt_chars(request: GenerationRequest) -> int:
    return len(request.system or "") + len(request.user_content()) + len(request.prefix)
