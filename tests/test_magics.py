"""``%%ensemble`` / ``%ensemble`` through a real IPython ``InteractiveShell``, on scripted models."""

from __future__ import annotations

import _thread
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.magics import Ensemble, EnsembleMagics
from ensemble_nb.magics.execution import blocking_reason

MODELS = "--models scripted:sure,scripted:unsure"
FAKE_KEY = "sk-test-DO-NOT-PRINT-0123456789abcdef"


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # keep the user's IPython history untouched
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "ensemble_nb")
    yield ip
    ip.run_line_magic("unload_ext", "ensemble_nb")


@pytest.fixture(autouse=True)
def fresh_settings(shell: InteractiveShell) -> Iterator[Ensemble]:
    settings = _settings(shell)
    yield settings
    for name, trait in settings.traits(config=True).items():
        setattr(settings, name, trait.default_value)
    shell.config.pop("Ensemble", None)  # %config also records values in the shell's config
    for name in [n for n in shell.user_ns if n.startswith(("_ensemble", "mine", "x", "cfg", "point"))]:
        shell.user_ns.pop(name)


def _settings(shell: InteractiveShell) -> Ensemble:
    found: list[Ensemble] = [c for c in shell.configurables if isinstance(c, Ensemble)]  # type: ignore[misc]
    return found[0]


def run_code(shell: InteractiveShell, code: str) -> ExecutionResult:
    result: ExecutionResult = shell.run_cell(code)  # type: ignore[no-untyped-call]
    return result


def _magics(shell: InteractiveShell) -> EnsembleMagics:
    magics = shell.magics_manager.registry["EnsembleMagics"]
    assert isinstance(magics, EnsembleMagics)
    return magics


def cell(shell: InteractiveShell, line: str, body: str = "What is the capital of France?") -> ExecutionResult:
    return run_code(shell, f"%%ensemble {line}\n{body}")


def one_line_error(capsys: pytest.CaptureFixture[str], result: ExecutionResult) -> str:
    captured = capsys.readouterr()
    assert not result.success
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.out + captured.err
    assert lines[0].startswith("UsageError: ")
    return lines[0].removeprefix("UsageError: ")


# -- options -----------------------------------------------------------------------------------
def test_options_with_quoting_reach_the_run(shell: InteractiveShell) -> None:
    shell.user_ns["x"] = "terse"
    result = cell(shell, """--models 'scripted:sure, scripted:unsure' --max-tokens=4 --temperature 0.5 """
                         """--system 'Be {x}; answer like {"a": 1}' --timeout none --top-k 3 --quiet""")
    assert result.success
    run = shell.user_ns["_ensemble"]
    assert isinstance(run, EnsembleRun)
    o = run.options
    assert o.models == ("scripted:sure", "scripted:unsure")
    assert (o.max_tokens, o.temperature, o.timeout, o.top_k) == (4, 0.5, None, 3)
    assert o.system == 'Be terse; answer like {"a": 1}'


@pytest.mark.parametrize(("line", "expected"), [
    ("--budgt 0.5", "unknown option --budgt: did you mean --budget?"),
    ("--frobnicate", "unknown option --frobnicate"),
    ("--budget lots", "bad value for --budget: Input should be a valid number"),
    ("--budget 50", "bad value for --budget: Input should be less than or equal to 10"),
    ("--max-tokens 0", "bad value for --max-tokens"),
    ("--max-tokens", "--max-tokens needs a value"),
    ("--models nope", "unknown model 'nope'"),
    ("--models scripted:nope", "unknown scripted model 'nope'"),
    ("--out 2x", "bad value for --out: must be a Python variable name"),
    ("--system 'unclosed", "cannot read the options line"),
    ("What is 2+2?", "unexpected 'What' in the options line"),
    ("--quiet --quiet", "--quiet is given twice"),
])
def test_bad_options_give_one_line(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                   line: str, expected: str) -> None:
    capsys.readouterr()
    message = one_line_error(capsys, cell(shell, f"{MODELS} {line}" if "--models" not in line else line))
    assert message.startswith(expected), message


