"""The web process: signature first, clear 4xx, journal before 2xx, health and metrics."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from githubkit.webhooks import sign
from starlette.testclient import TestClient

from bot.app import MAX_BODY_BYTES, Deps, create_app
from bot.jobs import Journal
from bot.metrics import Metrics
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
    journal = Journal(tmp_path / "journal.sqlite3")
    forgotten: list[int] = []
    woken: list[bool] = []
    deps = Deps(
        webhook_secret=SECRET,
        journal=journal,
        metrics=Metrics(),
        app_id=APP_ID,
        wake=lambda: woken.append(True),
        forget=forgotten.append,
    )
    with TestClient(create_app(deps)) as client:
        yield client, journal, forgotten, woken, deps
    journal.close()


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
        client, journal, _, woken, _ = env
        r = post(client, "pull_request", pull_request_event("opened"), delivery="d-1")
        assert r.status_code == 202, r.text
        assert r.json()["message"] == "queued"
        job = journal.get(r.json()["job_id"])
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
        client, journal, _, _, _ = env
        r = post(client, "pull_request", pull_request_event(), secret=secret, headers=headers)
        assert r.status_code == 401 and r.json()["message"] == message
        assert journal.counts().get("queued", 0) == 0

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
        big = b"{" + b" " * MAX_BODY_BYTES + b"}"
        r = post(client, "pull_request", None, raw=big)
        assert r.status_code == 413

    def test_wrong_method(self, env):
        client, *_ = env
        assert client.get("/webhook").status_code == 405


class TestRouting:
    def test_same_delivery_twice_is_acted_on_once(self, env):
        client, journal, _, _, _ = env
        first = post(client, "pull_request", pull_request_event(), delivery="same-id")
        second = post(client, "pull_request", pull_request_event(), delivery="same-id")
        assert first.status_code == 202
        assert second.status_code == 200 and "duplicate" in second.json()["message"]
        assert journal.counts().get("queued") == 1

    def test_newer_push_supersedes_the_queued_one(self, env):
        client, journal, _, _, _ = env
        post(client, "pull_request", pull_request_event("opened", head_sha="a" * 40))
        r = post(client, "pull_request", pull_request_event("synchronize", head_sha="b" * 40))
        assert r.status_code == 202 and r.json()["coalesced"] is True
        [job] = [j for j in journal.history("Codertocat/Hello-World#2") if j.state == "queued"]
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
        assert [r.name for r in lines] == ["bot.app", "bot.app"], [r.getMessage() for r in lines]
        assert lines[0].job_id == first.json()["job_id"]  # type: ignore[attr-defined]
        assert not hasattr(lines[0], "coalesced")
        assert lines[1].job_id == second.json()["job_id"]  # type: ignore[attr-defined]
        assert lines[1].coalesced is True  # type: ignore[attr-defined]
        assert lines[1].job_key == "Codertocat/Hello-World#2"  # type: ignore[attr-defined]

    def test_ignored_events_are_200(self, env):
        client, journal, _, _, _ = env
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
        assert journal.counts().get("queued", 0) == 0

    def test_command_and_button_and_reply(self, env):
        client, journal, _, _, _ = env
        assert (
            post(client, "issue_comment", issue_comment_event("/docgen --style numpy")).status_code
            == 202
        )
        assert post(client, "check_run", check_run_event("requested_action")).status_code == 202
        r = post(client, "issue_comment", issue_comment_event("/docgen help"))
        assert r.status_code == 202
        reply = journal.get(r.json()["job_id"])
        assert reply.kind == "reply" and reply.payload["type"] == "reply"

    def test_installation_deleted_forgets_tokens(self, env):
        client, _, forgotten, _, _ = env
        r = post(client, "installation", installation_event("deleted"))
        assert r.status_code == 200 and forgotten == [INSTALLATION_ID]


def test_health_and_metrics(env):
    client, journal, *_ = env
    assert client.get("/healthz").json() == {"status": "ok"}
    post(client, "pull_request", pull_request_event())
    post(client, "pull_request", pull_request_event(), secret="nope")
    text = client.get("/metrics").text
    assert 'docgen_webhook_deliveries_total{event="pull_request",outcome="queued"} 1.0' in text
    assert (
        'docgen_webhook_deliveries_total{event="pull_request",outcome="bad_signature"} 1.0' in text
    )
    assert "docgen_webhook_ack_seconds_bucket" in text
    journal.close()
    assert client.get("/healthz").status_code == 503
