"""Sentry: per-job scope and transaction, and nothing secret in what is sent (invariant 9).

No network: the SDK gets a DSN on ``sentry.invalid`` and a transport that keeps the
envelopes in memory.  Every test leaves Sentry switched off again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from githubkit.webhooks import sign
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from bot import logs
from bot.cli.sample import BASE, HEAD
from bot.config import Settings
from bot.docstrings.llm.offline import OfflineProvider
from bot.runtime import compose, sentry
from bot.runtime.queue.store import RetryLater
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID, Fault
from tests.test_app_e2e import payload_for

DSN = "https://public@sentry.invalid/1"
WEBHOOK_SECRET = "sentry-test-webhook-secret-4e1d"
GITHUB_TOKEN = "ghs_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0000"
OPENAI_KEY = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6"
SOURCE = "def leaked_helper_f00d(token):\n    return token.upper()  # private code\n"
TAGS = {
    "repo": f"{OWNER}/{REPO}",
    "pr": "7",
    "delivery_id": "d-2f7c",
    "installation_id": "1",
    "job_key": f"{OWNER}/{REPO}#7",
}


class MemoryTransport(Transport):
    """Keeps every envelope the client would send."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == kind and item.payload.json is not None
        ]

    def jobs(self) -> list[dict[str, Any]]:
        """The job transactions (the in-process fake GitHub's requests are traced too)."""
        return [t for t in self.items("transaction") if t["transaction"].startswith("docgen.")]

    def serialized(self) -> str:
        return "".join(e.serialize().decode("utf-8", "replace") for e in self.envelopes)


def settings_for(private_key_pem: str, **more: Any) -> Settings:
    return Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_webhook_secret=WEBHOOK_SECRET,
        openai_api_key=OPENAI_KEY,
        sentry_dsn=DSN,
        **more,
    )


@pytest.fixture
def capture() -> Iterator[MemoryTransport]:
    transport = MemoryTransport()
    yield transport
    # Switch Sentry off for every later test: close the client, then no client at all.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    assert not sentry_sdk.get_client().is_active()


def secrets_in(text: str, private_key_pem: str) -> list[str]:
    key_lines = [line for line in private_key_pem.splitlines() if not line.startswith("-----")]
    found = [s for s in (WEBHOOK_SECRET, GITHUB_TOKEN, OPENAI_KEY) if s in text]
    found += [f"private key line {i}" for i, line in enumerate(key_lines) if line in text]
    found += [marker for marker in ("leaked_helper_f00d", "private code") if marker in text]
    return found


def run_failing_job(private_key_pem: str) -> None:
    source_code = SOURCE  # a local holding source code: must not be sent
    token = GITHUB_TOKEN  # and one holding a token
    with sentry.job_scope(
        repo=f"{OWNER}/{REPO}",
        pr=7,
        delivery_id="d-2f7c",
        installation_id=1,
        job_key=f"{OWNER}/{REPO}#7",
    ):
        raise RuntimeError(
            f"GitHub refused token {token} (secret {WEBHOOK_SECRET}) with key "
            f"{private_key_pem} while reading {len(source_code)} characters of code"
        )


@pytest.mark.parametrize(
    "sdk_options",
    [
        pytest.param({}, id="as-configured"),
        # The SDK told to collect locals and source lines: before_send must still drop them.
        pytest.param(
            {"include_local_variables": True, "include_source_context": True},
            id="before-send-alone",
        ),
    ],
)
def test_job_error_is_tagged_and_carries_no_secret(capture, private_key_pem, sdk_options):
    assert sentry.init(
        settings_for(private_key_pem), transport=capture, traces_sample_rate=1.0, **sdk_options
    )
    with pytest.raises(RuntimeError):
        run_failing_job(private_key_pem)
    sentry_sdk.flush()

    [event] = capture.items("event")
    assert {k: event["tags"][k] for k in TAGS} == TAGS
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith("GitHub refused token [redacted] (secret [redacted])")
    for frame in exception["stacktrace"]["frames"]:
        assert not {"vars", "pre_context", "context_line", "post_context"} & set(frame), frame

    [transaction] = capture.items("transaction")
    assert transaction["transaction"] == "docgen.review"
    assert transaction["contexts"]["trace"]["op"] == "job"
    assert transaction["contexts"]["trace"]["status"] == "internal_error"
    assert {k: transaction["tags"][k] for k in TAGS} == TAGS
    # The error belongs to the job's trace.
    assert event["contexts"]["trace"]["trace_id"] == transaction["contexts"]["trace"]["trace_id"]

    assert secrets_in(capture.serialized(), private_key_pem) == []
    assert "raise RuntimeError(" not in capture.serialized()  # no source line of this file


