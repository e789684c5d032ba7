"""AWS Bedrock through the Converse Stream API, with boto3 (imported only when first needed).

boto3 is synchronous, so a worker thread reads the event stream and hands events to the loop.
Closing or cancelling the async stream sets a flag and closes the HTTP response, which unblocks
the thread and ends the generation. Converse returns no token probabilities: every token
carries ``entropy_kind == "none"``. A client can be injected (tests, custom sessions); any object
with boto3's ``converse_stream`` works, and its errors are read the way botocore shapes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import threading
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ContextTooLong,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    UserError,
)
from ensemble_nb.core.providers import effort
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.openai_wire import one_line
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Completion, StreamItem, Token, Usage

_CONTEXT_RE = re.compile(r"too long|too many (?:input )?tokens|context (?:length|window)", re.IGNORECASE)
_RETRYABLE = {"ServiceUnavailableException", "InternalServerException", "ModelNotReadyException",
              "ModelStreamErrorException", "ModelTimeoutException", "InternalFailure"}
_AUTH = {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
         "ExpiredToken", "InvalidSignatureException", "NoCredentialsError", "PartialCredentialsError"}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "content_filtered": "safety", "guardrail_intervened": "safety"}
_JOIN_TIMEOUT = 5.0


def converse_request(model: str, request: GenerationRequest, *, thinking_budget: int | None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": request.user_content()}]}]
    prefill = request.prefix.rstrip()  # as on Anthropic's own API, no trailing whitespace
    if prefill:
        messages.append({"role": "assistant", "content": [{"text": prefill}]})
        thinking_budget = None
    config: dict[str, Any] = {"maxTokens": request.max_tokens}
    kwargs: dict[str, Any] = {"modelId": model, "messages": messages, "inferenceConfig": config}
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.system:
        kwargs["system"] = [{"text": request.system}]
    if thinking_budget and "anthropic" in model:
        # Only Claude models take a thinking budget; it counts against maxTokens.
        kwargs["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": thinking_budget}}
        config["maxTokens"] = request.max_tokens + thinking_budget
    else:
        config["temperature"] = min(request.temperature, 1.0)
        if request.top_p < 1.0:
            config["topP"] = request.top_p
    return kwargs


def bedrock_error(exc: BaseException, *, who: str) -> ProviderError:
    """botocore's errors (ClientError, credential and connection errors) as the project's."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, Mapping) else {}
    return mapped_error(str(error.get("Code") or type(exc).__name__), str(error.get("Message") or exc), who=who)


def mapped_error(code: str, message: str, *, who: str) -> ProviderError:
    detail = one_line(message)
    said = f"({code}: {detail})"
    if code == "ThrottlingException":
        return RateLimited(f"{who}: Bedrock is throttling {said}; retry later or request a quota increase",
                           status=429)
    if code in _RETRYABLE:
        return ServerError(f"{who}: Bedrock server error {said}; retry later")
    if code in _AUTH:
        return AuthError(f"{who}: AWS refused the credentials {said}; check AWS_PROFILE or `aws configure`, "
                         "and that the model is enabled in the Bedrock console for this region")
    if code == "ValidationException" and _CONTEXT_RE.search(detail):
        return ContextTooLong(f"{who}: the prompt does not fit the model's context {said}; shorten the "
                              "prompt or the retrieved passages")
    if code == "ResourceNotFoundException":
        return BadRequest(f"{who}: Bedrock does not know this model here {said}; check the model id and "
                          "AWS_REGION")
    if code in ("EndpointConnectionError", "ConnectionClosedError"):
        return ConnectError(f"{who}: cannot reach Bedrock {said}; check the network and AWS_REGION")
    if code in ("ReadTimeoutError", "ConnectTimeoutError"):
        return ProviderTimeout(f"{who}: Bedrock sent nothing for too long {said}; retry")
    return BadRequest(f"{who}: Bedrock rejected the request {said}")


