"""A provider for any OpenAI-compatible ``/chat/completions`` endpoint, streamed over httpx.

Works with OpenAI, OpenRouter, vLLM, Ollama and llama.cpp's server. Token log-probabilities
come from ``choices[0].logprobs.content``; a server that ignores the request still streams
text, and its tokens then carry ``entropy_kind == "none"`` (not an error).

For ``openrouter:`` models the body carries routing preferences: lowest latency first, and,
while logprobs are asked for, only endpoints that honour them. Events are parsed by httpx-sse
over a response bounded by :func:`~ensemble_nb.core.providers.sse.bound`: a line over
``max_line_bytes`` or a body over ``max_stream_bytes`` is a :class:`ProtocolError`, not an
ever-growing buffer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast

import httpx
from httpx_sse import SSEError, aconnect_sse

from ensemble_nb.core.errors import (
    ProtocolError,
    ProviderTimeout,
    ServerError,
    UserError,
)
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.http_base import HttpProvider, transport_error
from ensemble_nb.core.providers.openai_wire import (
    ChunkParser,
    build_body,
    error_from_status,
    rejects_logprobs,
    stream_error,
)
from ensemble_nb.core.providers.openrouter import routing_prefs, with_routing
from ensemble_nb.core.providers.sse import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_STREAM_BYTES, bound
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import StreamItem

__all__ = ["OpenAICompatProvider", "ProviderTimeout"]

# Generous read timeout: a large model may think for a long time before its first token.


class OpenAICompatProvider(HttpProvider):
    """Streams one chat completion per :meth:`stream` call.

    Without ``client`` the provider makes its own and closes it in :meth:`aclose`; an injected
    client belongs to the caller and is left open. The API key comes from ``api_key`` or else
    from the environment variable the spec names; with no key no ``Authorization`` is sent.
    """

    def __init__(
        self,
        spec: ModelSpec,
        client: httpx.AsyncClient | None = None,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        base_url = spec.resolved_base_url()
        if not base_url:
            where = f"set {spec.base_url_env}" if spec.base_url_env else "give its spec a base_url"
            raise UserError(f"model '{spec.id}' has no server address: {where}")
        super().__init__(spec, client, timeout, api_key)
        self._base_url = base_url.rstrip("/")
        self.max_line_bytes = max_line_bytes
        self.max_stream_bytes = max_stream_bytes

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            logprobs=self._spec.logprobs,
            max_top_k=self._spec.max_top_k,
            full_vocab_entropy=False,
            prefix=False,
            vocab_size=self._spec.vocab_size,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    @property
    def url(self) -> str:
        return f"{self._base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _where(self) -> str:
        env = self._spec.base_url_env
        return f"set {env} to its address" if env else "check the base_url in the model's spec"

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        who = self._spec.id
        want_logprobs = self._spec.logprobs
        notes: dict[str, str] = {}
        try:
            while True:
                body = build_body(self._spec.model or self._spec.id, request, logprobs=want_logprobs,
                                  max_top_k=self._spec.max_top_k)
                if self._spec.id.startswith("openrouter:"):
                    # Without require_parameters an endpoint that ignores logprobs answers anyway.
                    body = with_routing(body, routing_prefs(sort="latency", require_parameters=want_logprobs))
                # Leaving this block (end, error, aclose() or cancellation at a yield) closes the
                # response, which returns the connection to the pool.
                async with aconnect_sse(self._client, "POST", self.url, json=body,
                                        headers=self._headers()) as source:
                    response = source.response
                    if response.status_code != 200:
                        content = await self._error_body(response)
                        error = error_from_status(
                            response.status_code, response.headers, content, who=who,
                            key_env=self._spec.api_key_env, secret=self._api_key)
                        if want_logprobs and rejects_logprobs(error):
                            # e.g. OpenAI reasoning models: answer without probabilities instead.
                            want_logprobs = False
                            notes["logprobs"] = ("the model refused logprobs; retried without, so its tokens "
                                                 "carry no probabilities")
                            continue
                        raise error
                    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                    if content_type != "text/event-stream":
                        env = self._spec.base_url_env or "the spec's base_url"
                        raise ProtocolError(
                            f"{who}: expected an event stream from {self.url}, got "
                            f"{content_type or 'no content type'}: point {env} at an OpenAI-compatible "
                            "/v1 endpoint")
                    parser = ChunkParser(request.top_k, self._spec.vocab_size, who=who, secret=self._api_key)
                    bound(response, who=who, max_line_bytes=self.max_line_bytes,
                          max_stream_bytes=self.max_stream_bytes)
                    async with aclosing(source.aiter_sse()) as events:
                        async for event in events:
                            if event.event == "error":
                                raise stream_error(event.data, who=who, secret=self._api_key)
                            for token in parser.feed(event.data):
                                yield token
                            if parser.done:
                                break
                    if not parser.done and parser.finish_reason is None:
                        raise ServerError(f"{who}: the stream from {self._base_url} ended before the "
                                          "answer was complete; retry")
                # Outside the block: a consumer that keeps the generator after the end holds no
                # connection.
                end = parser.completion(_prompt_chars(request))
                end.extra.update(notes)
                yield end
                return
        except (httpx.HTTPError, SSEError) as exc:
            raise transport_error(exc, who=who, base_url=self._base_url,
                                  unreachable=f"is the server running? {self._where()}") from exc

    async def _error_body(self, response: httpx.Response) -> bytes:
        """The start of an error body (enough for its message), never more than a line's cap."""
        body = bytearray()
        async with aclosing(_chunks(response)) as chunks:
            async for chunk in chunks:
                body += chunk[: self.max_line_bytes - len(body)]
                if len(body) >= self.max_line_bytes:
                    break
        return bytes(body)



def _chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    # aiter_bytes is an async generator (typed as an iterator): closing it at once on an early
    # exit, not at garbage collection, keeps the response's close on this task.
    return cast(AsyncGenerator[bytes, None], response.aiter_bytes())


def _prompt_chars(request: GenerationRequest) -> int:
    return len(request.system or "") + len(request.user_content()) + len(request.prefix)
