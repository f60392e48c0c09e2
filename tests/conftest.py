"""Shared fixtures: the fake GitHub (fresh per test), the App's RSA key, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings
from bot.runtime.github.client import InstallationClients
from bot.runtime.github.connection import make_app_github
from tests.fake_github import APP_ID, FakeGitHub, PullRequest

OWNER, REPO = "octo", "demo"


class FakeClock:
    """Time that only moves when someone sleeps (or the test says so)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_redis_from_the_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REDIS_URL exported in a developer's shell must not switch tests to Redis mode."""
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    """A real 2048-bit RSA key, as GitHub generates for an App (once per session)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def private_key_pem(rsa_private_key: rsa.RSAPrivateKey) -> str:
    return rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_github(rsa_private_key: rsa.RSAPrivateKey) -> Iterator[FakeGitHub]:
    """A fresh fake GitHub with repository ``octo/demo`` (installation 1).

    Fails the test at teardown if any request hit a route the fake does not know.
    """
    fake = FakeGitHub(rsa_private_key.public_key())
    fake.add_repo(OWNER, REPO)
    yield fake
    assert not fake.errors, f"unexpected requests to the fake GitHub: {fake.errors}"


@pytest.fixture
def github_settings(private_key_pem: str) -> Settings:
    return Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_api_url="https://api.github.com",
    )


@pytest.fixture
def github_clients(
    fake_github: FakeGitHub, github_settings: Settings, fake_clock: FakeClock
) -> InstallationClients:
    """Installation clients talking to ``fake_github`` in-process, on ``fake_clock``."""
    transport = httpx.ASGITransport(app=fake_github.app)
    app = make_app_github(github_settings, async_transport=transport, clock=fake_clock)
    return InstallationClients(app, clock=fake_clock)


@pytest.fixture
def make_pr(fake_github: FakeGitHub) -> Callable[..., PullRequest]:
    """Build a PR in ``octo/demo`` from (base files, head files); patches as GitHub makes them."""

    def make(
        base: Mapping[str, bytes | str], head: Mapping[str, bytes | str], number: int = 1, **kw
    ) -> PullRequest:
        return fake_github.add_pull(fake_github.repo(f"{OWNER}/{REPO}"), number, base, head, **kw)

    return make
