"""Streaming one member: provider items in, events out, and exactly one end event.

Besides the run's overall ``timeout`` a member may have orchestrator deadlines: one for its
first token and one for the longest silence between tokens. Whichever is due first is armed on
a single ``asyncio.timeout`` and moved after every token; the one that fires is reported as the
``timeout`` of ``ModelTimedOut``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
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
from ensemble_nb.core.orchestrator.budget import request_prompt_tokens
from ensemble_nb.core.orchestrator.deadlines import Deadlines
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Completion, Token, Usage

Emit = Callable[[Event], None]

# Completion.extra keys whose values are sentences for the user, shown first; other values are
# shown only when they read as text (a space in them) and the key is not a header's or an id's.
_NOTE_KEYS = ("note", "safety", "logprobs")
_NOT_NOTES = ("header", "request_id", "request-id", "retry", "date", "server", "trace")


def completion_notes(extra: Mapping[str, str]) -> tuple[str, ...]:
    """The human-readable remarks in a Completion's ``extra``, redacted, in a stable order.

    Machine values (``usage: estimated``, a raw finish reason, character counts) and anything
    that looks like an HTTP header (``x-…``, ids, dates) are left out.
    """
    keys = [k for k in _NOTE_KEYS if k in extra] + [k for k in extra if k not in _NOTE_KEYS]
    notes: list[str] = []
    for key in keys:
        value = extra[key]
        if not isinstance(value, str) or not value.strip():
            continue
        lowered = key.lower()
        if key not in _NOTE_KEYS and (lowered.startswith("x-") or any(w in lowered for w in _NOT_NOTES)
                                      or " " not in value.strip()):
            continue
        note = redact(" ".join(value.split()))
        if note not in notes:
            notes.append(note)
    return tuple(notes)


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
        self._error: BaseException | None = None

    @property
    def model(self) -> str:
        return self.spec.id

    # The timeout is one of the deadlines armed together on one asyncio.timeout below.
    async def run(self, request: GenerationRequest, timeout: float | None, emit: Emit,  # noqa: ASYNC109
                  run_cancelled: Callable[[], bool], deadlines: Deadlines | None = None) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        start_at = loop.time()
        ttft: float | None = None
        usage: Usage | None = None
        finish = "stop"
        notes: tuple[str, ...] = ()
        armed: float | None = timeout
        dl = deadlines or Deadlines()
        emit(ModelStarted(run_id=self.run_id, t=self.clock(), model=self.model))

        def rearm(cm: asyncio.Timeout) -> None:
            # The earliest of: the overall timeout, the first-token or else the stall deadline.
            nonlocal armed
            now = loop.time()
            due: list[tuple[float, float]] = []
            if timeout is not None:
                due.append((start_at + timeout, timeout))
            if ttft is None and dl.first_token is not None:
                due.append((start_at + dl.first_token, dl.first_token))
            elif ttft is not None and dl.stall is not None:
                due.append((now + dl.stall, dl.stall))
            when, armed = min(due) if due else (None, timeout)
            cm.reschedule(when)

        def end_fields() -> dict[str, object]:
            # Without the provider's count, the prompt is estimated: a request that reached the
            # provider (it answered, or was cut in flight) is billed for its prompt.
            billed = ttft is not None or (self._error is None and self.provider is not None)
            u = usage or Usage(request_prompt_tokens(request) if billed else 0, len(self.texts))
            return dict(run_id=self.run_id, t=self.clock(), model=self.model, text="".join(self.texts),
                        n_tokens=len(self.texts), usage=u, ttft=ttft, duration=time.monotonic() - started,
                        cost=self.spec.cost(u.prompt_tokens, u.completion_tokens))

        try:
            self.provider = self.factory(self.spec)
            async with asyncio.timeout(None) as cm, aclosing(self.provider.stream(request)) as stream:
                rearm(cm)
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
                        rearm(cm)
                    elif isinstance(item, Completion):
                        usage, finish = item.usage, item.finish_reason
                        notes = completion_notes(item.extra)
            emit(ModelFinished(**end_fields(), finish_reason=finish, notes=notes))  # type: ignore[arg-type]
        except TimeoutError:
            emit(ModelTimedOut(**end_fields(), timeout=armed or 0.0))  # type: ignore[arg-type]
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
            self._error = exc
            emit(ModelFailed(**end_fields(), error=str(exc),  # type: ignore[arg-type]
                             error_kind=getattr(exc, "kind", "user_error")))
        except Exception as exc:  # a bug in a provider must not take the other members down
            self._error = exc
            emit(ModelFailed(**end_fields(), error=redact(f"{type(exc).__name__}: {exc}"),  # type: ignore[arg-type]
                             error_kind="internal"))
        finally:
            self.ended = True
