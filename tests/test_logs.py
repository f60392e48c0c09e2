"""logs: one JSON object per line, correlation ids, secrets redacted (invariant 9)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot import logs

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...secret...\n-----END RSA PRIVATE KEY-----"


@pytest.fixture
def stream():
    out = io.StringIO()
    logs.setup("DEBUG", stream=out, secrets=["hook-secret-value-42"])
    yield out
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_docgen", False):
            root.removeHandler(h)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_correlation_ids(stream):
    log = logging.getLogger("bot.test")
    with logs.bind(delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958", repo="o/r", pr=2):
        log.info("fetched %d files", 3, extra={"job_key": "o/r#2"})
        with logs.bind(attempt=2):
            log.warning("retrying")
    log.info("outside")
    first, second, third = lines(stream)
    assert first["msg"] == "fetched 3 files" and first["level"] == "info"
    assert first["delivery_id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert first["pr"] == 2 and first["job_key"] == "o/r#2"
    assert second["attempt"] == 2 and second["delivery_id"] == first["delivery_id"]
    assert "delivery_id" not in third


@pytest.mark.parametrize(
    "secret",
    [
        "hook-secret-value-42",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyMywiaWF0IjoxfQ.c2lnbmF0dXJlLXBhcnQ",
        PEM,
    ],
    ids=["configured", "installation-token", "pat", "openai-key", "jwt", "pem"],
)
def test_secrets_never_reach_the_log(stream, secret):
    log = logging.getLogger("bot.test")
    log.error(
        "call failed: %s",
        f"Authorization: Bearer {secret}",
        extra={"headers": {"authorization": f"token {secret}"}},
    )
    try:
        raise RuntimeError(f"bad credentials {secret}")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert secret not in text
    assert secret[:12] not in text or secret.startswith("-----BEGIN")
    assert "[redacted]" in text


def test_redactor_scrubs_nested_data():
    r = logs.Redactor(["supersecret1"])
    data = {"a": ["x supersecret1 y", {"b": "Authorization: token abcdef123456"}], "n": 3}
    assert r.scrub(data) == {"a": ["x [redacted] y", {"b": "Authorization: [redacted]"}], "n": 3}
