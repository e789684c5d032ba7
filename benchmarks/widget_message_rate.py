"""How many comm messages the live view sends per second, and whether every token arrives.

Runs scripted models streaming fast under an ``EnsembleView`` whose widgets talk to a
recording comm (installed at ``comm.create_comm``, the seam ipywidgets uses), then prints
the rate of kernel→frontend messages during the run and the tokens produced vs delivered
(rebuilt from the messages the way the frontend does). No kernel or browser needed.

    .venv/bin/python benchmarks/widget_message_rate.py --models 2 --tokens 1500 --delay 0.001
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import comm
from comm.base_comm import BaseComm

from ensemble_nb.core import prepare
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text

Sent = tuple[float, str, str, dict[str, Any]]


class RecordingComm(BaseComm):
    def __init__(self, log: list[Sent], *args: Any, **kwargs: Any) -> None:
        self.log = log
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        self.log.append((time.monotonic(), self.comm_id, msg_type, dict(data or {})))


def delivered(log: list[Sent], comm_id: str) -> int:
    n = 0
    for _, cid, _, data in log:
        chunk = data.get("state", {}).get("chunk") if cid == comm_id else None
        if not chunk or data.get("method") != "update":  # the comm_open carries an empty one
            continue
        if chunk.get("reset"):
            n = len(chunk["tokens"])
        else:
            assert chunk["start"] == n, "a gap or an overlap between chunks"
            n += len(chunk["tokens"])
    return n


async def measure(n_models: int, n_tokens: int, delay: float) -> dict[str, float]:
    from ensemble_nb.widgets import EnsembleView

    log: list[Sent] = []
    comm.create_comm = lambda *a, **k: RecordingComm(log, *a, **k)
    names = [f"m{i}" for i in range(n_models)]
    text = " ".join(["tok"] * n_tokens)
    run = prepare("q", models=" ".join(names), max_tokens=n_tokens, providers={
        m: ScriptedProvider(m, steps_from_text(text, 0.8), token_delay=delay) for m in names})
    view = EnsembleView(run)
    t0 = time.monotonic()
    result = await run
    t1 = time.monotonic()
    times = [t for t, _, kind, _ in log if t0 <= t <= t1 and kind == "comm_msg"]
    peak = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    produced = sum(len(r.tokens) for r in result.models.values())
    got = sum(delivered(log, view.panes[m].widget.comm.comm_id) for m in names)
    return {"seconds": t1 - t0, "produced": produced, "delivered": got, "messages": len(times),
            "rate": len(times) / (t1 - t0), "peak": peak, "ticks": view.ticker.ticks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=1500, help="tokens per model")
    parser.add_argument("--delay", type=float, default=0.001, help="seconds between tokens")
    args = parser.parse_args()
    r = asyncio.run(measure(args.models, args.tokens, args.delay))
    print(f"{args.models} models x {args.tokens} tokens in {r['seconds']:.2f} s "
          f"({r['produced'] / r['seconds']:.0f} tokens/s)")
    print(f"comm messages during the run: {r['messages']:.0f} = {r['rate']:.1f} messages/s "
          f"(peak {r['peak']:.0f} in any 1 s window; {r['ticks']:.0f} render ticks)")
    print(f"tokens produced {r['produced']:.0f}, delivered to the views {r['delivered']:.0f}")


if __name__ == "__main__":
    main()
