"""The text of ``%ensemble list`` and ``%ensemble config``.

API keys: only the *name* of a key's variable and whether it is set are ever shown. Base URLs
taken from the environment are not shown either (they may carry credentials), only their
variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ensemble_nb.magics.config import RUN_FIELDS, Ensemble

if TYPE_CHECKING:
    from ensemble_nb.core.registry import ModelSpec


def model_table(settings: Ensemble) -> str:
    from ensemble_nb.core.errors import UserError
    from ensemble_nb.core.options import RunOptions
    from ensemble_nb.core.providers.scripts import SCRIPTS
    from ensemble_nb.core.registry import ENDPOINTS, known_ids, resolve

    defaults = tuple(settings.models) if settings.models is not None else RunOptions().models
    ids = [*known_ids(), *(f"scripted:{name}" for name in SCRIPTS), *defaults]
    rows = [("model", "provider", "API key", "token probs", "ready")]
    for model in dict.fromkeys(ids):
        mark = "* " if model in defaults else "  "
        try:
            spec = resolve(model)
        except UserError as exc:
            rows.append((mark + model, "?", "", "", f"no: {exc}"))
            continue
        provider: str = spec.provider
        if provider == "openai":
            provider = f"openai-compatible ({model.split(':', 1)[0]})"
        rows.append((mark + model, provider, _key_state(spec.api_key_env, spec.api_key_required),
                     "yes" if spec.logprobs else "no", _readiness(spec)))
    lines = [_table(rows), "* = run by default (Ensemble.models)", "",
             "Any model of an OpenAI-compatible endpoint, as PROVIDER:MODEL:"]
    endpoint_rows = [("provider", "default URL", "URL override", "API key")]
    for name, ep in ENDPOINTS.items():
        override = f"{ep.base_url_env} ({'set' if os.environ.get(ep.base_url_env) else 'not set'})"
        endpoint_rows.append((f"{name}:MODEL", ep.base_url, override,
                              _key_state(ep.api_key_env, ep.api_key_required)))
    lines.append(_table(endpoint_rows))
    return "\n".join(lines) + "\n"


def _key_state(env: str | None, required: bool) -> str:
    if env is None:
        return "none needed"
    state = "set" if os.environ.get(env) else "not set"
    return f"{env} {state}" + ("" if required else " (optional)")


def _readiness(spec: ModelSpec) -> str:
    """Whether a run would accept the model, judged by the same checks a run makes."""
    from ensemble_nb.core.api import prepare
    from ensemble_nb.core.errors import UserError

    try:
        prepare("ping", models=[spec.id])  # validates only: nothing is loaded or called
    except UserError as exc:
        if spec.api_key_required and not spec.has_credentials():
            return f"no: export {spec.api_key_env}"
        if spec.provider == "llama_cpp":
            return "no: pip install 'ensemble_nb[local]'"
        return f"no: {exc}"
    return "yes (local)" if spec.provider == "llama_cpp" else "yes"


def config_table(settings: Ensemble, blocking_reason: str | None) -> str:
    from ensemble_nb.core.options import RunOptions

    core = RunOptions()
    configured = settings.run_settings()
    rows = [("setting", "value", "from")]
    for name in RUN_FIELDS:
        value = configured.get(name, getattr(core, name))
        source = f"%config Ensemble.{name}" if name in configured else "built-in default"
        if name == "timeout" and value in (0, None):
            value = "no limit"
        rows.append((name, _show(value), source))
    for name in ("out", "quiet", "block"):
        value = getattr(settings, name)
        default = Ensemble.class_traits()[name].default_value
        shown = "auto" if name == "block" and value is None else _show(value)
        rows.append((name, shown, "built-in default" if value == default else f"%config Ensemble.{name}"))
    mode = ("in the background with a live view" if blocking_reason is None
            else f"blocking, printed as text ({blocking_reason})")
    return _table(rows) + f"\nA %%ensemble cell here runs {mode}.\n"


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return repr(value) if isinstance(value, str) else str(value)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
