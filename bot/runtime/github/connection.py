"""githubkit clients for docgen: App auth, one SSL context, one HTTP pool per installation.

* **Auth.** ``AppAuthStrategy`` signs the App's JWT (RS256, ``iat`` back-dated a minute)
  and ``as_installation(id)`` exchanges it for an installation token, which githubkit
  caches in the client's cache strategy until one minute before ``expires_at``.  Every
  installation client gets its *own* in-memory cache (githubkit's default is one
  process-wide cache keyed by app id, which would keep serving a JWT signed with an
  old key), so forgetting an installation drops its token with it.
* **Retries.** githubkit's ``auto_retry`` sleeps with a real clock and without a cap
  (a primary rate limit can mean an hour): it is off, and
  :class:`~bot.runtime.github.client.PullRequestAPI` retries as :mod:`bot.runtime.github.sansio` decides.
* **Connections.** githubkit opens a new ``httpx.AsyncClient`` (connection pool, TLS
  handshake) for every request unless the caller is inside ``async with github:``, whose
  client lives only in that task's context.  :class:`PooledGitHub` keeps one client per
  installation while a job holds it (``async with api:``), and every client shares one
  SSL context per process (building one loads the CA bundle: ~40 ms each).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ssl
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import BaseCacheStrategy, MemCacheStrategy
from githubkit.config import Config, get_config

from bot.config import Settings
from bot.runtime.github.pacing import Clock, WritePacer
from bot.runtime.github.sansio import USER_AGENT


def _client_config(
    api_url: str,
    *,
    pacer: WritePacer,
    cache: BaseCacheStrategy,
    async_transport: httpx.AsyncBaseTransport | None,
) -> Config:
    return get_config(
        base_url=api_url,  # githubkit appends the "/" that GHES's ".../api/v3" lacks
        user_agent=USER_AGENT,
        timeout=httpx.Timeout(30.0, connect=10.0),  # githubkit's default is no timeout
        ssl_verify=shared_ssl_context(),
        async_transport=async_transport,
        cache_strategy=cache,
        http_cache=False,  # each PR is read once per push: conditional requests buy nothing
        throttler=pacer,
        auto_retry=False,  # PullRequestAPI retries, with a cap and an injectable clock
    )


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every GitHub client of the process.

    httpx builds a new one for each client it creates unless it is given one, and that
    loads the whole CA bundle (``load_verify_locations``, ~40 ms).  Same CA choice as
    httpx: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else certifi.
    """
    return httpx.create_ssl_context(trust_env=True)


def _check_private_key(pem: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        # Never echo the key, not even a part of it.
        raise ValueError("the GitHub App private key is not a PEM private key") from None


def make_app_github(
    settings: Settings,
    *,
    async_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> GitHub[AppAuthStrategy]:
    """A githubkit client authenticated as the App (JWT), for ``settings.github_api_url``.

    Raises:
        ValueError: the App id or private key is missing, or the key is not a PEM key.
    """
    pem = settings.private_key_pem()
    if settings.github_app_id is None or not pem:
        raise ValueError(
            "GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) must be set"
        )
    _check_private_key(pem)
    config = _client_config(
        settings.github_api_url,
        pacer=WritePacer(clock=clock),
        cache=MemCacheStrategy(),
        async_transport=async_transport,
    )
    return GitHub(AppAuthStrategy(settings.github_app_id, pem), config=config)


class PooledGitHub(GitHub[Any]):
    """A githubkit client whose requests share one ``httpx.AsyncClient`` while it is held.

    githubkit opens (and closes) a new httpx client for every request unless the caller
    is inside ``async with github:``, and that client lives in a ContextVar of the task
    that entered it: no help for the jobs an installation runs in other tasks.  Here,
    while at least one holder is inside :meth:`pooled` (a job: ``async with api:``),
    every request of this installation goes through one client: one connection pool,
    one auth flow, no per-request set-up.  The last holder to leave closes it, so
    nothing stays open between jobs (httpx drops idle connections after 5 s anyway) and
    no shutdown hook is needed; :meth:`aclose` closes it early (the installation was
    deleted).  Outside :meth:`pooled` requests behave as githubkit's do.
    """

    def __init__(self, auth: Any, *, config: Config) -> None:
        super().__init__(auth, config=config)
        self.clients_created = 0  # httpx clients built for this installation
        self.app_login: str | None = None  # the App's bot user, once read (GET /app)
        self._shared: httpx.AsyncClient | None = None
        self._shared_loop: asyncio.AbstractEventLoop | None = None
        self._holders = 0

    @property
    def shared_client(self) -> httpx.AsyncClient | None:
        """The client requests go through now, or None (one per request)."""
        shared = self._shared
        return None if shared is None or shared.is_closed else shared

    async def _create_async_client(self) -> httpx.AsyncClient:
        self.clients_created += 1
        return await super()._create_async_client()

    @contextlib.asynccontextmanager
    async def get_async_client(self) -> AsyncGenerator[httpx.AsyncClient, None]:
        shared = self.shared_client
        # An httpx client's connections belong to the event loop that opened them.
        if shared is not None and self._shared_loop is asyncio.get_running_loop():
            yield shared
            return
        async with super().get_async_client() as client:
            yield client

    @contextlib.asynccontextmanager
    async def pooled(self) -> AsyncGenerator[PooledGitHub, None]:
        """Hold the shared client (opening it if needed) for the duration of the block."""
        self._holders += 1
        try:
            if self.shared_client is None:
                self._shared = await self._create_async_client()
                self._shared_loop = asyncio.get_running_loop()
            yield self
        finally:
            self._holders -= 1
            if self._holders == 0:
                await self.aclose()

    async def aclose(self) -> None:
        """Close the shared client now; later requests open their own until re-pooled."""
        shared, self._shared, self._shared_loop = self._shared, None, None
        if shared is not None and not shared.is_closed:
            await shared.aclose()


def prepared(client: GitHub[Any], clock: Clock | None) -> PooledGitHub:
    """``client`` as PullRequestAPI needs it: our pacer, no githubkit retries or HTTP
    cache, a pool for ``async with api:``.

    Clients from :class:`~bot.runtime.github.client.InstallationClients` already are; any
    other gets an equivalent client sharing its auth and token cache.
    """
    config = client.config
    if (
        isinstance(client, PooledGitHub)
        and isinstance(config.throttler, WritePacer)
        and config.auto_retry is None
        and not config.http_cache
    ):
        return client
    throttler = (
        config.throttler if isinstance(config.throttler, WritePacer) else WritePacer(clock=clock)
    )
    changed = dataclasses.replace(config, throttler=throttler, auto_retry=None, http_cache=False)
    return PooledGitHub(client.auth, config=changed)
