"""``docgen serve`` as a real process: uvicorn, lifespan workers, JSON logs, SIGTERM.

The fake GitHub listens on a loopback port; the server is started exactly as a user
would (``python -m bot.cli serve``) with the App's settings in its environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from githubkit.webhooks import sign

from bot.cli.sample import BASE, HEAD
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID

SECRET = "process-webhook-secret-7f3a"
PATH = "shop/inventory.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(90)
def test_serve_process_end_to_end(fake_github, make_pr, private_key_pem, tmp_path):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    port = free_port()
    with fake_github.serve() as api_url:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_"))
        }
        env.update(
            GITHUB_APP_ID=str(APP_ID),
            GITHUB_PRIVATE_KEY=private_key_pem,
            GITHUB_WEBHOOK_SECRET=SECRET,
            GITHUB_API_URL=api_url,
            DOCGEN_DATA_DIR=str(tmp_path / "data"),
            LOG_LEVEL="INFO",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return proc.poll() is not None and pytest.fail(proc.stderr.read())

            wait_for(healthy, 30, "/healthz")
            repo = {"full_name": f"{OWNER}/{REPO}"}
            payload = {
                "action": "opened",
                "number": pull.number,
                "pull_request": {
                    "number": pull.number,
                    "state": "open",
                    "draft": False,
                    "head": {"sha": pull.head_sha, "repo": repo},
                    "base": {"sha": pull.base_sha, "repo": repo},
                },
                "repository": repo,
                "installation": {"id": 1},
            }
            body = json.dumps(payload).encode()
            delivery = str(uuid.uuid4())
            started = time.perf_counter()
            r = httpx.post(
                f"{base}/webhook",
                content=body,
                headers={
                    "X-GitHub-Event": "pull_request",
                    "X-GitHub-Delivery": delivery,
                    "X-Hub-Signature-256": sign(SECRET, body, "sha256"),
                    "Content-Type": "application/json",
                },
                timeout=10,
            )
            ack = time.perf_counter() - started
            assert r.status_code == 202, r.text
            assert ack < 5  # GitHub gives up after 10 s; we answer before doing any work
            runs = fake_github.repo(f"{OWNER}/{REPO}").check_runs
            wait_for(
                lambda: any(run.status == "completed" for run in runs.values()), 60, "the check run"
            )
            assert len(pull.reviews) == 1 and pull.comments
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            assert (
                'docgen_webhook_deliveries_total{event="pull_request",outcome="queued"} 1.0'
                in metrics
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit -15) as it should.
    assert proc.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records
    mine = [r for r in records if r.get("delivery_id") == delivery]
    assert any("webhook pull_request -> 202" in r["msg"] for r in mine)
    assert any(r["msg"].startswith("reviewed:") for r in mine), "worker lines carry the delivery id"
    assert any(r["msg"] == "docgen stopped" for r in records)
    for secret in (SECRET, private_key_pem.splitlines()[1]):
        assert secret not in stderr
