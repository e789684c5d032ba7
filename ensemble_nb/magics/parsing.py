"""The ``%%ensemble`` options line and the ``{name}`` prompt template.

Imported on a magic's first use, not at ``%load_ext``: pydantic is too heavy for loading.
"""

from __future__ import annotations

import difflib
import keyword
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ensemble_nb.magics.config import RUN_FIELDS


class OptionsError(ValueError):
    """A bad options line or prompt; the message is one line that says what to do."""


class MagicOptions(BaseModel):
    """What a cell's flags set; ``None`` means "not given", so config and core defaults apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    timeout: float | None = None
    budget: float | None = None
    system: str | None = None
    seed: int | None = None
    synthesis: str | None = None
    retry_below: float | None = None
    effort: str | None = None
    rag: str | None = None
    out: str | None = None
    block: bool | None = None
    quiet: bool | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, v: object) -> object:
        if isinstance(v, str):
            v = tuple(m for m in v.replace(",", " ").split() if m)
            if not v:
                raise ValueError("give at least one model id")
        return v

    @field_validator("timeout", mode="before")
    @classmethod
    def _no_limit(cls, v: object) -> object:
        # A flag value is a string; "none"/"off" read better than 0 for "no limit".
        return 0.0 if isinstance(v, str) and v.strip().lower() in ("none", "off", "no") else v

    @field_validator("out")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        if v is not None and (not v.isidentifier() or keyword.iskeyword(v)):
            raise ValueError("must be a Python variable name")
        return v

    def run_settings(self) -> dict[str, Any]:
        """The run options the flags set (under the run option's name: ``--effort`` is
        ``reasoning_effort``)."""
        settings = {name: getattr(self, name) for name in RUN_FIELDS if getattr(self, name) is not None}
        for name, option in _RUN_OPTION.items():
            if getattr(self, name) is not None:
                settings[option] = getattr(self, name)
        return settings


# Flags whose run option has another name; validated by RunOptions with the rest.
_RUN_OPTION = {"effort": "reasoning_effort"}
_FLAG_OF = {option: name for name, option in _RUN_OPTION.items()}


_SWITCHES = frozenset(name for name, f in MagicOptions.model_fields.items() if f.annotation == bool | None)


def flag(name: str) -> str:
    """The flag of a MagicOptions field or of the run option it sets."""
    return "--" + _FLAG_OF.get(name, name).replace("_", "-")


def parse_options(line: str, namespace: Mapping[str, Any]) -> MagicOptions:
    """Read the options line: shell-style quoting, ``--name value`` or ``--name=value``; values
    may use ``{name}`` like the prompt does."""
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise OptionsError(f"cannot read the options line ({exc}): check the quotes") from None
    raw: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or len(token) == 2:
            raise OptionsError(f"unexpected {token!r} in the options line: options look like --name value, "
                               "and the prompt goes in the cell body below %%ensemble")
        name, has_value, value = token[2:].partition("=")
        key = name.replace("-", "_")
        enabled = True
        if key.startswith("no_") and key[3:] in _SWITCHES:
            key, enabled = key[3:], False
        if key in raw:
            raise OptionsError(f"{flag(key)} is given twice")
        if has_value:
            raw[key] = fill_template(value, namespace)
        elif key in _SWITCHES:
            raw[key] = enabled
        elif i < len(tokens) and not _is_flag(tokens[i]):
            raw[key] = fill_template(tokens[i], namespace)
            i += 1
        elif key in MagicOptions.model_fields:
            raise OptionsError(f"{flag(key)} needs a value, e.g. {flag(key)}=...")
        else:
            raw[key] = True  # unknown and valueless: rejected below with a suggestion
    try:
        return MagicOptions.model_validate(raw)
    except ValidationError as exc:
        raise OptionsError(describe(exc, flag)) from None


def _is_flag(token: str) -> bool:
    name = token[2:].partition("=")[0].replace("-", "_")
    known = name in MagicOptions.model_fields or name.removeprefix("no_") in _SWITCHES
    return token.startswith("--") and known


def describe(exc: ValidationError, where: Callable[[str], str]) -> str:
    """One line for the first validation error; ``where(field)`` names the field for the user."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "options"
    if err["type"] == "extra_forbidden":
        guess = difflib.get_close_matches(name, list(MagicOptions.model_fields), n=1)
        hint = f"did you mean {flag(guess[0])}? " if guess else ""
        return f"unknown option {flag(name)}: {hint}see %ensemble help for the options"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"bad value for {where(name)}: {message} (got {err.get('input')!r})"


# {{name}} (an escape, kept as the literal {name}) or {name} / {name.attr.attr}.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FIELD = re.compile(r"\{\{(" + _NAME + r")\}\}|\{(" + _NAME + r")\}")


def fill_template(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` / ``{name.attr}`` by the variable's value when it resolves.

    Unlike ``str.format`` nothing else is touched, so JSON (``{"a": {"b": 1}}``) and code
    (``return {x: 1}``) survive as written; only ``{{name}}`` is an escape (for a literal
    ``{name}`` whose name exists).
    """

    def replace(match: re.Match[str]) -> str:
        escaped, dotted = match.group(1), match.group(2)
        if escaped is not None:
            return "{" + escaped + "}"
        root, *attrs = dotted.split(".")
        if root not in namespace:
            return match.group(0)
        value = namespace[root]
        for attr in attrs:
            try:
                value = getattr(value, attr)
            except AttributeError:
                return match.group(0)
        return str(value)

    return _FIELD.sub(replace, text)
