"""Sending one installation's requests for one repository, as :mod:`bot.runtime.github.sansio` decides.

:meth:`Session._send` is a short loop: wait while the installation is rate limited,
send, ask :func:`~bot.runtime.github.sansio.decide` what the answer means (return it, wait and
retry, refresh the token, raise) and do it, with an injectable clock.  Retries are
ours, not githubkit's: its ``auto_retry`` sleeps with a real clock and without a cap
(a primary rate limit can mean an hour).
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Self

import httpx
from githubkit import GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.exception import RequestError, RequestFailed
from githubkit.graphql import GraphQLError, GraphQLNamespace, GraphQLResponse
from githubkit.response import Response

from bot.runtime.github import sansio
from bot.runtime.github.connection import prepared
from bot.runtime.github.errors import GitHubError
from bot.runtime.github.graphql import graphql_url, repository_nodes
from bot.runtime.github.pacing import Clock, WritePacer
from bot.runtime.github.sansio import API_VERSION, GRAPHQL_ROUTE, RetryPolicy

log = logging.getLogger(__name__)

_Call = Callable[[], Awaitable[Response[Any]]]


class Session:
    """Requests for one repository, through one installation's client.

    ``calls`` counts the requests sent per route template (retries included), and
    ``last_rate_limit_remaining`` is the last ``x-ratelimit-remaining`` GitHub sent.
    """

    def __init__(
        self,
        client: GitHub[Any],
        owner: str,
        repo: str,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._gh = prepared(client, clock)
        pacer = self._gh.config.throttler
        assert isinstance(pacer, WritePacer)
        self.pacer = pacer
        self.clock = clock or pacer.clock
        self.retry = retry or RetryPolicy()
        self.owner = owner
        self.repo = repo
        self.calls: Counter[str] = Counter()
        self.last_rate_limit_remaining: int | None = None
        self.waited = 0.0  # seconds spent waiting for rate limits and backoff
        self.graphql_url = graphql_url(self._gh.config.base_url)
        self._headers = {"X-GitHub-Api-Version": API_VERSION}
        self._held: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        """Send this API's requests through one HTTP client until the block ends."""
        if self._held is not None:
            raise RuntimeError(f"{self!r} is already entered")
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(self._gh.pooled())
        self._held = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._held = self._held, None
        if stack is not None:
            await stack.aclose()

    async def _send(
        self,
        method: str,
        route: str,
        call: _Call,
        *,
        already_done: Callable[[], Awaitable[bool]] | None = None,
        graphql: bool = False,
    ) -> Response[Any] | None:
        """Send one request, doing what :func:`sansio.decide` says of each answer.

        ``already_done`` is asked before a non-idempotent request is re-sent after a
        5xx or a network error (GitHub may have acted before failing); when it says
        yes, nothing is re-sent and None is returned.  With ``graphql``, a 200 answer
        whose ``errors`` say RATE_LIMITED is a rate limit like a REST 403.
        """
        label, tries = f"{method} {route}", sansio.Tries()
        while True:
            tries = await self._wait_out_block(label, tries)
            self.calls[label] += 1
            response, answer = await self._call(label, call)
            step = sansio.decide(
                label,
                answer,
                tries=tries,
                policy=self.retry,
                now=self.clock.time(),
                graphql=graphql,
                can_refresh=self._can_refresh(),
            )
            if step.block_until is not None:  # every request of the installation waits
                self.pacer.block_until(step.block_until)
            if isinstance(step, sansio.Done):
                return response
            if isinstance(step, sansio.Fail):
                raise step.error from None
            if isinstance(step, sansio.Refresh):
                self._forget_credentials()
                tries = tries.after_refresh()
                continue
            assert isinstance(step, sansio.Retry)
            log.warning("GitHub %s: %s; retrying in %.1f s", label, step.problem, step.delay)
            tries = tries.retried()
            if step.block_until is None:  # a rate limit waits at the top of the loop
                await self._wait(step.delay)
                tries = tries.waiting(step.delay)
                if method == "POST" and already_done is not None and await already_done():
                    log.info("GitHub %s had succeeded before failing; not re-sent", label)
                    return None

    async def _wait_out_block(self, label: str, tries: sansio.Tries) -> sansio.Tries:
        """Wait while the installation is rate limited (or raise: past the policy)."""
        block = sansio.blocked_wait(
            label, self.pacer.blocked_until, now=self.clock.time(), tries=tries, policy=self.retry
        )
        if block <= 0:
            return tries
        await self._wait(block)
        return tries.waiting(block)

    async def _call(
        self, label: str, call: _Call
    ) -> tuple[Response[Any] | None, sansio.Answer | sansio.NetworkFailure]:
        """Send once: githubkit's response (None when it raised), and GitHub's answer."""
        try:
            response = await call()
        except RequestFailed as exc:
            return None, self._answer(exc.response.raw_response)
        except RequestError as exc:
            inner = exc.exc
            if isinstance(inner, RequestFailed):  # the token request, inside the auth flow
                return None, self._answer(inner.response.raw_response)
            if isinstance(inner, httpx.TransportError):
                return None, sansio.NetworkFailure(type(inner).__name__)
            raise GitHubError(f"{label}: {type(inner).__name__}", route=label) from None
        return response, self._answer(response.raw_response)

    def _answer(self, raw: httpx.Response) -> sansio.Answer:
        answer = sansio.Answer(raw.status_code, raw.headers, raw.content, raw.reason_phrase)
        remaining = sansio.rate_limit_remaining(answer.headers)
        if remaining is not None:
            self.last_rate_limit_remaining = remaining
        return answer

    def _can_refresh(self) -> bool:
        """Whether the client's token cache is ours to empty (see :meth:`_forget_credentials`)."""
        return isinstance(self._gh.config.cache_strategy, MemCacheStrategy)

    def _forget_credentials(self) -> None:
        """Drop the client's cached JWT and installation token."""
        strategy = self._gh.config.cache_strategy
        if isinstance(strategy, MemCacheStrategy):
            strategy.cleanup()

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self.clock.sleep(seconds)

    async def _get(self, route: str, call: _Call) -> Response[Any]:
        response = await self._send("GET", route, call)
        assert response is not None  # only POSTs with already_done may return None
        return response

    async def _paginate(self, route: str, call: _Call, *, max_items: int) -> list[Any]:
        """Every item of a list endpoint, following ``Link: <…>; rel="next"``.

        https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
        """
        items: list[Any] = []
        response = await self._get(route, call)
        while True:
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GET {route}: expected a JSON list", route=route)
            items.extend(page)
            next_url = sansio.next_page(response.headers.get("link", ""), self._gh.config.base_url)
            if next_url is None or len(items) >= max_items:
                return items[:max_items]
            response = await self._get(
                route, lambda url=next_url: self._gh.arequest("GET", url, headers=self._headers)
            )

    async def objects(self, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """``{alias: node}`` of a query over ``repository`` (alias null or errored → None);
        None when GraphQL could not answer for the repository at all
        (:func:`bot.runtime.github.graphql.repository_nodes`)."""
        data, errors = await self._graphql(query, variables)
        return repository_nodes(data, errors)

    async def _graphql(
        self, query: str, variables: dict[str, Any]
    ) -> tuple[dict[str, Any], list[GraphQLError]]:
        """POST one query through githubkit; its ``data`` and GraphQL ``errors``.

        HTTP failures, rate limits (also those GraphQL answers with 200) and 5xx are
        handled by :meth:`_send` as for REST.  Partial answers are GraphQL's normal:
        ``data`` with ``errors`` naming the ``path`` of what failed.
        https://docs.github.com/en/graphql/guides/forming-calls-with-graphql#communicating-with-graphql
        """
        label = f"POST {GRAPHQL_ROUTE}"
        body = GraphQLNamespace.build_graphql_request(query, variables)
        response = await self._send(
            "POST",
            GRAPHQL_ROUTE,
            lambda: self._gh.arequest(
                "POST", self.graphql_url, json=body, response_model=GraphQLResponse
            ),
            graphql=True,
        )
        assert response is not None
        try:
            answer: GraphQLResponse = response.parsed_data
        except ValueError:  # pydantic: neither data nor errors, or not JSON
            raise GitHubError(f"{label}: unexpected answer from GitHub", route=label) from None
        return dict(answer.data or {}), list(answer.errors or [])