def test_effort_flag_sets_the_runs_reasoning_effort(shell: InteractiveShell,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cell(shell, f"{MODELS} --effort High --quiet").success
    assert shell.user_ns["_ensemble"].options.reasoning_effort == "high"
    assert cell(shell, f"{MODELS} --effort=4096 --quiet").success
    assert shell.user_ns["_ensemble"].options.reasoning_effort == "4096"
    capsys.readouterr()
    message = one_line_error(capsys, cell(shell, f"{MODELS} --effort turbo"))
    assert message.startswith("bad value for --effort: use one of none, minimal, low"), message
    message = one_line_error(capsys, cell(shell, f"{MODELS} --efort low"))
    assert message.startswith("unknown option --efort: did you mean --effort?"), message


def test_empty_cell_and_unknown_subcommand(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert "the cell is empty" in one_line_error(capsys, cell(shell, MODELS, "   \n\n"))
    assert "unknown subcommand 'frob'" in one_line_error(capsys, run_code(shell, "%ensemble frob"))


def test_missing_key_is_one_line(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    capsys.readouterr()
    message = one_line_error(capsys, cell(shell, "--models openai:gpt-4o-mini"))
    assert "needs the environment variable OPENAI_API_KEY" in message


def test_rag_retrieves_from_a_variable_or_a_path(shell: InteractiveShell, tmp_path: Path) -> None:
    shell.user_ns["notes"] = ["Tungsten has the symbol W.", "Iron has the symbol Fe.", "Gold is Au."]
    assert cell(shell, f"{MODELS} --rag notes", "Which element has the symbol W?").success
    result = shell.user_ns["_ensemble"].result
    assert result.passages and result.passages[0].text == "Tungsten has the symbol W."
    (tmp_path / "doc.md").write_text("Oxygen was discovered by Carl Wilhelm Scheele.")
    assert cell(shell, f"{MODELS} --rag {tmp_path}", "Who discovered oxygen?").success
    assert "Scheele" in shell.user_ns["_ensemble"].result.passages[0].text


def test_unreadable_rag_path_is_one_line(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    message = one_line_error(capsys, cell(shell, f"{MODELS} --rag /no/such/folder"))
    assert "/no/such/folder" in message


# -- the prompt template -----------------------------------------------------------------------
class Point:
    x = 3


def test_names_are_filled_and_other_braces_survive(shell: InteractiveShell) -> None:
    shell.user_ns.update(x="Paris", point=Point())
    body = ('About {x} ({point.x}): return JSON like {"a": {"b": [1, 2]}}.\n'
            "def f(): return {x: 1}\n"
            "{missing} {point.nope} {{x}} f\"{x!r}\" {x:>3}")
    assert cell(shell, MODELS, body).success
    assert shell.user_ns["_ensemble"].prompt == (
        'About Paris (3): return JSON like {"a": {"b": [1, 2]}}.\n'
        "def f(): return {x: 1}\n"
        "{missing} {point.nope} {x} f\"{x!r}\" {x:>3}")


# -- config --------------------------------------------------------------------------------------
def test_config_magic_sets_defaults_and_flags_win(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("config", "Ensemble.models = ['scripted:unsure', 'scripted:sure']")
    shell.run_line_magic("config", "Ensemble.max_tokens = 3")
    shell.run_line_magic("config", "Ensemble.out = 'cfg_run'")
    assert cell(shell, "").success
    run = shell.user_ns["cfg_run"]
    assert run.options.models == ("scripted:unsure", "scripted:sure")
    assert run.options.max_tokens == 3
    assert cell(shell, "--max-tokens 5 --models scripted:sure").success
    assert shell.user_ns["cfg_run"].options.max_tokens == 5
    capsys.readouterr()
    shell.run_line_magic("ensemble", "config")
    shown = capsys.readouterr().out
    assert "max_tokens   3" in shown and "%config Ensemble.max_tokens" in shown
    assert "blocking, printed as text (no Jupyter kernel" in shown


def test_a_bad_config_value_is_named_as_config(shell: InteractiveShell,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("config", "Ensemble.budget = 99.0")
    capsys.readouterr()
    message = one_line_error(capsys, cell(shell, MODELS))
    assert message.startswith("bad value for Ensemble.budget:")


def test_ipython_config_file_sets_defaults(tmp_path: Path) -> None:
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text("c.Ensemble.max_tokens = 64\nc.Ensemble.block = True\n")
    code = "%load_ext ensemble_nb\n%ensemble config\n"
    out = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--HistoryManager.hist_file=:memory:",
                          "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "IPYTHONDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.strip()}
    assert rows["max_tokens"] == ["64", "%config", "Ensemble.max_tokens"]
    assert rows["block"] == ["True", "%config", "Ensemble.block"]
    assert "runs blocking, printed as text (asked to block)" in out.stdout


# -- %ensemble list --------------------------------------------------------------------------
def test_list_shows_key_presence_never_values(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("VLLM_BASE_URL", "http://user:hunter2-password@10.0.0.1/v1")
    capsys.readouterr()
    shell.run_line_magic("ensemble", "list")
    out = capsys.readouterr().out
    assert FAKE_KEY not in out and "hunter2" not in out
    row = next(line for line in out.splitlines() if "openai:gpt-4o-mini" in line)
    assert "OPENAI_API_KEY set" in row and "yes" in row.split()
    assert "OPENROUTER_API_KEY not set" in out
    for model in ("smollm2", "gemma3", "scripted:sure", "scripted:slow"):
        assert any(model in line.split()[:2] for line in out.splitlines()), model
    assert "VLLM_BASE_URL (set)" in out


def test_a_key_never_shows_in_a_failed_run(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    capsys.readouterr()
    assert cell(shell, "--models openai:gpt-4o-mini,scripted:sure --timeout 20").success
    captured = capsys.readouterr()
    assert FAKE_KEY not in captured.out + captured.err
    assert shell.user_ns["_ensemble"].result.models["openai:gpt-4o-mini"].status == "failed"


# -- %ensemble latency / plan ---------------------------------------------------------------
@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Any]:
    from ensemble_nb.core.orchestrator import LatencyTracker, set_default_tracker

    t = LatencyTracker(tmp_path / "latency.json")
    set_default_tracker(t)
    yield t
    set_default_tracker(None)


def test_latency_prints_the_table_and_in_a_kernel_shows_the_chart(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tracker: Any) -> None:
    capsys.readouterr()
    shell.run_line_magic("ensemble", "latency")
    assert "no latency measured yet" in capsys.readouterr().out
    for i in range(10):
        tracker.record("scripted:sure", ttft=0.1 + i / 100, duration=1.0, n_tokens=20, outcome="ok")
    tracker.record("scripted:unsure", "alt", ttft=0.4, duration=1.0, n_tokens=20, outcome="ok")
    shown: list[Any] = []
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", shown.append)
    shell.run_line_magic("ensemble", "latency")
    out = capsys.readouterr().out
    assert "ttft p50" in out and "scripted:sure" in out and "scripted:unsure" in out
    assert shown == []  # no kernel: text only
    monkeypatch.setattr(shell, "kernel", FakeKernel(allow_stdin=True), raising=False)
    shell.run_line_magic("ensemble", "latency")
    assert "ttft p50" in capsys.readouterr().out
    (figure,) = shown
    assert [bar.name for bar in figure.data] == ["TTFT p50", "TTFT p90", "TTFT p99"]
    assert list(figure.data[0].x) == ["scripted:sure", "scripted:unsure@alt"]
    stats = tracker.stats("scripted:sure")
    assert figure.data[2].y[0] == pytest.approx(stats.ttft.p99 * 1000)
    assert figure.data[0].y[1] == pytest.approx(400)


def test_plan_explains_without_calling_a_model(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, tracker: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    shell.user_ns["x"] = "2+2"
    capsys.readouterr()
    shell.run_line_magic("ensemble", 'plan "What is {x}?" --models scripted:sure,openai:gpt-4o-mini --budget 0.5')
    out = capsys.readouterr().out
    assert "policy all: primary" in out and "openai:gpt-4o-mini" in out and "scripted:sure" in out
    assert "_ensemble" not in shell.user_ns  # nothing ran
    shell.run_line_magic("config", "Ensemble.models = ['scripted:unsure']")
    shell.run_line_magic("ensemble", "plan 'What is 2+2?'")
    out = capsys.readouterr().out
    assert "primary scripted:unsure" in out


@pytest.mark.parametrize(("line", "expected"), [
    ("plan", 'usage: %ensemble plan "PROMPT"'),
    ("plan --models scripted:sure", 'usage: %ensemble plan "PROMPT"'),
    ("plan 'unclosed", "cannot read the plan line"),
    ("plan 'hi' --budget 50", "bad value for --budget"),
    ("plan 'hi' --models nope", "unknown model 'nope'"),
    ("plan 'hi' --out y", "--out does not apply to %ensemble plan"),
    ("latency now", "unknown subcommand 'latency now'"),
])
def test_bad_plan_or_latency_lines_give_one_line(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                                 line: str, expected: str) -> None:
    capsys.readouterr()
    message = one_line_error(capsys, run_code(shell, f"%ensemble {line}"))
    assert message.startswith(expected), message


# -- running ---------------------------------------------------------------------------------
def test_block_prints_the_text_rendering_and_out_stores_the_handle(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cell(shell, f"{MODELS} --block --out mine").success
    out = capsys.readouterr().out
    assert "[scripted:sure] The capital of France is Paris." in out
    assert "== synthesis ==" in out and "run ok" in out
    run = shell.user_ns["mine"]
    assert isinstance(run, EnsembleRun) and run.done
    assert run_code(shell, "mine_result = await mine").success  # awaitable, in IPython's autoawait
    assert shell.user_ns["mine_result"] is run.result
    assert run.result.synthesis is not None and run.result.synthesis.chosen == "scripted:sure"


def test_without_a_kernel_a_run_blocks_by_itself(shell: InteractiveShell) -> None:
    assert cell(shell, "--models scripted:sure --quiet").success
    assert shell.user_ns["_ensemble"].done


def test_interrupt_cancels_a_blocking_run_and_the_next_cell_works(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns.pop("_ensemble", None)

    def interrupt_once_streaming() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = shell.user_ns.get("_ensemble")
            if run is not None and "scripted:sure" in run.result.models:
                break
            time.sleep(0.01)
        _thread.interrupt_main()  # what Ctrl-C, or a kernel interrupt, does

    interrupter = threading.Thread(target=interrupt_once_streaming)
    interrupter.start()
    result = cell(shell, "--models scripted:slow,scripted:sure")
    interrupter.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert str(result.error_in_exec) == "the run was cancelled; what it produced is in _ensemble"
    run = shell.user_ns["_ensemble"]
    assert run.done and run.result.status == "cancelled"
    assert cell(shell, "--models scripted:sure --quiet").success
    assert shell.user_ns["_ensemble"].result.status == "ok"


class FakeKernel:
    def __init__(self, allow_stdin: bool) -> None:
        self.parent = {"header": {}, "content": {"allow_stdin": allow_stdin}}

    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        return self.parent


async def test_in_a_kernel_the_cell_returns_at_once_and_the_handle_is_awaitable(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "kernel", FakeKernel(allow_stdin=True), raising=False)
    shell.run_cell_magic(  # type: ignore[no-untyped-call]
        "ensemble", "--models scripted:slow,scripted:sure", "Capital of France?")
    run = shell.user_ns["_ensemble"]
    assert not run.done  # the magic returned with the run still going
    view = shell.user_ns["_ensemble_view"]
    assert set(view.panes) == {"scripted:slow", "scripted:sure"}
    result = await run
    assert result.status == "ok" and result.models["scripted:slow"].status == "finished"


async def test_blocking_rule() -> None:
    class Shell:
        kernel: Any = None

    ip = Shell()
    assert blocking_reason(ip, None) == "no Jupyter kernel (terminal IPython or a script)"
    ip.kernel = FakeKernel(allow_stdin=True)
    assert blocking_reason(ip, None) is None
    assert blocking_reason(ip, True) == "asked to block"
    ip.kernel = FakeKernel(allow_stdin=False)  # nbclient / papermill
    assert blocking_reason(ip, None) is not None and "headless" in str(blocking_reason(ip, None))
    assert blocking_reason(ip, False) is None
    assert await asyncio.to_thread(blocking_reason, ip, False) == (
        "the kernel's event loop is not running in this thread")


# -- loading ---------------------------------------------------------------------------------
def test_loading_the_extension_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nip.run_line_magic('load_ext', 'ensemble_nb')\n"
            "import json; print(json.dumps(sorted(m for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "IPYTHONDIR": str(tmp_path)})
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    heavy = {"numpy", "httpx", "pydantic", "ipywidgets", "anywidget", "plotly", "llama_cpp"}
    assert not loaded & heavy
    assert "ensemble_nb.core" not in json.loads(out.stdout.strip().splitlines()[-1])


def test_unload_and_reload(shell: InteractiveShell) -> None:
    shell.run_line_magic("reload_ext", "ensemble_nb")
    assert sum(isinstance(c, Ensemble) for c in shell.configurables) == 1
    assert "ensemble" in shell.magics_manager.magics["cell"]
    assert cell(shell, "--models scripted:sure --quiet").success
