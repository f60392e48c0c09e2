"""Before the signature check, nothing grows (issue 10).

A stranger's POST /webhook must not add metric labels, must not crash on a header
that is not ASCII, and must not hold more memory or time than a real delivery: the
last part is tested against a real uvicorn server over raw sockets, the way a slow or
greedy client talks to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from githubkit_schemas.latest.webhooks import VALID_EVENT_NAMES
from pydantic import ValidationError
from starlette.testclient import TestClient

from bot.config import Settings
from bot.runtime.compose import web_app
from bot.runtime.intake import KNOWN_EVENTS, OTHER_EVENT, BodyLimits, event_label
from bot.runtime.metrics import Metrics
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.web import Deps, create_app
from tests.webhook_payloads import APP_ID, pull_request_event

SECRET = "It's a Secret to Everybody"
ROOT = Path(__file__).resolve().parent.parent


def _signature(body: bytes, secret: str = SECRET) -> str:
    # GitHub's recipe, written out here rather than borrowed from bot/:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _deps(tmp_path: Path, limits: BodyLimits | None = None) -> Deps:
    return Deps(
        webhook_secret=SECRET,
        store=SqliteStore(tmp_path / "journal.sqlite3"),
        metrics=Metrics(),
        app_id=APP_ID,
        body_limits=limits or BodyLimits(),
    )


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    deps = _deps(tmp_path)
    with TestClient(create_app(deps)) as c:
        yield c
    deps.store.close()


def _post(client: TestClient, event: str, body: bytes, signature: str | bytes | None):
    headers: dict[str, str | bytes] = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhook", content=body, headers=headers)


# ------------------------------------------------------------------ event labels


def test_known_events_are_githubs_own_names():
    """Oracle: githubkit's list, generated from GitHub's published webhook schemas."""
    assert set(VALID_EVENT_NAMES) >= KNOWN_EVENTS
    subscribed = yaml.safe_load((ROOT / "app.yml").read_text())["default_events"]
    assert set(subscribed) <= KNOWN_EVENTS


@pytest.mark.parametrize(
    ("event", "verified", "label"),
    [
        ("pull_request", True, "pull_request"),
        ("pull_request", False, OTHER_EVENT),
        ("made_up_event", True, OTHER_EVENT),
        ("", True, OTHER_EVENT),
    ],
    ids=["signed-known", "unsigned-known", "signed-unknown", "missing"],
)
def test_event_label(event, verified, label):
    assert event_label(event, verified=verified) == label


def test_unsigned_posts_with_made_up_events_do_not_grow_metrics(client):
    body = json.dumps(pull_request_event()).encode()
    for i in range(20):
        _post(client, f"warmup-{i}", body, None)
    before = client.get("/metrics").text
    for i in range(300):
        r = _post(client, f"made-up-{i}-{uuid.uuid4().hex}", body, "sha256=" + "0" * 64)
        assert r.status_code == 401
        _post(client, f"unsigned-{i}", body, None)
    after = client.get("/metrics").text
    assert "made-up" not in after and "unsigned-" not in after
    # Same series, other counts: the text is the same length give or take the digits.
    assert abs(len(after) - len(before)) < 200, (len(before), len(after))
    assert (
        f'docgen_webhook_deliveries_total{{event="{OTHER_EVENT}",outcome="bad_signature"}} 300.0'
        in after
    )


def test_signed_deliveries_name_known_events_and_lump_the_rest(client):
    body = json.dumps(pull_request_event()).encode()
    assert _post(client, "pull_request", body, _signature(body)).status_code == 202
    assert _post(client, "pull_request_made_up", body, _signature(body)).status_code == 200
    text = client.get("/metrics").text
    assert 'docgen_webhook_deliveries_total{event="pull_request",outcome="queued"} 1.0' in text
    assert f'docgen_webhook_deliveries_total{{event="{OTHER_EVENT}",outcome="ignored"}} 1.0' in text
    assert "pull_request_made_up" not in text


# ------------------------------------------------------------- signature header


@pytest.mark.parametrize(
    "signature",
    ["sha256=é" + "0" * 63, "sha256=" + "\u00ff" * 64, "sha256=ü"],
    ids=["one-latin1-char", "all-latin1", "short"],
)
def test_a_signature_that_is_not_ascii_is_a_401_not_a_500(client, signature):
    body = json.dumps(pull_request_event()).encode()
    r = _post(client, "pull_request", body, signature.encode("latin-1"))
    assert r.status_code == 401, r.text
    assert r.json() == {"message": "signature does not match"}


# ---------------------------------------------------------- a real server, raw sockets


@contextlib.contextmanager
def serving(deps: Deps) -> Iterator[int]:
    """Run the web app with uvicorn on 127.0.0.1:<free port> in a thread; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(deps), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        deps.store.close()


