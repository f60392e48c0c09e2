"""``docgen serve`` with ``DOCGEN_WEB_PROCESSES=2``: two web processes, jobs in the supervisor.

Started exactly as a user would (``python -m bot.cli serve``) against the fake GitHub on
a loopback port.  What must hold: both web processes answer, each delivery is
journaled once whichever process took it, the review runs once (in the supervisor),
``/metrics`` adds up every process, an installation deleted through one web process
voids the token the supervisor cached, a second ``docgen serve`` on the same data
directory refuses to start, and SIGTERM stops everything with exit code 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from githubkit.webhooks import sign

from bot.cli.sample import BASE, HEAD
from tests import redis_helpers
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID
from tests.test_serve_process import free_port, wait_for

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures: a real Redis

SECRET = "multiproc-webhook-secret-2b9e"
PATH = "shop/inventory.py"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def threads(pid: int) -> list[int]:
    return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]


def nice(pid: int, tid: int) -> int:
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


def deliver(client: httpx.Client, base: str, event: str, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post(
        f"{base}/webhook",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(SECRET, body, "sha256"),
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def serve_env(api_url: str, private_key_pem: str, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_", "REDIS_", "PROMETHEUS_"))
    }
    env.update(
        GITHUB_APP_ID=str(APP_ID),
        GITHUB_PRIVATE_KEY=private_key_pem,
        GITHUB_WEBHOOK_SECRET=SECRET,
        GITHUB_API_URL=api_url,
        DOCGEN_DATA_DIR=str(data_dir),
        DOCGEN_WEB_PROCESSES="2",
        LOG_LEVEL="INFO",
    )
    return env


SERVE = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"]


def start_serve(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[str]:
    """``docgen serve`` on ``port``, once healthy and both web processes are up."""
    proc = subprocess.Popen(
        [*SERVE, "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 60, "/healthz")
        wait_for(lambda: len(children(proc.pid)) >= 2, 30, "two web processes")
    except BaseException:
        stop_serve(proc)
        raise
    return proc


def stop_serve(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, wait (kill after a minute); its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return stderr


@pytest.mark.timeout(120)
def test_two_web_processes_and_the_jobs_in_the_supervisor(
    fake_github, make_pr, private_key_pem, tmp_path
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    port = free_port()
    data_dir = tmp_path / "data"
    with fake_github.serve() as api_url:
        env = serve_env(api_url, private_key_pem, data_dir)
        proc = start_serve(env, tmp_path, port)
        base = f"http://127.0.0.1:{port}"
        try:
            web_pids = set(children(proc.pid))
            # Jobs yield the cores to acknowledgements: the job thread is niced, the
            # supervisor's main thread and the web processes are not.
            assert nice(proc.pid, proc.pid) == 0
            assert 10 in {nice(proc.pid, tid) for tid in threads(proc.pid)}  # DOCGEN_JOBS_NICE
            assert {nice(pid, pid) for pid in web_pids} == {0}

            # A second docgen serve on the same data directory must not start workers.
            second = subprocess.run(
                [*SERVE, "--port", str(free_port())],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 2, second.stderr
            assert "already runs the jobs" in second.stderr

            # Many connections: the kernel spreads them over both web processes.
            statuses = []
            for n in range(12):
                with httpx.Client() as client:
                    payload = pull.webhook_payload("synchronize" if n else "opened")
                    statuses.append(deliver(client, base, "pull_request", payload).status_code)
            assert statuses == [202] * 12
            runs = fake_github.repo(f"{OWNER}/{REPO}").check_runs
            wait_for(
                lambda: any(run.status == "completed" for run in runs.values()), 60, "the check run"
            )
            wait_for(lambda: len(pull.reviews) == 1, 30, "the review")
            time.sleep(1.0)  # a second job for the same head would post a second review
            assert len(pull.reviews) == 1

            # Metrics add up every process: 12 deliveries, whichever process took them.
            def scraped() -> str:
                return httpx.get(f"{base}/metrics", timeout=5).text

            def queued() -> float:
                found = re.search(
                    r'docgen_webhook_deliveries_total\{event="pull_request",outcome="queued"\}'
                    r" ([0-9.]+)",
                    scraped(),
                )
                return float(found.group(1)) if found else 0.0

            wait_for(lambda: queued() == 12, 10, "12 queued deliveries in /metrics")
            assert re.search(r'docgen_job_results_total\{result="[a-z]+"\} [1-9]', scraped())

            # Installation deleted, received by some web process: the token the
            # supervisor cached is dropped before its next job.
            with httpx.Client() as client:
                r = deliver(
                    client,
                    base,
                    "installation",
                    {"action": "deleted", "installation": {"id": 1}, "sender": {"login": "o"}},
                )
            assert r.status_code == 200, r.text
            with closing(sqlite3.connect(data_dir / "journal.sqlite3")) as conn, conn:
                assert conn.execute("SELECT installation_id FROM forgotten").fetchall() == [(1,)]
            tokens_before = fake_github.token_requests
            with httpx.Client() as client:
                reopened = pull.webhook_payload("reopened")
                assert deliver(client, base, "pull_request", reopened).status_code == 202
            wait_for(lambda: fake_github.token_requests > tokens_before, 30, "a new token")
            assert set(children(proc.pid)) == web_pids  # no web process died on the way
        finally:
            stderr = stop_serve(proc)
        assert proc.returncode == 0, stderr[-3000:]
        lines = [line for line in stderr.splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every line one JSON object
        pids = {r.get("pid") for r in records if r.get("msg") == "docgen web process started"}
        assert len(pids) == 2
        assert private_key_pem.splitlines()[1] not in stderr
        assert SECRET not in stderr
        assert not [r for r in records if r["level"] == "error"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--web-processes", "0"], {}, "--web-processes must be between 1 and 64"),
        ([], {"DOCGEN_WEB_PROCESSES": "0"}, "DOCGEN_WEB_PROCESSES"),
    ],
)
def test_a_bad_number_of_web_processes_is_one_clear_line(
    args, env, message, private_key_pem, tmp_path
):
    clean = serve_env("http://127.0.0.1:9", private_key_pem, tmp_path / "data")
    del clean["DOCGEN_WEB_PROCESSES"]
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0", *args],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.timeout(60)
def test_one_process_serve_refuses_a_data_dir_another_serve_works_from(private_key_pem, tmp_path):
    from bot.runtime.queue.sqlite_store import SqliteStore

    data_dir = tmp_path / "data"
    env = serve_env("http://127.0.0.1:9", private_key_pem, data_dir)
    del env["DOCGEN_WEB_PROCESSES"]
    with SqliteStore.in_dir(data_dir) as running:  # stands for a live docgen serve
        running.lock_workers()
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(free_port())],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert "already runs the jobs" in proc.stderr


@pytest.mark.timeout(90)
def test_two_web_processes_in_redis_mode_only_enqueue(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    from bot.runtime.queue.redis_store import RedisStore

    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = serve_env("http://127.0.0.1:9", private_key_pem, tmp_path / "data")
    env.update(REDIS_URL=redis_url, DOCGEN_REDIS_PREFIX=ns)
    proc = start_serve(env, tmp_path, port)
    try:
        for n in range(6):
            with httpx.Client() as client:
                payload = pull.webhook_payload("synchronize" if n else "opened")
                assert deliver(client, base, "pull_request", payload).status_code == 202
        store = RedisStore.from_url(redis_url, prefix=ns)
        try:
            # Six pushes, one PR: one entry in arq's queue, whichever process took them.
            assert store.client.zcard(store.queue_name) == 1
        finally:
            store.close()
        text = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'docgen_webhook_deliveries_total{event="pull_request",outcome="queued"} 6.0' in text
        assert "docgen_job_results_total{" not in text  # no job ran in a web process
    finally:
        stderr = stop_serve(proc)
    assert proc.returncode == 0, stderr[-3000:]
