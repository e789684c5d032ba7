"""Options of a run, validated. Unknown fields are rejected so a typo never passes silently."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.providers.effort import LEVELS, normalize
from ensemble_nb.core.registry import DEFAULT_MODELS

SynthesisStrategy = Literal["best_confidence", "vote", "span_merge", "llm"]


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = DEFAULT_MODELS
    max_tokens: int = Field(default=48, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=5, ge=0, le=20, description="alternatives shown per token")
    timeout: float | None = Field(default=120.0, gt=0, description="seconds per model")
    budget: float = Field(default=0.25, ge=0.0, le=10.0, description="extra cost/time allowed, 0.25 = +25 %")
    system: str | None = None
    seed: int = 0
    synthesis: SynthesisStrategy = "best_confidence"
    retry_below: float | None = Field(
        default=None, ge=0.0, le=1.0, description="retry spans whose confidence is below this (None = never)")
    retry_max: int = Field(default=3, ge=0, le=100, description="at most this many automatic span retries per run")
    retry_max_tokens: int = Field(default=256, ge=1, description="token budget of the automatic retries of a run")
    retry_samples: int = Field(
        default=2, ge=0, le=8, description="sampled attempts by the span's own model per retry (besides other members)")
    orchestrate: bool | None = Field(
        default=None, description="let the policy pick members among the models (None: unless they were listed)")
    policy: str = Field(default="budget", min_length=1,
                        description="orchestrator policy: 'budget', 'all' or a name given to register_policy")
    reasoning_effort: str | None = Field(
        default=None, description="none, minimal, low, medium, high or a number of thinking tokens (None: each "
                                  "model's default); a plan's per-model effort wins")

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, v: object) -> object:
        if isinstance(v, str):
            v = [m for m in v.replace(",", " ").split() if m]
        if isinstance(v, list | tuple) and not v:
            raise ValueError("give at least one model")
        return v

    @field_validator("reasoning_effort", mode="before")
    @classmethod
    def _effort(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # a token budget given as a number
        if not isinstance(v, str):
            return v  # None, or a wrong type pydantic reports itself
        try:
            level = normalize(v)
        except UserError:
            raise ValueError(f"use one of {', '.join(LEVELS)} or a number of thinking tokens") from None
        return None if level is None else str(level)


def make_options(**kwargs: object) -> RunOptions:
    """Build :class:`RunOptions`, turning validation errors into one-line :class:`UserError`."""
    try:
        return RunOptions.model_validate(kwargs)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "options"
    if err["type"] == "extra_forbidden":
        known = ", ".join(RunOptions.model_fields)
        return f"unknown option '{where}': known options are {known}"
    return f"bad value for '{where}': {err['msg']} (got {err.get('input')!r})"