def _open(port: int, length: int, *, event: str = "pull_request") -> socket.socket:
    """A connection that has sent the headers of a POST /webhook with ``length`` body bytes."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        "X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    conn.sendall(head.encode())
    return conn


def _answer(conn: socket.socket, timeout: float = 10) -> tuple[int, dict, str]:
    """Read one HTTP response: (status, JSON body, raw head)."""
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(rest[:length]), head.decode("latin-1")


def test_a_body_that_trickles_in_is_cut_off_with_408(tmp_path):
    """Slowloris: a byte now and then would hold the request (and its buffer) forever."""
    limits = BodyLimits(max_bytes=1024 * 1024, in_flight_bytes=2 * 1024 * 1024, timeout=1.0)
    deps = _deps(tmp_path, limits)
    with serving(deps) as port:
        conn = _open(port, 1000)
        started = time.monotonic()
        # One byte every 0.1 s until the server answers (never sending after it did).
        while not select.select([conn], [], [], 0.1)[0]:
            assert time.monotonic() - started < 5, "no answer: the body may trickle forever"
            conn.sendall(b" ")
        elapsed = time.monotonic() - started
        status, body, _ = _answer(conn)
        conn.close()
        assert status == 408, body
        assert body == {"message": "body not received within 1 s"}
        assert 0.9 < elapsed < 3.0
        # The quota it held is free again: a whole body of the largest size is read.
        ok = _open(port, limits.max_bytes)
        ok.sendall(b" " * limits.max_bytes)
        assert _answer(ok)[0] == 401
        ok.close()


def test_parallel_big_bodies_are_capped_in_flight_with_503(tmp_path):
    """Bodies held at once stay under the in-flight cap: the one that would not fit
    is refused before it is read, and is read once the others are done."""
    size = 600 * 1024
    limits = BodyLimits(max_bytes=1024 * 1024, in_flight_bytes=1024 * 1024, timeout=10.0)
    deps = _deps(tmp_path, limits)
    with serving(deps) as port:
        first = _open(port, size)
        first.sendall(b" " * (size // 2))  # half there: its whole length is reserved
        time.sleep(0.2)
        second = _open(port, size)
        status, body, head = _answer(second)
        assert status == 503, body
        assert "in flight" in body["message"]
        assert "retry-after: 5" in head.lower()
        second.close()
        first.sendall(b" " * (size - size // 2))
        assert _answer(first)[0] == 401  # read whole, then refused for its signature
        first.close()
        third = _open(port, size)
        third.sendall(b" " * size)
        assert _answer(third)[0] == 401
        third.close()


def test_many_parallel_bodies_never_hold_more_than_the_cap(tmp_path):
    size = 256 * 1024
    limits = BodyLimits(max_bytes=size, in_flight_bytes=1024 * 1024, timeout=10.0)
    deps = _deps(tmp_path, limits)
    with serving(deps) as port:
        conns = [_open(port, size) for _ in range(12)]
        time.sleep(0.5)
        # Those refused have their answer already; those admitted wait for a body.
        refused = select.select(conns, [], [], 0.5)[0]
        refused_statuses = [_answer(c)[0] for c in refused]
        admitted = [c for c in conns if c not in refused]
        for conn in admitted:
            conn.sendall(b" " * size)
        admitted_statuses = [_answer(c)[0] for c in admitted]
        for conn in conns:
            conn.close()
    assert refused_statuses == [503] * 8
    assert admitted_statuses == [401] * 4  # 4 x 256 KiB = the 1 MiB cap


def test_a_client_gone_mid_body_is_counted_not_a_traceback(tmp_path, caplog):
    """Hanging up halfway used to raise out of the handler: a traceback (and, with
    SENTRY_DSN, a Sentry event) per request, and its quota must come back."""
    limits = BodyLimits(max_bytes=1024, in_flight_bytes=1024, timeout=10.0)
    deps = _deps(tmp_path, limits)
    with serving(deps) as port:
        for _ in range(3):  # each reserves the whole cap: a leak would 503 the next
            conn = _open(port, 1024)
            conn.sendall(b" " * 10)
            time.sleep(0.1)
            conn.close()
        time.sleep(0.3)
        ok = _open(port, 1024)
        ok.sendall(b" " * 1024)
        assert _answer(ok)[0] == 401
        ok.close()
        text = deps.metrics.render().decode()
    assert 'docgen_webhook_deliveries_total{event="other",outcome="disconnected"} 3.0' in text
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_a_declared_length_over_the_cap_is_413_before_any_body(tmp_path):
    deps = _deps(tmp_path, BodyLimits(max_bytes=1024 * 1024, in_flight_bytes=1024 * 1024))
    with serving(deps) as port:
        conn = _open(port, 25 * 1024 * 1024 + 1)  # GitHub's documented cap, plus one
        status, body, _ = _answer(conn)
        conn.close()
    assert status == 413 and "larger than" in body["message"]


# ------------------------------------------------------------------- settings


def test_settings_reach_the_web_app(tmp_path):
    settings = Settings(
        _env_file=None,
        github_webhook_secret=SECRET,
        docgen_max_body_bytes=2048,
        docgen_body_bytes_in_flight=4096,
        docgen_body_timeout=3,
    )
    store = SqliteStore(tmp_path / "journal.sqlite3")
    app = web_app(settings, store, Metrics(), lifespan=contextlib.nullcontext)
    with TestClient(app) as c:
        r = _post(c, "pull_request", b" " * 4096, None)
    store.close()
    assert r.status_code == 413 and r.json()["message"].startswith("payload larger than")


def test_one_body_must_fit_in_flight():
    with pytest.raises(ValidationError, match="DOCGEN_BODY_BYTES_IN_FLIGHT"):
        Settings(_env_file=None, docgen_max_body_bytes=4096, docgen_body_bytes_in_flight=2048)
