"""The GitHub client: one installation's clients, and the calls docgen makes for one repository.

:class:`PullRequestAPI` sends through :class:`bot.runtime.github.session.Session` (a short loop
over :func:`bot.runtime.github.sansio.decide`).  Payloads come from :mod:`bot.runtime.github.payloads`,
answers are read by :mod:`bot.runtime.github.pulls`, and head contents by
:mod:`bot.runtime.github.heads`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import BaseCacheStrategy, MemCacheStrategy

from bot.docstrings.models import FileChange
from bot.docstrings.render import review_comment
from bot.runtime.github.connection import PooledGitHub
from bot.runtime.github.errors import GitHubError, NotFound, Unprocessable
from bot.runtime.github.heads import FetchLimits, HeadContents, HeadReader, worth_reading
from bot.runtime.github.pacing import Clock, WritePacer
from bot.runtime.github.payloads import (
    CheckRunAction,
    Conclusion,
    ReviewComment,
    ReviewResult,
    check_run_create_payload,
    check_run_output,
    check_run_update_payloads,
    review_payload,
)
from bot.runtime.github.pulls import (
    FileEntry,
    PullChanges,
    PullInfo,
    as_object,
    decode_content,
    file_entry,
    is_own_comment,
    object_id,
    parsed,
    pull_info,
)
from bot.runtime.github.sansio import RetryPolicy, iso_time
from bot.runtime.github.session import Session

log = logging.getLogger(__name__)

# https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
MAX_PR_FILES = 3_000
PER_PAGE = 100
# The "object" media type answers files of 1-100 MB with empty content and encoding
# "none" (the default media type refuses them):
# https://docs.github.com/en/rest/repos/contents#get-repository-content
_OBJECT_MEDIA = "application/vnd.github.object+json"


class InstallationClients:
    """One githubkit client per installation: its own token cache, write pacer and pool.

    githubkit issues and caches the installation token (until a minute before it
    expires); keeping the client keeps the token.  Call :meth:`forget` when the
    installation is deleted or suspended: it drops the token and closes the
    installation's HTTP client.
    """

    def __init__(
        self,
        app: GitHub[AppAuthStrategy],
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        write_interval: float = 1.0,
        cache_factory: Callable[[], BaseCacheStrategy] = MemCacheStrategy,
    ) -> None:
        if not isinstance(app.auth, AppAuthStrategy):
            raise TypeError("InstallationClients needs a client made by make_app_github")
        self.app = app
        self.clock = clock or Clock()
        self.retry = retry or RetryPolicy()
        self._write_interval = write_interval
        self._cache_factory = cache_factory
        self._clients: dict[int, PooledGitHub] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def client(self, installation_id: int) -> PooledGitHub:
        """The installation's client (created on first use)."""
        found = self._clients.get(installation_id)
        if found is None:
            config = dataclasses.replace(
                self.app.config,
                throttler=WritePacer(self._write_interval, clock=self.clock),
                cache_strategy=self._cache_factory(),
            )
            auth = self.app.auth.as_installation(installation_id)
            found = self._clients[installation_id] = PooledGitHub(auth, config=config)
        return found

    def api(self, installation_id: int, owner: str, repo: str) -> PullRequestAPI:
        """A :class:`PullRequestAPI` for one repository of the installation.

        Use it as ``async with api:`` so that its requests share one HTTP client.
        """
        return PullRequestAPI(
            self.client(installation_id), owner, repo, clock=self.clock, retry=self.retry
        )

    def forget(self, installation_id: int) -> None:
        """Drop the installation's client, its cached token, and close its HTTP client.

        Called from the webhook handler (synchronous, inside the event loop): the close
        is scheduled on the running loop.
        """
        client = self._clients.pop(installation_id, None)
        if client is None or client.shared_client is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nobody can be holding the client (it needs one)
            return
        task = loop.create_task(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every installation's HTTP client (at shutdown; tokens stay cached)."""
        await asyncio.gather(*(c.aclose() for c in self._clients.values()), *self._closing)

    def __contains__(self, installation_id: object) -> bool:
        return installation_id in self._clients

    def __len__(self) -> int:
        return len(self._clients)


class PullRequestAPI(Session):
    """The GitHub calls docgen makes for one repository: reads of a PR, and its writes.

    Use it as ``async with api:`` so that its requests share one HTTP client.
    """

    def __repr__(self) -> str:
        return f"PullRequestAPI({self.owner}/{self.repo})"

    # -------------------------------------------------------------------- reads

    async def get_pull(self, number: int) -> PullInfo:
        """``GET /repos/{owner}/{repo}/pulls/{n}``."""
        response = await self._get(
            "/repos/{owner}/{repo}/pulls/{pull_number}",
            lambda: self._gh.rest.pulls.async_get(
                self.owner, self.repo, number, headers=self._headers
            ),
        )
        return parsed(pull_info, response, "GET /repos/{owner}/{repo}/pulls/{pull_number}")

    async def list_files(self, number: int) -> list[FileEntry]:
        """The PR's changed files, 100 per page.

        GitHub lists at most 3,000 files of a PR
        (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files): compare
        with :attr:`PullInfo.changed_files` to know whether the list is complete.
        """
        items = await self._paginate(
            "/repos/{owner}/{repo}/pulls/{pull_number}/files",
            lambda: self._gh.rest.pulls.async_list_files(
                self.owner, self.repo, number, per_page=PER_PAGE, headers=self._headers
            ),
            max_items=MAX_PR_FILES,
        )
        route = "GET /repos/{owner}/{repo}/pulls/{pull_number}/files"
        return [parsed(file_entry, item, route) for item in items if isinstance(item, dict)]

    async def get_file(self, path: str, ref: str | None) -> bytes | None:
        """A file's bytes at ``ref`` (None: the default branch); None when it is not a file.

        Files over 1 MB come back from the contents API without content; those are
        read from ``git/blobs/{sha}`` (up to 100 MB).
        """
        return await self._contents(self.owner, self.repo, path, ref)

    async def _contents(self, owner: str, repo: str, path: str, ref: str | None) -> bytes | None:
        if "?" in path or "#" in path:
            return await self._contents_via_parent(owner, repo, path, ref)
        data = await self.contents_json(owner, repo, path, ref)
        if data is None or data.get("type") != "file":
            return None  # a directory, submodule or symlink out of the repository
        content = str(data.get("content") or "")
        if content or not data.get("size"):
            decoded = decode_content(content, data.get("encoding"))
            if decoded is not None:
                return decoded
        sha = data.get("sha")
        return await self._blob(owner, repo, str(sha)) if sha else None

    async def contents_json(
        self, owner: str, repo: str, path: str, ref: str | None
    ) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {} if ref is None else {"ref": ref}
        try:
            response = await self._get(
                "/repos/{owner}/{repo}/contents/{path}",
                lambda: self._gh.rest.repos.async_get_content(
                    owner,
                    repo,
                    quote(path, safe="/"),
                    headers={**self._headers, "Accept": _OBJECT_MEDIA},
                    **kwargs,
                ),
            )
        except NotFound:
            return None
        return as_object(response.json())

    async def _contents_via_parent(
        self, owner: str, repo: str, path: str, ref: str | None
    ) -> bytes | None:
        """Read a file whose name holds ``?`` or ``#`` through its directory's listing.

        githubkit's App auth re-parses the decoded request path, which fails on those
        two characters; the listing gives the blob sha without putting the name in a URL.
        """
        parent, _, name = path.rpartition("/")
        if "?" in parent or "#" in parent:
            raise GitHubError(f"cannot read {path!r}: '?' or '#' in a directory name")
        listing = await self.contents_json(owner, repo, parent, ref)
        for entry in (listing or {}).get("entries") or []:
            entry = as_object(entry)
            if entry.get("name") == name and entry.get("type") == "file" and entry.get("sha"):
                return await self._blob(owner, repo, str(entry["sha"]))
        return None

    async def get_blob(self, sha: str) -> bytes | None:
        """``GET /repos/{owner}/{repo}/git/blobs/{sha}``; None when there is no such blob."""
        return await self._blob(self.owner, self.repo, sha)

    async def _blob(self, owner: str, repo: str, sha: str) -> bytes | None:
        try:
            response = await self._get(
                "/repos/{owner}/{repo}/git/blobs/{file_sha}",
                lambda: self._gh.rest.git.async_get_blob(owner, repo, sha, headers=self._headers),
            )
        except NotFound:
            return None
        data = as_object(response.json())
        return decode_content(str(data.get("content") or ""), data.get("encoding"))

    async def get_config(self, org: str | None) -> tuple[bytes | None, str]:
        """The ``docgen.yml`` that applies to this repository's PRs, and where it was found.

        Read from the repository's *default branch* (the contents API without ``ref``),
        never from the PR's base or head: the PR author chooses both (any branch can be
        a base), so neither may choose the budget, ``auto_run`` or what is excluded.
        Then the owner's ``.github`` repository (its default branch); else
        ``(None, "defaults")``.
        https://docs.github.com/en/rest/repos/contents#get-repository-content
        """
        for name in (".github/docgen.yml", ".github/docgen.yaml"):
            data = await self._contents(self.owner, self.repo, name, None)
            if data is not None:
                return data, name
        if org:
            for name in (".github/docgen.yml", "docgen.yml"):
                data = await self._contents(org, ".github", name, None)
                if data is not None:
                    return data, f"{org}/.github:{name}"
        return None, "defaults"

    async def app_login(self) -> str:
        """The login of the App's bot user, ``<slug>[bot]``: who authors its comments.

        ``GET /app`` with the App's JWT, once per installation client.
        https://docs.github.com/en/rest/apps/apps#get-the-authenticated-app
        """
        client = self._gh
        if isinstance(client, PooledGitHub) and client.app_login is not None:
            return client.app_login
        as_app = getattr(client.auth, "as_app", None)
        if as_app is None:
            raise GitHubError("not authenticated as a GitHub App: its own comments are unknown")
        app_client = client.with_auth(as_app())
        response = await self._get(
            "/app", lambda: app_client.rest.apps.async_get_authenticated(headers=self._headers)
        )
        slug = as_object(response.json()).get("slug")
        if not isinstance(slug, str) or not slug:
            raise GitHubError("GET /app: GitHub's answer names no slug", route="GET /app")
        login = f"{slug}[bot]"
        if isinstance(client, PooledGitHub):
            client.app_login = login
        return login

    async def existing_markers(self, number: int) -> set[tuple[str, str]]:
        """``(target_id, docstring_hash)`` of every docgen comment already on the PR.

        Only the App's own comments count: anyone can paste a marker into a comment of
        theirs, and a marker that counted would keep docgen from suggesting that
        docstring (:func:`is_own_comment`).
        """
        login = await self.app_login()
        comments = await self._paginate(
            "/repos/{owner}/{repo}/pulls/{pull_number}/comments",
            lambda: self._gh.rest.pulls.async_list_review_comments(
                self.owner, self.repo, number, per_page=PER_PAGE, headers=self._headers
            ),
            max_items=100_000,
        )
        found = set()
        for comment in map(as_object, comments):
            if not is_own_comment(comment, login):
                continue
            parsed = review_comment.parse_marker(str(comment.get("body") or ""))
            if parsed is not None:
                found.add(parsed)
        return found

    async def fetch_changes(
        self,
        pull: PullInfo,
        *,
        wanted: Callable[[str], bool] | None = None,
        limits: FetchLimits | None = None,
    ) -> PullChanges:
        """The PR's changed files, with head contents of those the pipeline will review.

        ``pull`` is the PR as the caller already read it: its ``head_sha`` is the
        commit whose contents are read.  Files come from REST (100 per page, with their
        patches); contents (:meth:`head_contents`) only of files that have a patch, are
        not removed and are ``wanted`` (include/exclude): anything else is reported
        from its list entry alone, so a PR cannot make docgen download what it will not
        use.  ``limits`` caps the bytes read, per file and per run; a file left unread
        for its size carries the reason in ``FileChange.skip_reason``.
        """
        files = await self.list_files(pull.number)
        notes = []
        if len(files) < pull.changed_files:
            notes.append(
                f"GitHub lists only {len(files):,} of the {pull.changed_files:,} changed files;"
                " the others were not reviewed"
            )
        read = [f for f in files if worth_reading(f, wanted)]
        heads = await self.head_contents(pull.head_sha, read, limits)
        changes = [
            FileChange(
                f.filename,
                f.status,
                f.patch,
                heads.contents.get(f.filename),
                f.previous_filename,
                heads.skipped.get(f.filename),
            )
            for f in files
        ]
        over = [p for p, why in heads.skipped.items() if "DOCGEN_MAX_RUN_BYTES" in why]
        if over and limits is not None and limits.max_run_bytes is not None:
            notes.append(
                f"This run read {heads.bytes_read:,} bytes of files, up to its"
                f" {limits.max_run_bytes:,}-byte cap (DOCGEN_MAX_RUN_BYTES); not reviewed: "
                + ", ".join(f"`{p}`" for p in over)
            )
        return PullChanges(pull, changes, notes)

    async def head_contents(
        self, head_sha: str, files: Sequence[FileEntry], limits: FetchLimits | None = None
    ) -> HeadContents:
        """The bytes of ``files`` at ``head_sha`` within ``limits``; sizes first
        (:meth:`bot.runtime.github.heads.HeadReader.read` says how)."""
        return await HeadReader(self).read(head_sha, files, limits)

    # ------------------------------------------------------------------- writes

    async def create_check_run(
        self,
        head_sha: str,
        *,
        external_id: str,
        details_url: str | None = None,
        actions: Sequence[CheckRunAction] = (),
    ) -> int:
        """Start the ``docgen`` check run on ``head_sha``; returns its id."""
        payload = check_run_create_payload(
            head_sha,
            external_id=external_id,
            started_at=iso_time(self.clock.time()),
            details_url=details_url,
            actions=actions,
        )
        response = await self._send(
            "POST",
            "/repos/{owner}/{repo}/check-runs",
            lambda: self._gh.rest.checks.async_create(
                self.owner, self.repo, data=payload, headers=self._headers
            ),
        )
        assert response is not None
        return parsed(object_id, response, "POST /repos/{owner}/{repo}/check-runs")

    async def complete_check_run(
        self,
        check_run_id: int,
        *,
        conclusion: Conclusion,
        title: str,
        summary: str,
        annotations: Sequence[dict[str, Any]] = (),
        text: str | None = None,
        details_url: str | None = None,
        actions: Sequence[CheckRunAction] = (),
    ) -> int:
        """Complete the run; annotations beyond 50 go in further PATCHes.  Returns how many."""
        payloads = check_run_update_payloads(
            conclusion=conclusion,
            title=title,
            summary=summary,
            annotations=annotations,
            text=text,
            completed_at=iso_time(self.clock.time()),
            details_url=details_url,
            actions=actions,
        )
        for payload in payloads:
            await self._send(
                "PATCH",
                "/repos/{owner}/{repo}/check-runs/{check_run_id}",
                lambda payload=payload: self._gh.rest.checks.async_update(
                    self.owner, self.repo, check_run_id, data=payload, headers=self._headers
                ),
            )
        return len(payloads)

    async def report_progress(self, check_run_id: int, *, title: str, summary: str) -> None:
        """Say on a running check run what it is waiting for (it stays in progress)."""
        payload = {"status": "in_progress", "output": check_run_output(title, summary)}
        await self._send(
            "PATCH",
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            lambda: self._gh.rest.checks.async_update(
                self.owner, self.repo, check_run_id, data=payload, headers=self._headers
            ),
        )

    async def create_review(
        self,
        number: int,
        commit_id: str,
        comments: Sequence[ReviewComment],
        *,
        body: str | None = None,
    ) -> ReviewResult:
        """Post the comments as one COMMENT review; on 422 split the batch and retry.

        GitHub refuses a whole review when one comment targets a line outside the diff
        (422).  The batch is bisected, each half posted as its own review, until the
        comments GitHub still refuses alone are returned in ``rejected`` with its
        message.  Other errors propagate: comments posted before them stay posted, and
        the markers make the next run skip them.
        """
        result = ReviewResult()
        if comments:
            await self._post_batch(number, commit_id, list(comments), body, result)
        return result

    async def _post_batch(
        self,
        number: int,
        commit_id: str,
        batch: list[ReviewComment],
        body: str | None,
        result: ReviewResult,
    ) -> None:
        payload = review_payload(commit_id, batch, body)
        try:
            response = await self._send(
                "POST",
                "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                lambda: self._gh.rest.pulls.async_create_review(
                    self.owner, self.repo, number, data=payload, headers=self._headers
                ),
                already_done=lambda: self._batch_posted(number, batch),
            )
        except Unprocessable as exc:
            if len(batch) == 1:
                result.rejected.append((batch[0], exc.reason))
                return
            middle = len(batch) // 2
            await self._post_batch(number, commit_id, batch[:middle], body, result)
            await self._post_batch(number, commit_id, batch[middle:], body, result)
            return
        result.posted.extend(batch)
        if response is not None:
            route = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
            result.review_ids.append(parsed(object_id, response, route))

    async def _batch_posted(self, number: int, batch: Sequence[ReviewComment]) -> bool:
        """Whether a review whose POST failed with a 5xx was stored anyway (reviews are atomic)."""
        markers = [m for m in (review_comment.parse_marker(c.body) for c in batch) if m is not None]
        if not markers:
            return False
        return markers[0] in await self.existing_markers(number)

    async def add_reaction(self, comment_id: int, content: str = "eyes") -> None:
        """React to an issue comment (👀 on a ``/docgen`` command)."""
        await self._send(
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            lambda: self._gh.rest.reactions.async_create_for_issue_comment(
                self.owner, self.repo, comment_id, data={"content": content}, headers=self._headers
            ),
        )

    async def post_issue_comment(self, number: int, body: str) -> int:
        """Comment on the PR's conversation; returns the comment id."""
        response = await self._send(
            "POST",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            lambda: self._gh.rest.issues.async_create_comment(
                self.owner, self.repo, number, data={"body": body}, headers=self._headers
            ),
        )
        assert response is not None
        return parsed(
            object_id, response, "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
        )
