"""Scale-out end to end: web app → Redis → ``docgen worker`` processes → fake GitHub.

The web side is the app ``docgen serve`` builds with ``REDIS_URL`` (a Starlette
TestClient over :func:`bot.runtime.compose.build`); workers are real ``python -m bot.cli worker``
processes; GitHub is the fake on a loopback port; Redis is real (``tests.redis_helpers``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from arq.constants import in_progress_key_prefix
from starlette.testclient import TestClient

from bot.cli.sample import BASE, HEAD
from bot.config import Settings
from bot.runtime import compose
from tests import redis_helpers
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID, Fault, signed_delivery
from tests.redis_helpers import (
    SECRET,
    free_port,
    gate,
    redis_client,
    wait_for,
    worker_env,
    workers,
)

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

PATH = "shop/inventory.py"
LEASE = 2.0  # s: how long a killed worker's job waits for another worker

pytestmark = pytest.mark.timeout(120)


def web(private_key_pem: str, redis_url: str, prefix: str, api_url: str = "https://api.github.com"):
    """The web app of ``docgen serve`` with REDIS_URL set."""
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_webhook_secret=SECRET,
        github_api_url=api_url,
        redis_url=redis_url,
        docgen_redis_prefix=prefix,
    )
    runtime = compose.build(settings)
    assert runtime.pool is None  # no in-process workers in this mode
    return runtime


def payload_for(pull, action="opened"):
    return pull.webhook_payload(action)


def deliver(client, payload, delivery=None, event="pull_request"):
    body, headers = signed_delivery(SECRET, event, payload, delivery)
    return client.post("/webhook", content=body, headers=headers)


def scrape(port: int) -> dict[str, float]:
    """``GET /metrics`` of a worker process: sample (name and labels) → value."""
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def job(redis_url: str, prefix: str, job_id: int) -> dict[str, str]:
    client = redis_client(redis_url)
    try:
        return client.hgetall(f"{prefix}:job:{job_id}")
    finally:
        client.close()


def test_the_web_process_enqueues_and_a_worker_process_reviews(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    runs = fake_github.repo(f"{OWNER}/{REPO}").check_runs
    with fake_github.serve() as api_url:
        runtime = web(private_key_pem, redis_url, ns)
        with TestClient(runtime.app) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            r = deliver(client, payload_for(pull), delivery="delivery-1")
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            assert 'docgen_jobs{state="queued"} 1.0' in client.get("/metrics").text
        assert job(redis_url, ns, job_id)["state"] == "queued"
        assert not runs  # nothing ran in the web process

        port = free_port()
        env = worker_env(
            redis_url=redis_url,
            prefix=ns,
            api_url=api_url,
            private_key_pem=private_key_pem,
            DOCGEN_METRICS_PORT=str(port),
        )
        with workers(env, tmp_path) as [worker]:
            wait_for(lambda: job(redis_url, ns, job_id)["state"] == "done", 60, "the job")
            metrics = scrape(port)
            # Job work is niced (DOCGEN_JOBS_NICE, default 10): web processes sharing
            # the machine answer first.
            stat = Path(f"/proc/{worker.pid}/stat").read_text()
            assert int(stat.rsplit(")", 1)[1].split()[16]) == 10
    assert worker.proc.returncode == 0  # SIGTERM: arq stops gracefully
    with pytest.raises(httpx.ConnectError):  # the port is closed with the worker
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert metrics['docgen_job_results_total{result="done"}'] == 1
    assert metrics["docgen_job_seconds_count"] == 1
    assert metrics['docgen_jobs{state="queued"}'] == 0  # arq's queue, read at the scrape
    assert metrics["docgen_jobs_running"] == 0
    assert metrics['docgen_github_api_calls_total{method="GET"}'] > 0
    assert metrics['docgen_github_api_calls_total{method="POST"}'] >= 2  # check run, review
    assert 0 < metrics["docgen_github_rate_limit_remaining"] <= 5000
    assert metrics["docgen_llm_call_seconds_count"] >= 1  # the offline provider, timed too
    assert metrics["docgen_llm_cost_usd_total"] == 0  # offline: no tokens, no cost
    assert metrics['docgen_suggestions_total{action="added"}'] == 5
    [run] = runs.values()
    assert run.status == "completed" and run.head_sha == pull.head_sha
    assert "Docstring coverage" in run.summary
    assert len(pull.reviews) == 1 and len(pull.comments) == 6

    records = [json.loads(line) for line in worker.log().splitlines() if line.strip()]
    mine = [r for r in records if r.get("delivery_id") == "delivery-1"]
    assert any(r["msg"].startswith("reviewed:") for r in mine), "job lines carry the delivery id"
    assert any(r["msg"] == "docgen worker stopped" for r in records)
    log_text = worker.log()
    assert SECRET not in log_text and private_key_pem.splitlines()[1] not in log_text


def test_docgen_serve_with_redis_url_only_enqueues(
    make_pr, private_key_pem, redis_url, ns, tmp_path
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    port = free_port()
    env = worker_env(
        redis_url=redis_url,
        prefix=ns,
        api_url="https://api.github.com",  # never called: this process runs no job
        private_key_pem=private_key_pem,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read())
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, "/healthz")
        with httpx.Client(base_url=base, timeout=10) as http:
            r = deliver(http, payload_for(pull), delivery="d-serve")
        assert r.status_code == 202, r.text
        time.sleep(0.5)  # an in-process worker would have claimed it by now
        assert job(redis_url, ns, r.json()["job_id"])["state"] == "queued"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(r["msg"].startswith("docgen started (web only") for r in records)
    assert any(r.get("delivery_id") == "d-serve" and "-> 202" in r["msg"] for r in records)


def test_a_killed_workers_job_finishes_on_another_with_the_same_check_run(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path, record_property
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    runs = fake_github.repo(f"{OWNER}/{REPO}").check_runs
    # The first worker to fetch the PR's files is held there: its check run is open.
    held = gate(fake_github, "GET", r"/pulls/\d+/files$")
    with fake_github.serve() as api_url:
        env = worker_env(
            redis_url=redis_url,
            prefix=ns,
            api_url=api_url,
            private_key_pem=private_key_pem,
            DOCGEN_JOB_LEASE=str(LEASE),
        )
        try:
            with workers(env, tmp_path, count=2) as procs:
                runtime = web(private_key_pem, redis_url, ns)
                with TestClient(runtime.app) as client:
                    job_id = deliver(client, payload_for(pull)).json()["job_id"]
                wait_for(held.reached.is_set, 30, "a worker to reach the held request")
                first = job(redis_url, ns, job_id)
                assert first["state"] == "running" and json.loads(first["data"])["check_run_id"]
                [opened] = runs  # the check run the first attempt opened
                pid = int(first["worker"].split(":")[-2])
                victim = next(p for p in procs if p.pid == pid)
                survivor = next(p for p in procs if p.pid != pid)

                victim.kill()
                killed = time.monotonic()
                wait_for(
                    lambda: job(redis_url, ns, job_id).get("attempts") == "2",
                    30,
                    "another worker to take the job over",
                )
                taken_over = time.monotonic() - killed
                wait_for(lambda: job(redis_url, ns, job_id)["state"] == "done", 60, "the job")
                finished = time.monotonic() - killed
        finally:
            held.open()
    record_property("takeover_s", round(taken_over, 2))
    record_property("finish_after_kill_s", round(finished, 2))
    print(f"\nkill -9 → taken over in {taken_over:.2f} s, finished in {finished:.2f} s")
    assert taken_over < LEASE + 3  # one lease, then arq's next poll
    final = job(redis_url, ns, job_id)
    assert final["worker"] == ""  # settled
    assert list(runs) == [opened]  # the same check run, finished: no second one
    assert runs[opened].status == "completed"
    assert len(pull.reviews) == 1 and len(pull.comments) == 6
    assert "was interrupted" in survivor.log() and "lost during attempt 1" in survivor.log()


def test_a_delivery_posted_to_two_web_processes_is_queued_once(
    make_pr, private_key_pem, redis_url, ns
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    one, two = (web(private_key_pem, redis_url, ns) for _ in range(2))
    with TestClient(one.app) as a, TestClient(two.app) as b:
        start = threading.Barrier(2)

        def post(client):
            start.wait()
            return deliver(client, payload_for(pull), delivery="same-delivery").status_code

        with ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(post, [a, b])) == [200, 202]
        for client in (a, b):  # GitHub's redelivery, to either process
            assert deliver(client, payload_for(pull), delivery="same-delivery").status_code == 200
    client = redis_client(redis_url)
    try:
        assert client.get(f"{ns}:seq") == "1"
        assert client.zcard(f"{ns}:queue") == 1
    finally:
        client.close()


def test_pushes_while_queued_leave_one_queue_entry_and_only_the_newest_head_runs(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    pushes = 6
    heads = [HEAD + f"\n\ndef step_{i}(value):\n    return value + {i}\n" for i in range(pushes)]
    pulls = []
    with fake_github.serve() as api_url:
        runtime = web(private_key_pem, redis_url, ns)
        with TestClient(runtime.app) as client:
            answers = []
            for head in heads:  # pushed again and again: PR #1, a new head each time
                pulls.append(make_pr({PATH: BASE}, {PATH: head}))
                answers.append(deliver(client, payload_for(pulls[-1], "synchronize")).json())
        assert [a["coalesced"] for a in answers] == [False] + [True] * (pushes - 1)
        newest = answers[-1]["job_id"]
        redis = redis_client(redis_url)
        try:  # one entry in arq's queue for the PR, not one per push
            assert redis.zrange(f"{ns}:queue", 0, -1) == [f"{ns}:{newest}"]
            assert redis.keys(f"arq:job:{ns}:*") == [f"arq:job:{ns}:{newest}"]
        finally:
            redis.close()
        env = worker_env(
            redis_url=redis_url, prefix=ns, api_url=api_url, private_key_pem=private_key_pem
        )
        with workers(env, tmp_path) as [worker]:
            wait_for(lambda: job(redis_url, ns, newest)["state"] == "done", 60, "the newest job")
    for answer in answers[:-1]:
        assert job(redis_url, ns, answer["job_id"])["state"] == "superseded"
    [run] = fake_github.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.head_sha == pulls[-1].head_sha and run.status == "completed"
    assert len(pulls[-1].reviews) == 1 and all(p.reviews == [] for p in pulls[:-1])
    assert f"step_{pushes - 1}" in run.summary  # the function only the newest head has
    assert "not run" not in worker.log()  # no superseded entry was pulled and dropped


def test_a_deferred_jobs_check_run_is_cancelled_by_the_push_that_supersedes_it(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    older = make_pr({PATH: BASE}, {PATH: HEAD})
    # Fetching the files fails four times: the job's check run is open, GitHub looks
    # down, and the job waits in arq's queue (RetryLater) for the next try.
    fake_github.fail("pulls.files", *[Fault.server_error(502)] * 4)
    runs = fake_github.repo(f"{OWNER}/{REPO}").check_runs
    with fake_github.serve() as api_url:
        runtime = web(private_key_pem, redis_url, ns)
        env = worker_env(
            redis_url=redis_url, prefix=ns, api_url=api_url, private_key_pem=private_key_pem
        )
        with TestClient(runtime.app) as client, workers(env, tmp_path):
            first = deliver(client, payload_for(older, "synchronize")).json()["job_id"]

            def deferred() -> bool:
                fields = job(redis_url, ns, first)
                if not (fields["state"] == "queued" and fields["deferrals"] == "1"):
                    return False
                # Our hash says "deferred" before arq has finished the run: arq re-queues
                # the job (Retry) and drops its in-progress key in one transaction after
                # the function returns.  Until then the newer push cannot take it out of
                # arq's queue (a started run is left to end as a no-op).
                arq_id = f"{ns}:{first}"
                redis = redis_client(redis_url)
                try:
                    in_progress = redis.exists(in_progress_key_prefix + arq_id)
                    return not in_progress and redis.zscore(f"{ns}:queue", arq_id) is not None
                finally:
                    redis.close()

            wait_for(deferred, 30, "the first job to be deferred")
            [opened] = runs
            newer = make_pr({PATH: BASE}, {PATH: HEAD + "\n\ndef double(v):\n    return 2 * v\n"})
            second = deliver(client, payload_for(newer, "synchronize")).json()
            assert second["coalesced"]
            redis = redis_client(redis_url)
            try:
                assert redis.zrange(f"{ns}:queue", 0, -1) == [f"{ns}:{second['job_id']}"]
            finally:
                redis.close()
            wait_for(
                lambda: job(redis_url, ns, second["job_id"])["state"] == "done", 60, "the newer job"
            )
    assert job(redis_url, ns, first)["state"] == "superseded"
    assert len(runs) == 2
    old_run, new_run = runs[opened], next(r for i, r in runs.items() if i != opened)
    assert (old_run.head_sha, old_run.status, old_run.conclusion) == (
        older.head_sha,
        "completed",
        "cancelled",
    )
    assert new_run.head_sha == newer.head_sha and new_run.status == "completed"
    assert older.reviews == [] and len(newer.reviews) == 1


def test_an_installation_deleted_on_the_web_is_forgotten_by_the_worker(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    installation = pull.webhook_payload()["installation"]["id"]
    with fake_github.serve() as api_url:
        runtime = web(private_key_pem, redis_url, ns)
        env = worker_env(
            redis_url=redis_url, prefix=ns, api_url=api_url, private_key_pem=private_key_pem
        )
        with TestClient(runtime.app) as client, workers(env, tmp_path) as [worker]:

            def review(action: str) -> None:
                job_id = deliver(client, payload_for(pull, action)).json()["job_id"]
                wait_for(lambda: job(redis_url, ns, job_id)["state"] == "done", 60, "the job")

            review("opened")
            review("synchronize")
            assert fake_github.token_requests == 1  # the worker's cached token, reused
            event = {"action": "suspend", "installation": {"id": installation}}
            r = deliver(client, event, event="installation")
            assert r.status_code == 200 and r.json()["message"].endswith("forgotten")
            review("synchronize")
            assert fake_github.token_requests == 2  # dropped in the worker: a fresh token
    assert f"installation {installation} was deleted or suspended" in worker.log()


def test_sigterm_lets_a_running_job_finish(
    fake_github, make_pr, private_key_pem, redis_url, ns, tmp_path
):
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    held = gate(fake_github, "GET", r"/pulls/\d+/files$")
    with fake_github.serve() as api_url:
        env = worker_env(
            redis_url=redis_url, prefix=ns, api_url=api_url, private_key_pem=private_key_pem
        )
        try:
            with workers(env, tmp_path) as [worker]:
                runtime = web(private_key_pem, redis_url, ns)
                with TestClient(runtime.app) as client:
                    job_id = deliver(client, payload_for(pull)).json()["job_id"]
                wait_for(held.reached.is_set, 30, "the job to start")
                worker.proc.terminate()  # SIGTERM mid-job
                time.sleep(0.5)
                assert worker.proc.poll() is None  # draining, not dead
                held.open()
                assert worker.proc.wait(timeout=30) == 0
        finally:
            held.open()
    assert job(redis_url, ns, job_id)["state"] == "done"
    [run] = fake_github.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "completed" and len(pull.reviews) == 1


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        (None, "REDIS_URL is not set (docgen worker needs the Redis queue"),
        ("closed-port", "REDIS_URL: cannot reach Redis"),
        ("http://127.0.0.1:1/", "REDIS_URL must be a redis://, rediss:// or unix:// URL"),
    ],
    ids=["unset", "unreachable", "bad-scheme"],
)
def test_worker_refuses_to_start_with_one_clear_line(redis, message, private_key_pem, tmp_path):
    env = worker_env(
        redis_url="",
        prefix="unused",
        api_url="https://api.github.com",
        private_key_pem=private_key_pem,
    )
    if redis == "closed-port":
        env["REDIS_URL"] = f"redis://:hunter2-SECRET@127.0.0.1:{free_port()}/0"
    elif redis is not None:
        env["REDIS_URL"] = redis
    else:
        del env["REDIS_URL"]
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "hunter2" not in proc.stderr
