"""Streaming one member: provider items in, events out, and exactly one end event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing

from ensemble_nb.core.errors import ProviderError, UserError, redact
from ensemble_nb.core.events import (
    Event,
    ModelCancelled,
    ModelFailed,
    ModelFinished,
    ModelStarted,
    ModelTimedOut,
    TokenReceived,
)
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Completion, Token, Usage

Emit = Callable[[Event], None]


class Member:
    """One model of a run. ``cancel_reason`` is set by whoever cancels its task on purpose."""

    def __init__(self, spec: ModelSpec, factory: Callable[[ModelSpec], Provider], run_id: str,
                 clock: Callable[[], float]) -> None:
        self.spec = spec
        self.factory = factory
        self.provider: Provider | None = None
        self.run_id = run_id
        self.clock = clock
        self.cancel_reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.texts: list[str] = []
        self.ended = False

    @property
    def model(self) -> str:
        return self.spec.id

    async def run(self, request: GenerationRequest, timeout: float | None, emit: Emit,
                  run_cancelled: Callable[[], bool]) -> None:
        started = time.monotonic()
        ttft: float | None = None
        usage: Usage | None = None
        finish = "stop"
        emit(ModelStarted(run_id=self.run_id, t=self.clock(), model=self.model))

        def end_fields() -> dict[str, object]:
            u = usage or Usage(0, len(self.texts))
            return dict(run_id=self.run_id, t=self.clock(), model=self.model, text="".join(self.texts),
                        n_tokens=len(self.texts), usage=u, ttft=ttft, duration=time.monotonic() - started,
                        cost=self.spec.cost(u.prompt_tokens, u.completion_tokens))

        try:
            self.provider = self.factory(self.spec)
            async with asyncio.timeout(timeout), aclosing(self.provider.stream(request)) as stream:
                async for item in stream:
                    if isinstance(item, Token):
                        if ttft is None:
                            ttft = time.monotonic() - started
                        emit(TokenReceived(
                            run_id=self.run_id, t=self.clock(), model=self.model, index=len(self.texts),
                            text=item.text, logprob=item.logprob, entropy=item.entropy,
                            entropy_kind=item.entropy_kind, alternatives=item.alternatives, bounds=item.bounds,
                        ))
                        self.texts.append(item.text)
                    elif isinstance(item, Completion):
                        usage, finish = item.usage, item.finish_reason
            emit(ModelFinished(**end_fields(), finish_reason=finish))  # type: ignore[arg-type]
        except TimeoutError:
            emit(ModelTimedOut(**end_fields(), timeout=timeout or 0.0))  # type: ignore[arg-type]
        except asyncio.CancelledError:
            by_run = run_cancelled() or self.cancel_reason is None
            reason = "run" if by_run else self.cancel_reason
            emit(ModelCancelled(**end_fields(), reason=reason))  # type: ignore[arg-type]
            if by_run:
                raise
            # Cancelled on purpose, alone: the others go on, so the cancellation stops here.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except (ProviderError, UserError) as exc:
            emit(ModelFailed(**end_fields(), error=str(exc),
                             error_kind=getattr(exc, "kind", "user_error")))  # type: ignore[arg-type]
        except Exception as exc:  # a bug in a provider must not take the other members down
            emit(ModelFailed(**end_fields(), error=redact(f"{type(exc).__name__}: {exc}"),  # type: ignore[arg-type]
                             error_kind="internal"))
        finally:
            self.ended = True
