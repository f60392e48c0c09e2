"""The web process: signature first, clear 4xx, store before 2xx, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid

import pytest
from githubkit.webhooks import sign
from starlette.testclient import TestClient

from bot.runtime import events
from bot.runtime.metrics import Metrics
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.web import Deps, Recorder, create_app
from tests.webhook_payloads import (
    APP_ID,
    INSTALLATION_ID,
    check_run_event,
    installation_event,
    issue_comment_event,
    pull_request_event,
)

SECRET = "It's a Secret to Everybody"


@pytest.fixture
def env(tmp_path):
    store = SqliteStore(tmp_path / "journal.sqlite3")
    forgotten: list[int] = []
    woken: list[bool] = []
    deps = Deps(
        webhook_secret=SECRET,
        store=store,
        metrics=Metrics(),
        app_id=APP_ID,
        wake=lambda: woken.append(True),
        forget=forgotten.append,
    )
    with TestClient(create_app(deps)) as client:
        yield client, store, forgotten, woken, deps
    store.close()


def post(
    client,
    event: str,
    payload,
    *,
    secret: str = SECRET,
    delivery: str | None = None,
    headers=None,
    raw: bytes | None = None,
):
    body = raw if raw is not None else json.dumps(payload).encode()
    h = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body, "sha256"),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    h.update(headers or {})
    return client.post(
        "/webhook", content=body, headers={k: v for k, v in h.items() if v is not None}
    )


class TestSignature:
    def test_valid_pr_event_is_queued(self, env):
        client, store, _, woken, _ = env
        r = post(client, "pull_request", pull_request_event("opened"), delivery="d-1")
        assert r.status_code == 202, r.text
        assert r.json()["message"] == "queued"
        job = store.get(r.json()["job_id"])
        assert job.key == "Codertocat/Hello-World#2" and job.kind == "review"
        assert job.payload["installation_id"] == INSTALLATION_ID
        assert job.payload["head_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
        assert job.payload["delivery_id"] == "d-1" and job.delivery_id == "d-1"
        assert woken == [True]

    @pytest.mark.parametrize(
        ("headers", "secret", "message"),
        [
            ({"X-Hub-Signature-256": None}, SECRET, "missing X-Hub-Signature-256"),
            ({}, "wrong secret", "signature does not match"),
            ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, SECRET, "signature does not match"),
            ({"X-Hub-Signature-256": "garbage"}, SECRET, "missing X-Hub-Signature-256"),
        ],
        ids=["missing", "other-secret", "zeros", "garbage"],
    )
    def test_forged_or_missing_signatures_are_401_and_leave_no_trace(
        self, env, headers, secret, message
    ):
        client, store, _, _, _ = env
        r = post(client, "pull_request", pull_request_event(), secret=secret, headers=headers)
        assert r.status_code == 401 and r.json()["message"] == message
        assert store.counts().get("queued", 0) == 0

    def test_sha1_signature_alone_is_not_enough(self, env):
        client, *_ = env
        body = json.dumps(pull_request_event()).encode()
        r = post(
            client,
            "pull_request",
            None,
            raw=body,
            headers={"X-Hub-Signature-256": None, "X-Hub-Signature": sign(SECRET, body, "sha1")},
        )
        assert r.status_code == 401

    def test_signature_is_checked_before_json(self, env):
        client, *_ = env
        r = post(client, "pull_request", None, raw=b"{not json", secret="wrong")
        assert r.status_code == 401  # not 400: an unsigned body is never parsed


class TestBadRequests:
    def test_malformed_json(self, env):
        client, *_ = env
        r = post(client, "pull_request", None, raw=b"{not json")
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        r = post(client, "pull_request", None, raw=b"[1, 2]")
        assert r.status_code == 400 and "not a JSON object" in r.json()["message"]
        r = post(client, "pull_request", None, raw=b"\xff\xfe")
        assert r.status_code == 400

    def test_missing_headers(self, env):
        client, *_ = env
        r = post(client, "pull_request", pull_request_event(), headers={"X-GitHub-Event": None})
        assert r.status_code == 400 and "X-GitHub-Event" in r.json()["message"]
        r = post(client, "pull_request", pull_request_event(), headers={"X-GitHub-Delivery": None})
        assert r.status_code == 400 and "X-GitHub-Delivery" in r.json()["message"]

    def test_oversized_body_is_413(self, env):
        client, *_ = env
        # GitHub's cap: https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
        big = b"{" + b" " * (25 * 1024 * 1024) + b"}"
        r = post(client, "pull_request", None, raw=big)
        assert r.status_code == 413

    def test_wrong_method(self, env):
        client, *_ = env
        assert client.get("/webhook").status_code == 405


class TestRouting:
    def test_same_delivery_twice_is_acted_on_once(self, env):
        client, store, _, _, _ = env
        first = post(client, "pull_request", pull_request_event(), delivery="same-id")
        second = post(client, "pull_request", pull_request_event(), delivery="same-id")
        assert first.status_code == 202
        assert second.status_code == 200 and "duplicate" in second.json()["message"]
        assert store.counts().get("queued") == 1

    def test_newer_push_supersedes_the_queued_one(self, env):
        client, store, _, _, _ = env
        post(client, "pull_request", pull_request_event("opened", head_sha="a" * 40))
        r = post(client, "pull_request", pull_request_event("synchronize", head_sha="b" * 40))
        assert r.status_code == 202 and r.json()["coalesced"] is True
        [job] = [j for j in store.history("Codertocat/Hello-World#2") if j.state == "queued"]
        assert job.payload["head_sha"] == "b" * 40

    def test_one_log_line_per_delivery_says_what_became_of_it(self, env, caplog):
        client, _, _, _, _ = env
        with caplog.at_level(logging.INFO):
            first = post(client, "pull_request", pull_request_event("opened", head_sha="a" * 40))
            second = post(
                client, "pull_request", pull_request_event("synchronize", head_sha="b" * 40)
            )
        lines = [
            r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("bot.")
        ]
        assert [r.name for r in lines] == ["bot.runtime.web", "bot.runtime.web"], [r.getMessage() for r in lines]
        assert lines[0].job_id == first.json()["job_id"]  # type: ignore[attr-defined]
        assert not hasattr(lines[0], "coalesced")
        assert lines[1].job_id == second.json()["job_id"]  # type: ignore[attr-defined]
        assert lines[1].coalesced is True  # type: ignore[attr-defined]
        assert lines[1].job_key == "Codertocat/Hello-World#2"  # type: ignore[attr-defined]

    def test_a_journal_held_by_another_process_is_waited_for_politely(self, env, monkeypatch):
        """Another web process holds the write lock: the handler retries with the event
        loop free (no busy-handler sleep), then records and answers 202."""
        client, store, _, _, _ = env
        attempts: list[bool] = []
        real = store.record_batch

        def counting(batch, *, wait):
            attempts.append(wait)
            return real(batch, wait=wait)

        monkeypatch.setattr(store, "record_batch", counting)
        other = SqliteStore(store.path)
        other._conn().execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, other._conn().execute, args=("COMMIT",))
        release.start()
        try:
            r = post(client, "pull_request", pull_request_event())
        finally:
            release.join()
            other.close()
        assert r.status_code == 202, r.text
        assert len(attempts) > 3 and not any(attempts)  # polite retries only
        assert store.counts().get("queued") == 1

    def test_ignored_events_are_200(self, env):
        client, store, _, _, _ = env
        for event, payload in [
            ("pull_request", pull_request_event("closed")),
            ("issue_comment", issue_comment_event("/docgen", association="NONE")),
            ("push", {"ref": "refs/heads/main"}),
            ("ping", {"zen": "Design for failure.", "hook_id": 1}),
        ]:
            r = post(client, event, payload)
            assert r.status_code == 200 and r.json()["message"].startswith("ignored"), (
                event,
                r.text,
            )
        assert store.counts().get("queued", 0) == 0

    def test_command_and_button_and_reply(self, env):
        client, store, _, _, _ = env
        assert (
            post(client, "issue_comment", issue_comment_event("/docgen --style numpy")).status_code
            == 202
        )
        assert post(client, "check_run", check_run_event("requested_action")).status_code == 202
        r = post(client, "issue_comment", issue_comment_event("/docgen help"))
        assert r.status_code == 202
        reply = store.get(r.json()["job_id"])
        assert reply.kind == "reply" and reply.payload["type"] == "reply"

    def test_installation_deleted_forgets_tokens(self, env):
        client, _, forgotten, _, _ = env
        r = post(client, "installation", installation_event("deleted"))
        assert r.status_code == 200 and forgotten == [INSTALLATION_ID]


def test_health_and_metrics(env):
    client, store, *_ = env
    assert client.get("/healthz").json() == {"status": "ok"}
    post(client, "pull_request", pull_request_event())
    post(client, "pull_request", pull_request_event(), secret="nope")
    text = client.get("/metrics").text
    assert 'docgen_webhook_deliveries_total{event="pull_request",outcome="queued"} 1.0' in text
    # Before the signature matches, the event header is a stranger's: one fixed label.
    assert 'docgen_webhook_deliveries_total{event="other",outcome="bad_signature"} 1.0' in text
    assert "docgen_webhook_ack_seconds_bucket" in text
    store.close()
    assert client.get("/healthz").status_code == 503


# ------------------------------------------------------------------ group commit


def _run_decision(number: int, head: str) -> events.Run:
    return events.Run(INSTALLATION_ID, "octo", "demo", number, head, "push")


def test_deliveries_of_one_loop_turn_share_one_transaction(tmp_path):
    store = SqliteStore(tmp_path / "journal.sqlite3")
    recorder = Recorder(store)

    async def scenario():
        return await asyncio.gather(
            *(
                recorder.record(
                    _run_decision(n % 3, f"{n:040x}"), f"d-{n}", "pull_request", "x", "run"
                )
                for n in range(12)
            ),
            recorder.record(_run_decision(1, "f" * 40), "d-3", "pull_request", "x", "run"),
        )

    results = asyncio.run(scenario())
    assert recorder.batches == 1
    assert [new for new, _ in results] == [True] * 12 + [False]  # d-3 twice: once
    jobs = [job for _, job in results[:12]]
    assert len({j.job_id for j in jobs}) == 12
    assert [j.coalesced for j in jobs] == [False] * 3 + [True] * 9  # 3 PRs, newest wins
    assert store.counts()["queued"] == 3 and store.counts()["superseded"] == 9
    store.close()


def test_one_failing_delivery_fails_alone_and_leaves_no_trace(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "journal.sqlite3")
    recorder = Recorder(store)
    real = store.enqueue

    def enqueue(key, kind, payload, *, delivery_id=None):
        if delivery_id == "d-bad":
            raise RuntimeError("disk trouble for this one")
        return real(key, kind, payload, delivery_id=delivery_id)

    monkeypatch.setattr(store, "enqueue", enqueue)

    async def scenario():
        return await asyncio.gather(
            recorder.record(_run_decision(1, "a" * 40), "d-1", "pull_request", "x", "run"),
            recorder.record(_run_decision(2, "b" * 40), "d-bad", "pull_request", "x", "run"),
            recorder.record(_run_decision(3, "c" * 40), "d-3", "pull_request", "x", "run"),
            return_exceptions=True,
        )

    first, bad, third = asyncio.run(scenario())
    assert recorder.batches == 1
    assert first[0] is True and third[0] is True
    assert isinstance(bad, RuntimeError)
    # Rolled back to its savepoint: neither the delivery nor a job remains, so
    # GitHub's redelivery of it is accepted as new.
    assert not store.delivery_seen("d-bad") and store.delivery_seen("d-3")
    assert store.counts()["queued"] == 2
    monkeypatch.setattr(store, "enqueue", real)
    again = asyncio.run(
        recorder.record(_run_decision(2, "b" * 40), "d-bad", "pull_request", "x", "run")
    )
    assert again[0] is True
    store.close()


def test_a_failed_delivery_is_a_500_and_the_next_one_is_fine(env, monkeypatch):
    client, store, _, _, _ = env
    real = store.record_delivery
    calls = iter([RuntimeError("boom"), None])

    def flaky(*args, **kwargs):
        exc = next(calls, None)
        if exc is not None:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "record_delivery", flaky)
    with TestClient(client.app, raise_server_exceptions=False) as plain:
        assert post(plain, "pull_request", pull_request_event(), delivery="x-1").status_code == 500
        assert post(plain, "pull_request", pull_request_event(), delivery="x-1").status_code == 202
