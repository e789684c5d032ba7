"""Bad input gives one actionable line and no traceback: cases not already in test_run/test_cli."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from ensemble_nb.core import ModelFailed, UserError, prepare
from ensemble_nb.core.providers.retrying import RetryPolicy


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": -0.5}, "bad value for 'budget': Input should be greater than or equal to 0 (got -0.5)"),
    ({"budget": "lots"}, "bad value for 'budget'"),
    ({"budget": 11}, "bad value for 'budget': Input should be less than or equal to 10"),
    ({"temperature": 3.0}, "bad value for 'temperature'"),
    ({"top_k": 50}, "bad value for 'top_k'"),
    ({"top_p": 0}, "bad value for 'top_p'"),
    ({"timeout": 0}, "bad value for 'timeout'"),
    ({"synthesis": "magic"}, "bad value for 'synthesis'"),
    ({"retry_below": 2}, "bad value for 'retry_below'"),
    ({"policy": ""}, "bad value for 'policy'"),
    ({"max_tokens": "many"}, "bad value for 'max_tokens'"),
    ({"budgett": 1}, "unknown option 'budgett': known options are"),
    ({"models": "scripted:nope"}, "unknown scripted model 'nope': choose one of"),
    ({"models": "openai:"}, "unknown model 'openai:'"),
    ({"models": "opnai:gpt-4o-mini"}, "unknown model 'opnai:gpt-4o-mini': use one of"),
    ({"models": ["scripted:sure", 7]}, "bad value for 'models.1'"),
])
def test_bad_option_is_one_actionable_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as info:
        prepare("q", **kwargs)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text and "Traceback" not in text and "pydantic" not in text


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompts_are_refused(prompt: str) -> None:
    with pytest.raises(UserError, match="the prompt is empty: write a question"):
        prepare(prompt, models="scripted:sure")


def test_invalid_retry_policy_is_rejected() -> None:
    for bad in ({"max_attempts": 0}, {"jitter": 1.5}, {"base_delay": -1}, {"retries": 3}):
        with pytest.raises(ValidationError):
            RetryPolicy(**bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run([sys.executable, "-m", "ensemble_nb", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "-1", "q"], "error: bad value for 'timeout': Input should be greater than 0 (got -1.0)"),
    (["--temperature", "5", "q"], "error: bad value for 'temperature'"),
    (["--top-k", "99", "q"], "error: bad value for 'top_k'"),
    (["--max-tokens", "-3", "q"], "error: bad value for 'max_tokens'"),
    (["--models", "", "q"], "error: bad value for 'models': Value error, give at least one model"),
    (["--models", "scripted:nope", "q"], "error: unknown scripted model 'nope'"),
    (["--models", "scripted:sure", "   "], "error: the prompt is empty"),
    (["--models", "scripted:sure"], "error: the prompt is empty"),
    (["--temperature", "hot", "q"], "error: argument --temperature: invalid float value: 'hot'"),
])
def test_cli_bad_input_is_one_line(args: list[str], message: str) -> None:
    out = _cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(message), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr + out.stdout and out.stdout == ""


LONG_PROMPT = "Summarize this: " + "the quick brown fox jumps over the lazy dog " * 300  # ~2700 tokens


@pytest.mark.local
async def test_prompt_over_the_context_is_a_clear_failure() -> None:
    pytest.importorskip("llama_cpp")
    result = await prepare(LONG_PROMPT, models="smollm2", max_tokens=8)
    end = result.models["smollm2"].end
    assert isinstance(end, ModelFailed) and end.error_kind == "context_too_long"
    assert "context holds 2048" in end.error and "shorten the prompt" in end.error
    assert result.status == "failed"


@pytest.mark.local
def test_cli_prompt_over_the_context_is_one_failure_line() -> None:
    pytest.importorskip("llama_cpp")
    out = _cli("--models", "smollm2,scripted:sure", LONG_PROMPT)
    assert out.returncode == 0, out.stderr  # the scripted member still answers
    failures = [line for line in out.stdout.splitlines() if line.startswith("[smollm2] failed")]
    assert len(failures) == 1 and "context holds 2048" in failures[0], out.stdout
    assert "Traceback" not in out.stdout + out.stderr
