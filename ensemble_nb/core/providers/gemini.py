"""Google Gemini, through the Generative Language API or Vertex AI, streamed as SSE over httpx.

Token log-probabilities come from ``candidates[0].logprobsResult`` when the model honours
``generationConfig.responseLogprobs``; a model that refuses them with a 400 is asked once more
without, and its tokens then carry ``entropy_kind == "none"``. The wire format (bodies, chunks,
errors) is in :mod:`gemini_wire`; this module holds the transport.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing

import httpx
from httpx_sse import SSEError, aconnect_sse

from ensemble_nb.core.errors import (
    ProtocolError,
    ServerError,
    UserError,
)
from ensemble_nb.core.providers import effort
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.gemini_wire import (
    MAX_STOP_SEQUENCES,
    GeminiParser,
    build_body,
    gemini_error,
    prompt_chars,
    refuses_logprobs,
    retry_delay,
)
from ensemble_nb.core.providers.http_base import HttpProvider, transport_error
from ensemble_nb.core.providers.openai_wire import stream_error
from ensemble_nb.core.providers.sse import bound
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import StreamItem

# Re-exported: the wire-format names used to live here.
__all__ = ["GEMINI_BASE_URL", "MAX_STOP_SEQUENCES", "GeminiParser", "GeminiProvider",
           "build_body", "gemini_error", "retry_delay", "vertex_base_url"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
VERTEX_TOKEN_ENV = "VERTEX_ACCESS_TOKEN"
VERTEX_PROJECT_ENVS = ("VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
VERTEX_LOCATION_ENVS = ("VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION")


def vertex_base_url(project: str, location: str) -> str:
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{location}/publishers/google/models"


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class GeminiProvider(HttpProvider):
    """Streams one ``streamGenerateContent`` call per :meth:`stream` call.

    The Generative Language API gets the key in ``x-goog-api-key`` (never in the URL, where it
    could end up in an error message or a log). Vertex AI (a spec tagged ``vertex``) gets a
    bearer token and needs a project and a location, from arguments or the environment.
    """

    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient | None = None, *,
                 api_key: str | None = None, timeout: httpx.Timeout | None = None,
                 project: str | None = None, location: str | None = None) -> None:
        super().__init__(spec, client, timeout, api_key)
        self._vertex = "vertex" in spec.tags
        base = spec.resolved_base_url()
        if base is None and self._vertex:
            project = project or _first_env(VERTEX_PROJECT_ENVS)
            if not project:
                raise UserError(f"model '{spec.id}' runs on Vertex AI and needs a project: "
                                "export GOOGLE_CLOUD_PROJECT=your-project (and GOOGLE_CLOUD_LOCATION)")
            base = vertex_base_url(project, location or _first_env(VERTEX_LOCATION_ENVS) or "us-central1")
        self._base_url = (base or GEMINI_BASE_URL).rstrip("/")

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
                        if want_logprobs and refuses_logprobs(error):
                            want_logprobs = False
                            notes["logprobs"] = "the model refused logprobs; its tokens carry no probabilities"
                            continue
                        raise error
                    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                    if content_type != "text/event-stream":
                        raise ProtocolError(f"{who}: expected an event stream from {self._base_url}, got "
                                            f"{content_type or 'no content type'}; check the base URL")
                    bound(response, who=who)  # caps what httpx-sse may buffer
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
                yield parser.completion(prompt_chars(request), notes)
                return
        except (httpx.HTTPError, SSEError) as exc:
            raise transport_error(exc, who=who, base_url=self._base_url,
                                  unreachable="check the network or the base URL") from exc

