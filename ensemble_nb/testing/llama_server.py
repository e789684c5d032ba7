"""llama-cpp-python's OpenAI-compatible server, started AMX-safe.

``python -m llama_cpp.server`` loads its model with llama.cpp's default model params, which
on CPUs with AMX put the weights in an "extra" AMX buffer; the first decode then segfaults.
This launcher runs the same FastAPI app with the default-params function patched for the
whole life of the process (the server may reload its model, so patching one load is not
enough), by reusing :func:`ensemble_nb.core.providers.embedded._no_extra_buffer_types`.

Usage: ``python -m ensemble_nb.testing.llama_server --model PATH --port N [--logits-all]``.
:class:`LlamaServer` starts it as a subprocess for tests and stops it again.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx

from ensemble_nb.core.providers.embedded import _no_extra_buffer_types, default_threads, import_llama_cpp


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ensemble_nb.testing.llama_server",
                                description="Serve a .gguf over llama-cpp-python's OpenAI-compatible API.")
    p.add_argument("--model", required=True, help="path of the .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: local only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--logits-all", action="store_true", help="keep every logit: needed for logprobs")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--n-threads", type=int, default=None, help="default: the cores this process may use")
    p.add_argument("--alias", default=None, help="the model name the server reports (default: the path)")
    p.add_argument("--no-prefix-cache", action="store_true",
                   help="re-read the whole prompt for every request: slower, but reproducible logits")
    return p


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8080, logits_all: bool = False,
          n_ctx: int = 2048, n_threads: int | None = None, alias: str | None = None,
          prefix_cache: bool = True) -> None:
    """Load the model AMX-safe and serve until interrupted (blocks)."""
    llama_cpp = import_llama_cpp()
    if not prefix_cache:
        _disable_prefix_reuse(llama_cpp)
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    threads = n_threads or default_threads()
    # Same threads and batch as LlamaLocalProvider, so both compute the same logits.
    model_settings = ModelSettings(model=model, model_alias=alias, n_ctx=n_ctx, n_batch=512,
                                   n_threads=threads, n_threads_batch=threads, logits_all=logits_all,
                                   verbose=False)
    server_settings = ServerSettings(host=host, port=port)
    # Patched for the server's whole life, not just this load: this process does nothing else,
    # and a request naming another model alias makes the server load again.
    with _no_extra_buffer_types(llama_cpp):
        app = create_app(server_settings=server_settings, model_settings=[model_settings])
        uvicorn.run(app, host=host, port=port, log_level="warning")


def _disable_prefix_reuse(llama_cpp: Any) -> None:
    """Make every generation decode its prompt from position 0.

    ``Llama.generate`` keeps the KV cache of the longest prefix shared with the last request
    and decodes only the rest. llama.cpp's logits depend on how tokens were batched, so a
    repeated request then gets logprobs up to ~0.1 apart from the first one, and apart from
    ``LlamaLocalProvider``, which always decodes from scratch. ``reset()`` forgets the cache.
    """
    original = llama_cpp.Llama.generate

    def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.reset()
        return original(self, *args, **kwargs)

    llama_cpp.Llama.generate = generate


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.model).is_file():
        print(f"error: no model file at {args.model}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without authentication: anyone who can reach it can use it",
              file=sys.stderr)
    serve(args.model, host=args.host, port=args.port, logits_all=args.logits_all, n_ctx=args.n_ctx,
          n_threads=args.n_threads, alias=args.alias, prefix_cache=not args.no_prefix_cache)
    return 0


def free_port() -> int:
    # Bound then released: a small race with other processes, acceptable in tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LlamaServer:
    """The launcher as a subprocess on a free local port; a context manager that always stops it."""

    def __init__(self, model: Path | str, *, logits_all: bool = True, port: int | None = None,
                 startup_timeout: float = 120.0, extra_args: tuple[str, ...] = ()) -> None:
        self.model = str(model)
        self.port = port or free_port()
        self.logits_all = logits_all
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        cmd = [sys.executable, "-m", "ensemble_nb.testing.llama_server", "--model", self.model,
               "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args]
        if self.logits_all:
            cmd.append("--logits-all")
        # Output goes to a file, not a pipe: an unread pipe fills up and blocks the server.
        self._log = open(os.devnull, "wb")  # closed in stop()
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"llama server exited with code {self.process.returncode} while starting")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama server on port {self.port} not ready after {self.startup_timeout:g} s")

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would: streams in flight are cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
