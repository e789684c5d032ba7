"""``%%ensemble`` in a real ipykernel, driven over ZMQ as a frontend would drive it.

The kernel runs this venv's Python from a kernelspec written to a temporary directory, with a
private IPYTHONDIR, so neither a user's kernels nor their IPython config can leak in.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from jupyter_client.blocking.client import BlockingKernelClient  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

# A member that keeps streaming for ~30 s, so a click always finds it mid-stream; registered in
# the kernel only (SCRIPTS is the registry behind scripted:NAME ids).
SETUP = """\
%load_ext ensemble_nb
from ensemble_nb.core.providers.scripts import SCRIPTS, NamedScript
SCRIPTS["crawl"] = NamedScript("test: one token every 1.5 s", " ".join(["slow"] * 20), 0.9,
                               first_token_delay=0.05, token_delay=1.5)
"""
PROMPT = "What is the capital of France?"


class Cell:
    def __init__(self, reply: dict[str, Any], stdout: str, stderr: str, displays: list[str]) -> None:
        self.reply, self.stdout, self.stderr, self.displays = reply, stdout, stderr, displays
        self.status: str = reply["content"]["status"]


def _collect(kc: BlockingKernelClient, msg_id: str, timeout: float,
             displays: list[str] | None = None) -> tuple[str, str]:
    """stdout and stderr of a cell until it is idle; the mime types it displayed go to ``displays``."""
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out[content["name"]].append(content["text"])
        elif kind == "error":
            out["stderr"].append("\n".join(content["traceback"]))
        elif kind == "display_data" and displays is not None:
            displays.extend(content["data"])
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out["stdout"]), "".join(out["stderr"])


def run_cell(kc: BlockingKernelClient, code: str, timeout: float = 30) -> Cell:
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    assert reply["parent_header"]["msg_id"] == msg_id
    displays: list[str] = []
    stdout, stderr = _collect(kc, msg_id, timeout, displays)
    return Cell(reply, stdout, stderr, displays)


def value(kc: BlockingKernelClient, expr: str) -> Any:
    cell = run_cell(kc, f"import json as _j; print(_j.dumps({expr}))")
    assert cell.status == "ok", cell.stderr
    return json.loads(cell.stdout.strip().splitlines()[-1])


def wait_for(kc: BlockingKernelClient, expr: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not value(kc, expr):
        assert time.monotonic() < deadline, f"timed out waiting for {expr}"
        time.sleep(0.05)


def click(kc: BlockingKernelClient, comm_id: str, subshell_id: str | None = None) -> None:
    """What a frontend sends when a Button is clicked (ipywidgets' custom 'click' event)."""
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id,
                                      "data": {"method": "custom", "content": {"event": "click"}}})
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)


def create_subshell(kc: BlockingKernelClient) -> str:
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]
    assert reply["msg_type"] == "create_subshell_reply", reply
    subshell_id: str = reply["content"]["subshell_id"]
    return subshell_id


def kernel_manager(root: Path) -> tuple[KernelManager, dict[str, str]]:
    """A manager for this venv's Python as a kernel, and the environment to start it with."""
    spec_dir = root / "kernels" / "ensemble-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ensemble_nb test", "language": "python", "interrupt_mode": "signal",
    }))
    env = {**os.environ, "IPYTHONDIR": str(root / "ipython"), "JUPYTER_PLATFORM_DIRS": "1",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    km = KernelManager(kernel_name="ensemble-test",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "kernels")]))
    return km, env


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km, env = kernel_manager(tmp_path_factory.mktemp("kernel"))
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        setup = run_cell(kc, SETUP)
        assert setup.status == "ok", setup.stderr
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _start_background_run(kc: BlockingKernelClient, out: str) -> Cell:
    t0 = time.monotonic()
    cell = run_cell(kc, f"%%ensemble --models scripted:crawl,scripted:fast --out {out}\n{PROMPT}")
    assert cell.status == "ok", cell.stderr
    assert time.monotonic() - t0 < 10  # the crawler alone needs ~30 s
    assert value(kc, f"{out}.done") is False
    return cell


