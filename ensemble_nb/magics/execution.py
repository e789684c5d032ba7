"""Running a prepared ensemble from a cell: in the background on the kernel's loop, or blocking.

ipykernel runs a cell's code synchronously *inside* a coroutine of its asyncio loop, so a magic
sees ``asyncio.get_running_loop()`` and can start the run as a task on it: the task progresses
as soon as the cell returns. That loop must never be blocked on, so a blocking run goes to the
core's worker loop (:mod:`ensemble_nb.core.blocking`) while this thread renders its events.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun

from ensemble_nb.core.blocking import run_blocking, worker

__all__ = ["blocking_reason", "client_accepts_input", "run_blocking", "start_in_background", "worker"]


def blocking_reason(shell: Any, block: bool | None) -> str | None:
    """Why this cell must wait for its run, or ``None`` when the run can go on in the background.

    The rule: background only in a kernel whose loop is running in this thread and whose
    client accepts input. Headless clients (nbclient, papermill, nbconvert --execute) send
    ``allow_stdin=False``; they would move on, or shut the kernel down, with the run unfinished.
    ``block=False`` overrides only that last check.
    """
    if block:
        return "asked to block"
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return "no Jupyter kernel (terminal IPython or a script)"
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "the kernel's event loop is not running in this thread"
    if block is None and not client_accepts_input(kernel, shell):
        return "the client is headless (allow_stdin=False: nbclient, papermill, nbconvert)"
    return None


def client_accepts_input(kernel: Any, shell: Any) -> bool:
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # an older or unusual kernel: fall back to the shell's copy
        parent = getattr(shell, "parent_header", None)
    content = parent.get("content") if isinstance(parent, dict) else None
    return isinstance(content, dict) and content.get("allow_stdin") is True


# -- background --------------------------------------------------------------------------------
# asyncio keeps only weak references to tasks: a run whose handle the user overwrites must
# still finish, so its watcher is held here until it is done.
_watchers: set[asyncio.Task[None]] = set()


def start_in_background(run: EnsembleRun) -> None:
    """Start ``run`` on the running loop and return at once."""
    run.start()
    task = asyncio.get_running_loop().create_task(_watch(run), name=f"ensemble-watch-{run.run_id}")
    _watchers.add(task)
    task.add_done_callback(_watchers.discard)


async def _watch(run: EnsembleRun) -> None:
    try:
        await run
    except asyncio.CancelledError:
        pass
    except Exception as exc:  # nobody awaits a background run; say so once instead of a log dump
        print(f"ensemble run {run.run_id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
