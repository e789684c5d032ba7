"""The CLI as a user runs it: output, exit codes, one-line errors with no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ensemble_nb", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_scripted_run_prints_answers_entropy_and_synthesis() -> None:
    out = _cli("--models", "scripted:sure,scripted:unsure", "What is the capital of France?")
    assert out.returncode == 0, out.stderr
    assert "[scripted:sure] The capital of France is Paris." in out.stdout
    assert "mean entropy: 0.176 nats" in out.stdout
    assert "== synthesis ==" in out.stdout
    assert "'The capital of France is Paris.' from scripted:sure" in out.stdout


def test_json_mode_prints_one_event_per_line() -> None:
    out = _cli("--json", "--models", "scripted:sure", "q")
    kinds = [json.loads(line)["kind"] for line in out.stdout.splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("token_received") == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "gpt-9", "q"], "error: unknown model 'gpt-9'"),
    (["--models", "openai:gpt-4o-mini", "q"], "error: model 'openai:gpt-4o-mini' needs the environment variable"),
    ([""], "error: the prompt is empty"),
    (["--frobnicate", "q"], "error: unrecognized arguments: --frobnicate"),
    (["--max-tokens", "zero", "q"], "error: argument --max-tokens: invalid int value"),
])
def test_bad_input_gives_one_line(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "ensemble_nb", *args], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 2
    assert out.stderr.startswith(message)
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr + out.stdout


def test_unreachable_base_url_is_one_line_and_the_run_ends() -> None:
    out = _cli("--models", "vllm:some-model,scripted:sure", "q", env={"VLLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert out.returncode == 0  # the scripted member still answers
    failure = [line for line in out.stdout.splitlines() if line.startswith("[vllm:some-model] failed")]
    assert len(failure) == 1 and "cannot reach http://127.0.0.1:9/v1" in failure[0]
    assert "VLLM_BASE_URL" in failure[0]
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.local
def test_default_cli_runs_both_embedded_models() -> None:
    out = _cli("What is the capital of France?")
    assert out.returncode == 0, out.stderr
    for model in ("smollm2", "gemma3"):
        line = next(i for i, text in enumerate(out.stdout.splitlines()) if text.startswith(f"{model} [finished"))
        answer, entropy = out.stdout.splitlines()[line + 1: line + 3]
        assert answer.startswith("  answer: ") and len(answer) > len("  answer: ''")
        assert entropy.startswith("  mean entropy: ") and "nats" in entropy
    assert "== synthesis ==" in out.stdout


def test_effort_flag_is_validated_and_reaches_the_run() -> None:
    out = _cli("--effort", "turbo", "--models", "scripted:sure", "q")
    assert out.returncode == 2 and out.stderr.startswith("error: bad value for 'reasoning_effort'")
    assert len(out.stderr.strip().splitlines()) == 1
    out = _cli("--effort", "low", "--json", "--models", "scripted:sure", "q")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["status"] == "ok"


def test_effort_flag_is_passed_as_the_reasoning_effort_option(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble_nb.cli as cli
    from ensemble_nb.core.errors import UserError

    seen: dict[str, object] = {}

    def fake_prepare(prompt: str, **kwargs: object) -> None:
        seen.update(kwargs)
        raise UserError("stop here")

    monkeypatch.setattr(cli, "prepare", fake_prepare)
    assert cli.main(["--effort", "medium", "q"]) == 2
    assert seen["reasoning_effort"] == "medium"
    seen.clear()
    assert cli.main(["q"]) == 2
    assert seen["reasoning_effort"] is None
