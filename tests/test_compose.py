"""``bot.runtime.compose``: what the processes close at shutdown, and the worker's ``/metrics`` port.

The worker's whole life (web → Redis → ``docgen worker`` process, scraped while it
runs) is in ``test_redis_e2e.py``; here its start-up and shutdown hooks are called
directly, in this process, to look at what they open and close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.testclient import TestClient

from bot.config import Settings
from bot.docstrings.llm.offline import OfflineProvider
from bot.runtime import compose, job_deps
from bot.runtime.metrics import Metrics
from tests import redis_helpers
from tests.fake_github import APP_ID
from tests.redis_helpers import free_port

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

SECRET = "server-webhook-secret-0b9e"


@pytest.fixture
def settings(private_key_pem, tmp_path, monkeypatch):
    """App settings with an OpenAI key: the provider holds an HTTP client (never used)."""
    monkeypatch.chdir(tmp_path)  # no stray .env

    def make(**more) -> Settings:
        return Settings(
            github_app_id=APP_ID,
            github_private_key=private_key_pem,
            github_webhook_secret=SECRET,
            docgen_data_dir=tmp_path / "data",
            openai_api_key="sk-test-not-a-key",
            openai_base_url="http://127.0.0.1:9/v1",  # nothing listens; nothing calls it
            **more,
        )

    return make


@pytest.fixture
def made(monkeypatch) -> list:
    """The providers ``bot.runtime.compose`` makes from the settings, as it makes them."""
    providers: list = []
    real = job_deps.make_provider

    def make_provider(settings):
        providers.append(real(settings))
        return providers[-1]

    monkeypatch.setattr(job_deps, "make_provider", make_provider)
    return providers


def test_docgen_serve_closes_the_llm_client_at_shutdown(settings, made):
    runtime = compose.build(settings())
    with TestClient(runtime.app) as client:
        assert client.get("/healthz").status_code == 200
        [provider] = made
        assert provider.name == "openai" and not provider.client.is_closed()
    assert provider.client.is_closed()


def test_a_provider_passed_in_stays_open_for_its_owner(settings, made):
    owned = job_deps.make_provider(settings())
    runtime = compose.build(settings(), provider=owned)
    with TestClient(runtime.app):
        pass
    assert len(made) == 1  # only the one made above: none from the settings
    assert not owned.client.is_closed()
    asyncio.run(owned.client.close())


class Closeable:
    def __init__(self, *, fail: bool = False, sync: bool = False) -> None:
        self.closed = 0
        self.fail = fail
        if sync:
            self.close = self._close_sync  # type: ignore[method-assign]

    async def close(self) -> None:
        self._close_sync()

    def _close_sync(self) -> None:
        self.closed += 1
        if self.fail:
            raise RuntimeError("connection pool already gone")


def test_close_provider_closes_what_a_provider_holds_and_never_raises(caplog):
    own_aclose = SimpleNamespace(aclose=Closeable().close, client=Closeable())
    sync_client = SimpleNamespace(client=Closeable(sync=True))
    failing = SimpleNamespace(client=Closeable(fail=True))
    for provider in (own_aclose, sync_client, failing, OfflineProvider(), None):
        asyncio.run(job_deps.close_provider(provider))
    assert own_aclose.client.closed == 0  # its own aclose() was asked instead
    assert sync_client.client.closed == 1 and failing.client.closed == 1
    assert "could not close the LLM client: connection pool already gone" in caplog.text


def test_a_job_counts_as_running_while_it_runs(monkeypatch):
    metrics = Metrics()
    seen = []

    async def handler(job, ctx):
        seen.append(metrics.jobs_running._value.get())
        if job == "boom":
            raise RuntimeError(job)

    monkeypatch.setattr(job_deps, "make_handler", lambda deps: handler)
    counted = job_deps._handler(SimpleNamespace(metrics=metrics))
    asyncio.run(counted("ok", None))
    with pytest.raises(RuntimeError):
        asyncio.run(counted("boom", None))
    assert seen == [1, 1] and metrics.jobs_running._value.get() == 0


# ------------------------------------------------------------------ docgen worker


@pytest.fixture
def worker_loop():
    """The current event loop ``build_worker`` wants, closed afterwards."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def start_and_stop(worker, loop, while_up=lambda: None):
    loop.run_until_complete(worker.on_startup(worker.ctx))
    try:
        return while_up()
    finally:
        loop.run_until_complete(worker.on_shutdown(worker.ctx))


