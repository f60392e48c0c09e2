"""A real Redis for the scale-out tests, ``docgen worker`` processes, and a gate on the fake.

Redis comes from ``DOCGEN_TEST_REDIS_URL`` (``.ci/run`` starts one); without it the
session starts a throw-away ``redis-server`` when the binary is there, and skips
otherwise — except under CI (``CI`` set), where a missing Redis fails the run.  Each
test gets its own key prefix (``DOCGEN_REDIS_PREFIX``) and its keys are deleted
afterwards, so nothing is flushed and tests never see each other's jobs.

A test module uses the fixtures by naming them at module level:
``redis_url, ns = redis_helpers.redis_url, redis_helpers.ns``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fake_github import APP_ID, FakeGitHub

REDIS_ENV = "DOCGEN_TEST_REDIS_URL"
SECRET = "redis-webhook-secret-5d1c"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _ci():
        pytest.fail(f"Redis is required under CI: {reason}")
    pytest.skip(reason)


def _ping(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis for this session (see the module docstring)."""
    url = os.environ.get(REDIS_ENV)
    if url:
        if not _ping(url, timeout=5.0):
            pytest.fail(f"{REDIS_ENV}={url} does not answer PING")
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable(
            f"no Redis: set {REDIS_ENV} or install redis-server (apt-get install redis-server)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="docgen-redis-") as tmp:
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", tmp, *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _ping(url, timeout=0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def ns(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys (and arq's for its jobs) go afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


# ------------------------------------------------------------------ worker processes


def worker_env(
    *,
    redis_url: str,
    prefix: str,
    api_url: str,
    private_key_pem: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of a ``docgen worker`` (or ``serve``) process; nothing inherited leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_", "REDIS_", "SENTRY_"))
        and k not in ("PORT", "LOG_LEVEL")
    }
    env.update(
        GITHUB_APP_ID=str(APP_ID),
        GITHUB_PRIVATE_KEY=private_key_pem,
        GITHUB_WEBHOOK_SECRET=SECRET,
        GITHUB_API_URL=api_url,
        REDIS_URL=redis_url,
        DOCGEN_REDIS_PREFIX=prefix,
        DOCGEN_METRICS_PORT="0",  # a test that scrapes a worker passes a free port
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """``python -m bot.cli worker`` with its stderr (JSON log lines) in a file."""

    def __init__(self, env: Mapping[str, str], cwd: Path, name: str = "worker") -> None:
        self.log_path = cwd / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_started(self, timeout: float = 30.0) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            return "Starting worker for" in self.log()

        wait_for(started, timeout, "the worker to start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM, then wait; SIGKILL if it will not go.  The exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def workers(env: Mapping[str, str], cwd: Path, count: int = 1) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(env, cwd, f"worker{i}") for i in range(count)]
    try:
        for p in procs:
            p.wait_started()
        yield procs
    finally:
        for p in procs:
            p.stop()


# ------------------------------------------------------------------ a gate on the fake


class Gate:
    """ASGI middleware over the fake GitHub holding the first request matching a route.

    Used to stop a worker at a known point of a job (after its check run was created,
    before the review) without any test hook in production code.  ``reached`` is set
    when the request arrives; it is answered once ``open()`` is called — or never, if
    its worker is killed meanwhile.
    """

    def __init__(self, app: Any, method: str, path_pattern: str) -> None:
        self.app = app
        self.method = method
        self.pattern = re.compile(path_pattern)
        self.reached = threading.Event()
        self._open = threading.Event()
        self._held = False

    def open(self) -> None:
        self._open.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and not self._held
            and scope["method"] == self.method
            and self.pattern.search(scope["path"])
        ):
            self._held = True
            self.reached.set()
            receive = await self._hold(receive)
            if receive is None:
                return  # its worker was killed: nobody to answer
        await self.app(scope, receive, send)

    async def _hold(self, receive: Any) -> Any:
        """Wait for ``open()``; a replaying ``receive``, or None if the client went away."""
        request = await receive()  # the (empty) body of the GET
        disconnected = asyncio.ensure_future(receive())
        while not self._open.is_set():
            if disconnected.done():
                return None
            await asyncio.sleep(0.02)
        if disconnected.done():
            return None
        disconnected.cancel()
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return request
            return await receive()

        return replay


def gate(fake: FakeGitHub, method: str, path_pattern: str) -> Gate:
    """Put a :class:`Gate` in front of ``fake`` (before ``fake.serve()``)."""
    fake.app = Gate(fake.app, method, path_pattern)  # type: ignore[assignment]
    return fake.app  # type: ignore[return-value]