def test_cell_returns_at_once_and_a_cancel_click_takes_effect(kernel: tuple[Any, BlockingKernelClient]) -> None:
    _, kc = kernel
    _start_background_run(kc, "run1")
    wait_for(kc, "len(run1.result.models['scripted:crawl'].tokens) >= 1")  # mid-stream
    assert value(kc, "run1.result.models['scripted:crawl'].status") == "streaming"
    comm_id = value(kc, "run1_view.panes['scripted:crawl'].cancel_button.model_id")
    click(kc, comm_id)
    cell = run_cell(kc, "r = await run1\nprint(r.models['scripted:crawl'].status, "
                        "r.models['scripted:fast'].status, r.models['scripted:crawl'].end.reason)")
    assert cell.status == "ok", cell.stderr
    assert cell.stdout.split() == ["cancelled", "finished", "user"]
    assert value(kc, "run1.result.models['scripted:crawl'].text").startswith("slow")  # kept


def test_a_click_sent_on_a_subshell_takes_effect_while_the_main_shell_awaits_the_run(
        kernel: tuple[Any, BlockingKernelClient]) -> None:
    _, kc = kernel
    subshell = create_subshell(kc)
    _start_background_run(kc, "run2")
    wait_for(kc, "len(run2.result.models['scripted:crawl'].tokens) >= 1")
    # Record the thread that handles the click, to see where ipykernel dispatched it.
    run_cell(kc, "import threading\nclicked_on = []\nrun2_view.panes['scripted:crawl'].cancel_button"
                 ".on_click(lambda _b: clicked_on.append(threading.current_thread().name))")
    comm_id = value(kc, "run2_view.panes['scripted:crawl'].cancel_button.model_id")
    # The main shell is busy awaiting the ~30 s run when the click comes in.
    msg_id = kc.execute("r = await run2\nprint(r.models['scripted:crawl'].status, r.models['scripted:fast'].status)")
    time.sleep(0.3)
    click(kc, comm_id, subshell_id=subshell)
    reply = kc.get_shell_msg(timeout=10)
    stdout, stderr = _collect(kc, msg_id, 10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", stderr
    assert stdout.split() == ["cancelled", "finished"]
    # ipykernel >= 7.4 hands a comm message to the shell that last published on that comm
    # (here the main one); earlier 7.x run it on the subshell's thread. Either way: once.
    assert len(value(kc, "clicked_on")) == 1


def test_interrupting_a_blocking_run_cancels_it_and_the_next_cell_works(
        kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    km, kc = kernel
    msg_id = kc.execute(f"%%ensemble --block --models scripted:crawl,scripted:sure --out run3\n{PROMPT}")
    stdout: list[str] = []
    deadline = time.monotonic() + 20
    while "France is Paris." not in "".join(stdout):  # one member is done, the crawler streams on
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            stdout.append(msg["content"]["text"])
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RunInterrupted"
    assert reply["content"]["evalue"] == "the run was cancelled; what it produced is in run3"
    rest, stderr = _collect(kc, msg_id, 20)
    assert "execution.py" not in stderr  # the traceback stops at the magic
    assert "run cancelled" in "".join(stdout) + rest  # the summary was printed
    after = run_cell(kc, "print(run3.done, run3.result.status, run3.result.models['scripted:sure'].status, 6 * 7)")
    assert after.status == "ok", after.stderr
    assert after.stdout.split() == ["True", "cancelled", "finished", "42"]
    again = run_cell(kc, f"%%ensemble --block --models scripted:sure --out run4\n{PROMPT}")
    assert again.status == "ok", again.stderr
    assert "run ok" in again.stdout
    assert "application/vnd.jupyter.widget-view+json" in again.displays  # the view, final state


def test_a_headless_client_gets_a_blocking_run(kernel: tuple[Any, BlockingKernelClient]) -> None:
    _, kc = kernel
    msg_id = kc.execute(f"%%ensemble --models scripted:sure --out run5\n{PROMPT}", allow_stdin=False)
    reply = kc.get_shell_msg(timeout=30)
    stdout, stderr = _collect(kc, msg_id, 30)
    assert reply["content"]["status"] == "ok", stderr
    assert "[scripted:sure] The capital of France is Paris." in stdout
    assert value(kc, "run5.done") is True


def test_nbclient_runs_block_so_the_notebook_gets_the_whole_run(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    km, env = kernel_manager(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext ensemble_nb"),
        nbformat.v4.new_code_cell(f"%%ensemble --models scripted:slow,scripted:sure\n{PROMPT}"),
        nbformat.v4.new_code_cell("print(_ensemble.done, _ensemble.result.status)"),
    ])
    nbclient.NotebookClient(nb, km=km, timeout=60).execute(env=env)
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "[scripted:slow] Paris is the capital of France." in text and "run ok" in text
    assert nb.cells[2].outputs[0]["text"].split() == ["True", "ok"]