def test_expected_outcomes_are_not_errors(capture, private_key_pem):
    sentry.init(settings_for(private_key_pem), transport=capture, traces_sample_rate=1.0)
    with pytest.raises(RetryLater), sentry.job_scope(**TAGS):  # type: ignore[arg-type]
        raise RetryLater(time.time() + 60, "GitHub unavailable")
    with sentry.job_scope(**TAGS):  # type: ignore[arg-type]
        pass
    sentry_sdk.flush()
    assert capture.items("event") == []
    statuses = [t["contexts"]["trace"]["status"] for t in capture.items("transaction")]
    assert statuses == ["unavailable", "ok"]


def test_job_scope_is_inert_without_sentry():
    assert not sentry.init(Settings())
    with pytest.raises(ValueError, match="boom"), sentry.job_scope(**TAGS):  # type: ignore[arg-type]
        raise ValueError("boom")


def test_before_send_drops_source_bodies_and_credentials(private_key_pem):
    logs.REDACTOR.add(WEBHOOK_SECRET)
    frame = {
        "filename": "bot/runtime/review_job.py",
        "function": "review",
        "lineno": 12,
        "vars": {"source": SOURCE, "token": GITHUB_TOKEN},
        "pre_context": ["def leaked_helper_f00d(token):"],
        "context_line": "    return token.upper()  # private code",
        "post_context": [""],
    }
    event = {
        "exception": {
            "values": [
                {
                    "type": "GitHubError",
                    "value": f"bad credentials for {GITHUB_TOKEN}",
                    "stacktrace": {"frames": [dict(frame)]},
                }
            ]
        },
        "threads": {"values": [{"stacktrace": {"frames": [dict(frame)]}}]},
        "request": {
            "url": "http://127.0.0.1/webhook",
            "method": "POST",
            "data": {"pull_request": {"body": SOURCE}},
            "cookies": {"session": GITHUB_TOKEN},
            "headers": {
                "Authorization": f"token {GITHUB_TOKEN}",
                "Cookie": "session=abc123abc123",
                "X-Hub-Signature-256": "sha256=" + "ab" * 32,
                "X-Hub-Signature": "sha1=" + "cd" * 20,
                "X-GitHub-Delivery": "d-2f7c",
            },
        },
        "breadcrumbs": {
            "values": [
                {"category": "log", "message": f"webhook secret is {WEBHOOK_SECRET}"},
                {"category": "httpx", "data": {"url": f"http://x/?access_token={GITHUB_TOKEN}"}},
            ]
        },
        "extra": {"key": private_key_pem[: len(private_key_pem) // 2]},  # a key cut short
    }
    out = sentry.before_send(event, {})
    assert out is not None
    text = json.dumps(out)
    assert secrets_in(text, private_key_pem) == []
    assert "vars" not in text and "context_line" not in text
    assert out["request"]["headers"] == {"X-GitHub-Delivery": "d-2f7c"}
    assert "data" not in out["request"] and "cookies" not in out["request"]
    assert out["exception"]["values"][0]["value"] == "bad credentials for [redacted]"
    assert out["breadcrumbs"]["values"][0]["message"] == "webhook secret is [redacted]"
    assert out["extra"]["key"] == "[redacted]"


def test_before_send_transaction_scrubs_spans(private_key_pem):
    event = {
        "type": "transaction",
        "transaction": "docgen.review",
        "request": {"headers": {"authorization": "Bearer x"}, "data": "{}"},
        "spans": [
            {"op": "http.client", "description": f"GET http://x/?t={GITHUB_TOKEN}"},
            {
                "op": "gen_ai.chat",
                "data": {
                    "gen_ai.request.messages": json.dumps([{"content": SOURCE}]),
                    "gen_ai.response.text": SOURCE,
                    "gen_ai.usage.input_tokens": 120,
                },
            },
        ],
    }
    out = sentry.before_send_transaction(event, {})
    assert out is not None
    assert secrets_in(json.dumps(out), private_key_pem) == []
    assert out["request"] == {"headers": {}}
    assert out["spans"][1]["data"] == {"gen_ai.usage.input_tokens": 120}


@pytest.mark.timeout(60)
def test_worker_jobs_run_in_a_tagged_scope(
    capture, fake_github, make_pr, private_key_pem, tmp_path, fake_clock
):
    """The real worker: a finished job sends a tagged transaction, a failing one an error."""
    from starlette.testclient import TestClient

    settings = settings_for(private_key_pem, docgen_data_dir=tmp_path / "data")
    sentry.init(settings, transport=capture, traces_sample_rate=1.0)
    runtime = compose.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake_github.app),
        provider=OfflineProvider(),
        poll_interval=0.01,
        write_interval=0.0,
        github_clock=fake_clock,
    )
    ok = make_pr({"shop/inventory.py": BASE}, {"shop/inventory.py": HEAD}, number=1)
    broken = make_pr({"shop/inventory.py": BASE}, {"shop/inventory.py": HEAD}, number=2)
    with TestClient(runtime.app) as client:
        assert deliver(client, payload_for(ok), "ok-1").status_code == 202
        wait(lambda: len(capture.jobs()) == 1)
        # GitHub refuses the second PR's check run with a 422 the worker does not expect.
        fake_github.fail(
            "checks.create",
            Fault(422, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}),
        )
        assert deliver(client, payload_for(broken), "bad-2").status_code == 202
        wait(lambda: len(capture.jobs()) == 2 and capture.items("event"))
    runtime.store.close()

    done, failed = capture.jobs()
    # The webhook itself is traced too (Starlette integration), without its body.
    webhooks = [t for t in capture.items("transaction") if t["transaction"] == "/webhook"]
    assert len(webhooks) == 2
    assert all("data" not in t.get("request", {}) for t in webhooks)
    assert "x-hub-signature" not in json.dumps(webhooks).lower()
    assert done["tags"]["delivery_id"] == "ok-1" and done["tags"]["pr"] == "1"
    assert done["tags"]["repo"] == f"{OWNER}/{REPO}" and done["tags"]["installation_id"] == "1"
    assert done["contexts"]["trace"]["status"] == "ok"
    assert failed["contexts"]["trace"]["status"] == "internal_error"
    [event] = [e for e in capture.items("event") if e.get("exception")]
    assert (
        event["tags"]["delivery_id"] == "bad-2" and event["tags"]["job_key"] == f"{OWNER}/{REPO}#2"
    )
    assert "request" not in event or "data" not in event["request"]
    assert secrets_in(capture.serialized(), private_key_pem) == []


def deliver(client: Any, payload: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post(
        "/webhook",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body, "sha256"),
            "Content-Type": "application/json",
        },
    )


def wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_sentry_redacts_every_secret_the_logs_do(capture, private_key_pem):
    # One list (bot.runtime.secrets) for both: a Redis password, which only the logs' copy of
    # the list used to hold, is redacted in Sentry's events too.
    password = "redis-pw-5b7e1c9a"
    settings = settings_for(private_key_pem, redis_url=f"redis://:{password}@cache.internal:6379")
    sentry.init(settings, transport=capture)
    sentry_sdk.capture_message(f"could not connect with {password}")
    sentry_sdk.flush()
    assert password not in capture.serialized()
    assert "[redacted]" in capture.serialized()