class BedrockProvider:
    """Streams one ``converse_stream`` call per :meth:`stream` call on a worker thread."""

    def __init__(self, spec: ModelSpec, client: Any | None = None, *, region: str | None = None) -> None:
        self._spec = spec
        self._client = client
        self._region = region
        self.active_workers = 0
        self._lock = threading.Lock()  # the count changes on worker threads

    @property
    def model_id(self) -> str:
        return self._spec.id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=False, max_top_k=0, full_vocab_entropy=False, prefix=True,
                            vocab_size=self._spec.vocab_size)

    def _bedrock(self) -> Any:
        if self._client is None:
            try:
                import boto3  # type: ignore[import-not-found,import-untyped,unused-ignore]
            except ImportError as exc:
                raise UserError(f"model '{self._spec.id}' runs on AWS Bedrock and needs boto3: "
                                "pip install boto3") from exc
            kwargs: dict[str, Any] = {}
            region = self._region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:
                kwargs["region_name"] = region
            if self._spec.resolved_base_url():
                kwargs["endpoint_url"] = self._spec.resolved_base_url()
            self._client = boto3.client("bedrock-runtime", **kwargs)
        return self._client

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        who = self._spec.id
        budget = effort.anthropic_budget(request.reasoning_effort or self._spec.reasoning_effort)
        kwargs = converse_request(self._spec.model or who, request, thinking_budget=budget)
        client = self._bedrock()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        held: dict[str, Any] = {}

        def post(kind: str, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def work() -> None:
            try:
                held["stream"] = events = client.converse_stream(**kwargs)["stream"]
                for event in events:
                    if stop.is_set():
                        break
                    post("event", event)
                post("end", None)
            except Exception as exc:  # handed to the consumer, which raises the mapped error
                post("error", exc)
            finally:
                _close(held.get("stream"))
                with self._lock:
                    self.active_workers -= 1

        with self._lock:
            self.active_workers += 1
        worker = threading.Thread(target=work, name=f"bedrock-{who}", daemon=True)
        worker.start()
        state = _State()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise bedrock_error(value, who=who)
                if kind == "end":
                    break
                token = state.feed(value, who)
                if token is not None:
                    yield token
            yield state.completion(len(request.system or "") + len(request.user_content()))
        finally:
            stop.set()
            _close(held.get("stream"))  # unblocks a thread waiting on the network
            await asyncio.shield(asyncio.to_thread(worker.join, _JOIN_TIMEOUT))

    async def aclose(self) -> None:
        return None  # boto3 clients hold no connection between calls worth closing


class _State:
    def __init__(self) -> None:
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.tokens = 0
        self.reasoning_chars = 0

    def feed(self, event: Mapping[str, Any], who: str) -> Token | None:
        for key, body in event.items():
            if key.endswith("Exception"):  # in-stream errors arrive as events
                raise mapped_error(key[0].upper() + key[1:], str(body.get("message") or key), who=who)
        if "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta") or {}
            if "reasoningContent" in delta:
                self.reasoning_chars += len(str(delta["reasoningContent"].get("text") or ""))
            elif delta.get("text"):
                self.tokens += 1
                return Token(str(delta["text"]))
        elif "messageStop" in event:
            self.stop_reason = str(event["messageStop"].get("stopReason") or "end_turn")
        elif "metadata" in event:
            usage = event["metadata"].get("usage") or {}
            self.usage = Usage(int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0))
        return None

    def completion(self, prompt_chars: int) -> Completion:
        raw = self.stop_reason or "end_turn"
        extra = {} if raw in ("end_turn", "stop_sequence", "max_tokens") else {"finish_reason": raw}
        if self.reasoning_chars:
            extra["thinking_chars"] = str(self.reasoning_chars)
        usage = self.usage
        if usage is None:
            extra["usage"] = "estimated"
            usage = Usage(math.ceil(prompt_chars / 4), self.tokens)
        return Completion(_FINISH.get(raw, "stop"), usage, extra)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # closing twice, or a half-open socket
            close()
