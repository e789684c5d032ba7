"""A recognisable fake key must never appear in anything the package shows or stores.

The servers here echo the request headers (so the key) back in error bodies and in-stream
errors, as some proxies do; every output is then searched for the key: events as JSON, the
text renderer, ``repr(result)``, error messages, log records, the CLI's output (JSON and text)
and the ``%%ensemble`` magic's output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import httpx
import pytest

from ensemble_nb.core import prepare
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.providers.retrying import RetryingProvider, RetryPolicy
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.textview import TextRenderer, summary
from tests.fault_transport import Fault, FaultServer

KEY = "sk-test-LEAKCHECK-0123456789"
CODE_KEY = "sk-test-INCODE-LEAKCHECK-9876543210"  # passed as an argument, in no environment variable
MARK = "LEAKCHECK"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.02)


def _echo_stream_error(request: httpx.Request) -> bytes:
    echoed = json.dumps({"error": {"message": f"bad auth header {request.headers.get('authorization')}"}})
    return b"event: error\ndata: " + echoed.encode() + b"\n\n"


@pytest.mark.parametrize("fault", [
    Fault(status=401, echo_headers=True),
    Fault(status=500, echo_headers=True),
    Fault(status=400, body=b"invalid key Authorization: Bearer " + KEY.encode() + b" for this org"),
    Fault(status=429, body=json.dumps({"error": {"message": f"key {KEY} over quota"}}).encode(),
          headers={"retry-after": "0.01"}),
    Fault(tokens=2, inject=b"data: " + json.dumps({"error": {"message": f"{KEY} revoked"}}).encode() + b"\n\n"),
])
async def test_key_never_leaks_from_a_run(fault: Fault, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    caplog.set_level(logging.DEBUG)
    env_server, code_server = FaultServer([fault]), FaultServer([fault])
    code_spec = ModelSpec(id="incode", provider="openai", model="m", base_url="http://mock.test/v1")
    text = StringIO()
    async with env_server.client() as client, code_server.client() as code_client:
        incode = RetryingProvider(OpenAICompatProvider(code_spec, code_client, api_key=CODE_KEY), FAST)
        run = prepare("q", models=["openai:gpt-4o-mini", "incode", "scripted:sure"], client=client,
                      providers={"incode": incode}, max_tokens=8)
        run.add_listener(TextRenderer(text))
        result = await run.wait()

    # The servers did get the keys, and echoed them: the check below is not vacuous.
    assert env_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert code_server.requests[0].headers["authorization"] == f"Bearer {CODE_KEY}"
    for model in ("openai:gpt-4o-mini", "incode"):
        assert result.models[model].status == "failed"
    outputs = [json.dumps(e.to_dict(), default=str) for e in result.events]
    outputs += [text.getvalue(), repr(result), summary(result), caplog.text, *run.errors]
    outputs += [str(r.end) for r in result.models.values()]
    for out in outputs:
        assert MARK not in out, out


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every POST with an error whose body is the request's headers."""

    status = 401

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).seen.append(self.headers.get("authorization", ""))  # type: ignore[attr-defined]
        headers = dict(self.headers.items())
        body = json.dumps({"error": {"message": f"denied, you sent {headers}", "headers": headers}}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[401, 500])
def echo_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Echo", (_EchoHandler,), {"status": request.param, "seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.mark.parametrize("mode", [["--json"], []])
def test_key_never_leaks_from_the_cli(echo_server: tuple[str, list[str]], mode: list[str]) -> None:
    url, seen = echo_server
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": url}
    out = subprocess.run([sys.executable, "-m", "ensemble_nb", *mode, "--models", "openai:gpt-4o-mini,scripted:sure",
                          "q"], capture_output=True, text=True, timeout=120, env=env)
    assert seen and seen[0] == f"Bearer {KEY}"
    assert out.returncode == 0, out.stderr  # the scripted member answers
    assert "openai:gpt-4o-mini" in out.stdout and "failed" in out.stdout
    assert MARK not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_key_never_leaks_from_the_magic(echo_server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    url, seen = echo_server
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    assert shell.extension_manager is not None
    loaded_here = "ensemble_nb" not in shell.extension_manager.loaded
    if loaded_here:
        shell.run_line_magic("load_ext", "ensemble_nb")
    try:
        capsys.readouterr()
        res = shell.run_cell("%%ensemble --models openai:gpt-4o-mini,scripted:sure --block --out leak\nq")  # type: ignore[no-untyped-call]
        captured = capsys.readouterr()
        assert res.success, captured.err
        handle = shell.user_ns["leak"]
        assert seen and handle.result.models["openai:gpt-4o-mini"].status == "failed"
        shown = captured.out + captured.err + repr(handle.result)
        shown += "".join(json.dumps(e.to_dict(), default=str) for e in handle.result.events)
        assert "[openai:gpt-4o-mini] failed" in captured.out and "[redacted]" in captured.out
        assert MARK not in shown
    finally:
        shell.user_ns.pop("leak", None)
        if loaded_here:
            shell.run_line_magic("unload_ext", "ensemble_nb")


async def test_credentials_in_the_base_url_never_leak() -> None:
    spec = ModelSpec(id="creds", provider="openai", model="m", base_url="http://user:hunter2-LEAKCHECK@mock.test/v1")
    server = FaultServer([Fault(refuse=True)])
    async with server.client() as client:
        provider = RetryingProvider(OpenAICompatProvider(spec, client), FAST)
        result = await prepare("q", models=["creds", "scripted:sure"], providers={"creds": provider})
    end = result.models["creds"].end
    assert end is not None and "cannot reach" in str(end)
    assert MARK not in repr(result) + str(end)


def test_key_never_reaches_a_saved_notebook(echo_server: tuple[str, list[str]], tmp_path: object,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute a notebook in a real kernel (widget state included), save it, search the file."""
    import nbformat
    from nbclient import NotebookClient

    url, seen = echo_server
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the kernel inherits the environment
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ensemble_nb"),
        nbformat.v4.new_code_cell("%%ensemble --models openai:gpt-4o-mini,scripted:sure\n"
                                  "What is the capital of France?"),
        nbformat.v4.new_code_cell("result = await _ensemble\nresult"),
        nbformat.v4.new_code_cell("%ensemble list"),
    ]
    NotebookClient(nb, timeout=180, kernel_name="python3", store_widget_state=True).execute()
    path = os.path.join(str(tmp_path), "saved.ipynb")
    nbformat.write(nb, path)
    saved = open(path, encoding="utf-8").read()
    assert seen and seen[0] == f"Bearer {KEY}"  # the key did travel, to the server only
    assert "[openai:gpt-4o-mini] failed" in saved and "The capital of France is Paris." in saved
    assert MARK not in saved
