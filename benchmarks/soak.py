"""Soak: many runs in one process must leave memory, tasks, threads and descriptors flat.

    python benchmarks/soak.py [--sequential 200] [--concurrent 20] [--rounds 3]

Each run has three members: a healthy scripted one, a scripted one that fails mid-answer, and
an OpenAI-compatible provider (behind the retrying wrapper) streaming from an in-process
MockTransport, so error paths and httpx response handling are soaked too. After a warm-up
(imports, caches), resources are sampled before and after ``--sequential`` runs one after the
other, then after each of ``--rounds`` batches of ``--concurrent`` runs at once. Exit status 1
if tasks, threads or descriptors grew, or RSS grew by more than ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time
from dataclasses import dataclass

import httpx

from ensemble_nb.core import prepare
from ensemble_nb.core.errors import ServerError
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.providers.retrying import RetryingProvider, RetryPolicy
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.result import RunResult

SPEC = ModelSpec(id="remote", provider="openai", model="mock", base_url="http://mock.test/v1", vocab_size=1000)
WORDS = "The capital of France is Paris , a city on the Seine .".split()


def _sse(request: httpx.Request) -> httpx.Response:
    top = int(json.loads(request.content).get("top_logprobs") or 0)
    events = []
    for i, word in enumerate(WORDS):
        text = word if i == 0 else " " + word
        rivals = [{"token": f"{text}{j}", "logprob": -3.0 - j} for j in range(top - 1)]
        alts = [{"token": text, "logprob": -0.1}, *rivals]
        entry = {"token": text, "logprob": -0.1, "top_logprobs": alts}
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "logprobs": {"content": [entry]}}]}
        events.append(f"data: {json.dumps(chunk)}\n\n")
    events.append('data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(events).encode())


@dataclass
class Sample:
    label: str
    runs: int
    rss_mb: float
    tasks: int
    threads: int
    fds: int
    seconds: float


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def sample(label: str, runs: int, started: float) -> Sample:
    gc.collect()  # count what is still referenced, not what merely awaits collection
    return Sample(label, runs, rss_mb(), len(asyncio.all_tasks()), threading.active_count(),
                  len(os.listdir("/proc/self/fd")), time.perf_counter() - started)


async def one_run(client: httpx.AsyncClient, i: int) -> RunResult:
    healthy = ScriptedProvider("healthy", steps_from_text("The capital of France is Paris."))
    failing = ScriptedProvider("failing", steps_from_text("Paris is in France."), fail_after=2,
                               error=ServerError("failing: scripted drop; retry"))
    remote = RetryingProvider(OpenAICompatProvider(SPEC, client), RetryPolicy(base_delay=0.001))
    return await prepare(f"What is the capital of France? ({i})", models=["healthy", "failing", "remote"],
                         providers={"healthy": healthy, "failing": failing, "remote": remote},
                         max_tokens=16, seed=i)


async def soak(sequential: int, concurrent: int, rounds: int) -> list[Sample]:
    started = time.perf_counter()
    samples: list[Sample] = []
    done = 0
    async with httpx.AsyncClient(transport=httpx.MockTransport(_sse)) as client:
        for i in range(10):  # warm-up: imports, caches, first allocations
            await one_run(client, i)
        samples.append(sample("after warm-up", done, started))
        for i in range(sequential):
            result = await one_run(client, i)
            assert result.status == "partial", result  # "failing" fails, the other two finish
            done += 1
        samples.append(sample(f"after {sequential} sequential", done, started))
        for r in range(rounds):
            results = await asyncio.gather(*(one_run(client, 10_000 * (r + 1) + j) for j in range(concurrent)))
            assert all(res.status == "partial" for res in results)
            done += concurrent
            samples.append(sample(f"after {concurrent} concurrent (#{r + 1})", done, started))
    return samples


def report(samples: list[Sample]) -> str:
    head = f"{'checkpoint':<28} {'runs':>5} {'RSS MB':>8} {'tasks':>6} {'threads':>8} {'fds':>5} {'time s':>7}"
    rows = [head, "-" * len(head)]
    for s in samples:
        rows.append(f"{s.label:<28} {s.runs:>5} {s.rss_mb:>8.1f} {s.tasks:>6} {s.threads:>8} {s.fds:>5} "
                    f"{s.seconds:>7.1f}")
    first, last = samples[0], samples[-1]
    rows.append(f"growth: RSS {last.rss_mb - first.rss_mb:+.1f} MB, tasks {last.tasks - first.tasks:+d}, "
                f"threads {last.threads - first.threads:+d}, fds {last.fds - first.fds:+d}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sequential", type=int, default=200)
    p.add_argument("--concurrent", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-rss-mb", type=float, default=20.0, help="allowed RSS growth")
    args = p.parse_args(argv)
    samples = asyncio.run(soak(args.sequential, args.concurrent, args.rounds))
    print(report(samples))
    first, last = samples[0], samples[-1]
    flat = (last.tasks <= first.tasks and last.threads <= first.threads and last.fds <= first.fds
            and last.rss_mb - first.rss_mb <= args.max_rss_mb)
    print("flat" if flat else "NOT flat")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