def test_the_worker_serves_metrics_and_closes_port_client_and_journal(
    settings, made, redis_url, ns, worker_loop
):
    port = free_port()
    worker = compose.build_worker(
        settings(redis_url=redis_url, docgen_redis_prefix=ns, docgen_metrics_port=port)
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        assert not made[0].client.is_closed()
        return httpx.get(url, timeout=5).text

    text = start_and_stop(worker, worker_loop, scrape)
    assert 'docgen_jobs{state="queued"} 0.0' in text  # read from Redis at the scrape
    assert "docgen_jobs_running 0.0" in text and "docgen_llm_call_seconds" in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)
    assert made[0].client.is_closed()
    assert worker.on_shutdown is not None


def test_a_taken_metrics_port_is_a_warning_not_a_stop(
    settings, made, redis_url, ns, worker_loop, caplog
):
    taken = Metrics().serve(0, "0.0.0.0")  # e.g. another worker on this machine
    try:
        worker = compose.build_worker(
            settings(redis_url=redis_url, docgen_redis_prefix=ns, docgen_metrics_port=taken.port)
        )
        with caplog.at_level(logging.INFO, logger="bot.runtime.compose"):
            start_and_stop(worker, worker_loop)
    finally:
        taken.close()
    assert f"DOCGEN_METRICS_PORT {taken.port}: cannot listen" in caplog.text
    [started] = [r for r in caplog.records if r.getMessage() == "docgen worker started"]
    assert started.metrics_port is None


def test_metrics_port_0_serves_nothing(settings, made, redis_url, ns, worker_loop, caplog):
    worker = compose.build_worker(
        settings(redis_url=redis_url, docgen_redis_prefix=ns, docgen_metrics_port=0)
    )
    with caplog.at_level(logging.INFO, logger="bot.runtime.compose"):
        start_and_stop(worker, worker_loop)
    [started] = [r for r in caplog.records if r.getMessage() == "docgen worker started"]
    assert started.metrics_port is None and "cannot listen" not in caplog.text
    assert made[0].client.is_closed()


# ------------------------------------------------------------------ one composition root

MODE_SCRIPT = """
import json, sys
from starlette.testclient import TestClient
from bot.runtime import compose
from bot.config import Settings

for build in (compose.build, compose.build_web):
    runtime = build(Settings())
    with TestClient(runtime.app) as client:
        assert client.get("/healthz").status_code == 200
print(json.dumps(sorted(sys.modules)))
"""
# githubkit's HTTP cache (hishel) imports redis for a storage docgen never uses: the
# baseline is what importing githubkit alone loads.
BASELINE_SCRIPT = "import json, sys, githubkit; print(json.dumps(sorted(sys.modules)))"


def _modules(script: str, env: dict[str, str], cwd: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_sqlite_mode_imports_neither_redis_nor_arq(private_key_pem, tmp_path):
    """SQLite mode (no REDIS_URL) builds and serves without docgen's Redis side."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_", "REDIS_"))
    }
    env.update(
        GITHUB_APP_ID=str(APP_ID),
        GITHUB_PRIVATE_KEY=private_key_pem,
        GITHUB_WEBHOOK_SECRET=SECRET,
        DOCGEN_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    loaded = _modules(MODE_SCRIPT, env, tmp_path)
    baseline = _modules(BASELINE_SCRIPT, env, tmp_path)

    def scale_out(names: set[str]) -> set[str]:
        return {n for n in names if n.split(".")[0] in ("redis", "arq")}

    assert "bot.runtime.compose" in loaded and "bot.runtime.queue.sqlite_store" in loaded
    assert not {"bot.runtime.queue.redis_store", "bot.runtime.queue.arq_worker"} & loaded
    assert not {n for n in loaded if n.split(".")[0] == "arq"}
    assert scale_out(loaded) <= scale_out(baseline)  # nothing of ours pulled redis in


def test_the_mode_is_chosen_in_one_place():
    """No module but the composition root asks which store it has, or reads REDIS_URL."""
    root = Path(__file__).resolve().parents[1] / "bot"
    asks = re.compile(
        r"isinstance\([^)]*(SqliteStore|RedisStore|Store)\b|\.redis_url\b|hasattr\(\w*(?:journal|store)"
    )
    found = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        # config declares REDIS_URL; secrets lists its password (not a mode choice)
        if path.name not in ("compose.py", "config.py", "secrets.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if asks.search(line)
    ]
    assert found == []
