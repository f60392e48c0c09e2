"""A local stand-in for the GitHub REST API endpoints docgen uses.

:class:`FakeGitHub` is a Starlette app answering exactly the routes in :data:`ROUTES`
with bodies shaped like GitHub's (the fields githubkit's models require, so
``Response.parsed_data`` validates), and making the checks GitHub makes that our
client could get wrong:

* App auth: ``POST /app/installations/{id}/access_tokens`` takes only a JWT signed
  (RS256) with the App's key, ``iss`` = the App id, ``exp`` at most ten minutes out;
  every other route takes only an unexpired installation token it issued, for a
  repository of that installation (others are 404, as on GitHub).
* Patches: a PR's ``patch`` fields are real ``git diff`` output (:class:`GitDiffer`),
  not a reimplementation; nothing here imports ``bot``, so the fake judges the bot by
  git's and GitHub's rules, not by its own.
* Reviews: every comment must target RIGHT-side lines inside one hunk of its file's
  patch, read by the fake's own parser (:func:`diff_hunks`, lines split at "\\n" only),
  else the *whole* review is refused with 422; comment bodies must not be blank.  A
  review without ``event`` stays PENDING.  :meth:`FakeGitHub.apply_suggestions` commits
  the posted suggestions the way GitHub does, so a test can read the resulting file.
* Check runs: at most 50 annotations per request, ``output.summary`` at most 65,535
  characters, at most 3 actions with GitHub's length limits; annotations of each
  update are appended.
* Contents: files over 1 MB come back without content (``encoding: "none"``) with the
  object media type, and are refused (403 ``too_large``) with the default one.
* Pagination: ``per_page`` (default 30, at most 100) and ``Link`` headers; the files
  of a PR stop at 3,000.
* GraphQL: ``POST /graphql`` (GHES: ``/api/graphql`` beside ``/api/v3``) takes the
  same installation tokens, parses the query (operations, variables with their
  declared types, aliases, arguments, inline and named fragments) and answers
  ``repository(owner:, name:) { alias: object(expression: "<rev>:<path>") { ... on Blob
  { oid byteSize isBinary isTruncated text } } }`` (or ``object(oid: $blobId)``, variables
  of type ``GitObjectID``) in GitHub's shapes: ``null`` for
  a missing object, ``NOT_FOUND`` (``type``/``path``/``locations``/``message``) for a
  repository the installation cannot see, GitHub's variable errors (status 200, no
  data), text cut at :attr:`FakeGitHub.graphql_text_limit` bytes with ``isTruncated``,
  ``text: null`` for binary blobs.  Anything else in a query is a request the fake
  cannot handle (500, recorded).  :meth:`FakeGitHub.fail_object` scripts an error
  for one object; :meth:`Fault.graphql_rate_limit` the 200 + RATE_LIMITED answer.
* App manifests: :meth:`FakeGitHub.register_manifest` stands for the person pressing
  *Create GitHub App* on GitHub's page and returns the one-hour, one-use ``code``;
  ``POST /app-manifests/{code}/conversions`` (no auth) answers 201 with the new App's
  id, slug, ``pem`` and ``webhook_secret``, and from then on the fake *is* that App
  (its key signs the JWTs it accepts).

Every request is recorded in :attr:`FakeGitHub.calls`, and every file content sent
(GraphQL ``text``, contents, blobs) in :attr:`FakeGitHub.served` (``bytes_served``).  A route the fake does not know,
or a request it cannot handle, answers 500 *and* is recorded in
:attr:`FakeGitHub.errors`, which the ``fake_github`` fixture asserts empty.  Faults are
scripted per route name with :meth:`FakeGitHub.fail` (5xx, secondary/primary rate
limits, 429, or "succeeded, then answered 502").

Use it in-process with ``httpx.ASGITransport(app=fake.app)`` (no sockets), or run it
with :meth:`FakeGitHub.serve` on 127.0.0.1 for end-to-end tests of ``docgen serve``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit.webhooks import sign
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

APP_ID = 4242
BOT_LOGIN = "docgen[bot]"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
CONTENTS_LIMIT = 1024 * 1024  # the contents API inlines files up to 1 MB
# GitHub truncates Blob.text without documenting where; the fake cuts at 512 KiB.
GRAPHQL_TEXT_LIMIT = 512 * 1024
GRAPHQL_DOCS = "https://docs.github.com/graphql"
MAX_PR_FILES = 3_000
RATE_LIMIT = 5_000
_EPOCH = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


# ------------------------------------------------------------------ GitHub-style data


def signed_delivery(
    secret: str, event: str, payload: Any, delivery_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its headers, signed as GitHub signs them (X-Hub-Signature-256)."""
    body = json.dumps(payload).encode()
    return body, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body, "sha256"),
        "Content-Type": "application/json",
    }


def git_blob_sha(data: bytes) -> str:
    """The sha git gives a blob with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _as_bytes(content: bytes | str) -> bytes:
    return content if isinstance(content, bytes) else content.encode("utf-8")


class GitDiffer:
    """Real ``git diff`` for the fake's patches: one throwaway bare repository, blobs in it.

    GitHub's ``patch`` is ``git diff``'s output for the file without its header lines
    (``diff --git``, ``index``, ``---``, ``+++``): hunks only, ``\\ No newline at end of
    file`` markers included, no trailing newline.
    https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files

    Each side is stored with ``git hash-object -w`` and diffed as two blobs (``git diff
    <blob> <blob>``), so no work tree or commit is needed; answers are cached by the
    pair of blob ids.  The repository lives in a temp dir removed with this object.
    """

    # Nothing from the developer's or the machine's git config (diff.noprefix,
    # diff.algorithm, color, external diff drivers) may change what the fake shows.
    _ENV: ClassVar[dict[str, str]] = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }

    def __init__(self) -> None:
        self._dir: str | None = None
        self._blobs: dict[bytes, str] = {}
        self._patches: dict[tuple[str, str], str | None] = {}

    def _git(self, *args: str, data: bytes | None = None) -> bytes:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="fake-github-git-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
            self._run("init", "-q", "--bare")
        return self._run(*args, data=data)

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        env = {**os.environ, **self._ENV}
        cmd = ["git", f"--git-dir={self._dir}", *args]
        done = subprocess.run(cmd, input=data, capture_output=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; its id as git computes it."""
        if data not in self._blobs:
            self._blobs[data] = (
                self._git("hash-object", "-w", "--stdin", data=data).decode().strip()
            )
        return self._blobs[data]

    def patch(self, old: bytes | None, new: bytes | None) -> str | None:
        """The ``patch`` GitHub shows for a file going from ``old`` to ``new`` (None: absent).

        None when nothing changed and for binary files (git's own test: a NUL in the
        first 8,000 bytes).  Also None for text that is not UTF-8: the API's JSON
        carries text, and what GitHub does with such bytes is not documented.
        """
        pair = (self.blob(old or b""), self.blob(new or b""))
        if pair not in self._patches:
            self._patches[pair] = self._diff(*pair)
        return self._patches[pair]

    def _diff(self, old_id: str, new_id: str) -> str | None:
        if old_id == new_id:
            return None
        out = self._git(
            "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-U3", old_id, new_id
        )
        lines = out.split(b"\n")
        first = next((i for i, line in enumerate(lines) if line.startswith(b"@@ -")), None)
        if first is None:  # "Binary files a/… and b/… differ"
            return None
        try:
            text = b"\n".join(lines[first:]).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text.removesuffix("\n") or None


# ------------------------------------------------------------ hunks and suggestions
#
# The fake's own reading of a patch, independent of bot/docstrings/diff.py: which RIGHT-side
# lines a review comment may target, and what committing a suggestion does.

_HUNK_HEADER = re.compile(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class DiffHunk:
    """One hunk of a ``patch``: its text lines and the head-file line number of each."""

    lines: tuple[str, ...]  # the header, then the body, split at "\n" only
    right: tuple[int | None, ...]  # per line: its RIGHT-side line number, or None

    @property
    def right_lines(self) -> frozenset[int]:
        """Head lines a comment may target here: context and added lines."""
        return frozenset(n for n in self.right if n is not None)

    def text_through(self, line: int) -> str:
        """The hunk from its header down to head line ``line`` (a comment's ``diff_hunk``)."""
        end = self.right.index(line)
        return "\n".join(self.lines[: end + 1])


def diff_hunks(patch: str | None) -> tuple[DiffHunk, ...]:
    """The hunks of a GitHub ``patch``, lines split at ``\\n`` only (as git counts them).

    A body line starting with " " (context) or "+" (added) is on the RIGHT side and
    takes the next head line number; "-" lines and "\\ No newline" markers take none.
    """
    hunks: list[DiffHunk] = []
    lines: list[str] = []
    right: list[int | None] = []
    number = 0
    for text in patch.split("\n") if patch else ():
        header = _HUNK_HEADER.match(text)
        if header:
            if lines:
                hunks.append(DiffHunk(tuple(lines), tuple(right)))
            lines, right, number = [text], [None], int(header[1])
            continue
        if not lines:
            raise ValueError(f"patch text before its first hunk header: {text!r}")
        lines.append(text)
        if text[:1] in (" ", "+"):
            right.append(number)
            number += 1
        else:
            right.append(None)
    if lines:
        hunks.append(DiffHunk(tuple(lines), tuple(right)))
    return tuple(hunks)


_FENCE_OPEN = re.compile(r" {0,3}(`{3,})[ \t]*suggestion[ \t]*")


def suggestion_block(body: str) -> list[str] | None:
    """The lines of the ```suggestion block in a comment body, None when it has none.

    CommonMark's fenced code block: an opening fence of three or more backticks with
    the info string ``suggestion``, closed by a fence at least as long, or by the end
    of the body.  https://spec.commonmark.org/0.31.2/#fenced-code-blocks
    The body is split at "\\n"; a CR ending a line is that line's ending (bodies typed
    in a browser arrive with CRLF), not text.
    https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request
    """
    lines = [line.removesuffix("\r") for line in body.split("\n")]
    if lines[-1] == "":
        lines.pop()  # the body ended with a line ending, not with an empty line
    for i, line in enumerate(lines):
        opening = _FENCE_OPEN.fullmatch(line)
        if opening is None:
            continue
        fence = opening[1]
        block: list[str] = []
        for text in lines[i + 1 :]:
            if re.fullmatch(rf" {{0,3}}`{{{len(fence)},}}[ \t]*", text):
                return block
            block.append(text)
        return block
    return None


def _git_lines(data: bytes) -> list[bytes]:
    """The file's lines as git counts them (ended by "\\n" only), endings kept."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data)


def _ending(line: bytes) -> bytes:
    """A git line's ending: CRLF, LF, or nothing (the file's last line without one)."""
    if line.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if line.endswith(b"\n") else b""


def apply_suggestion_lines(data: bytes, edits: list[tuple[int, int, list[str]]]) -> bytes:
    """``data`` with each (start_line, line, new lines) edit applied, as a commit would.

    Lines are git's (split at "\\n"), 1-based and inclusive.  Edits may not overlap
    (GitHub refuses to batch overlapping suggestions).  The inserted lines take the line
    ending of the lines they replace, so a suggestion in a CRLF file keeps CRLF: this is
    an assumption, as GitHub does not document it; it is what keeps a suggestion typed
    in a browser (which sends CRLF) from changing an LF file, and the reverse.
    """
    lines = _git_lines(data)
    done_above = len(lines) + 1
    for start, end, new in sorted(edits, reverse=True):
        if not 1 <= start <= end <= len(lines):
            raise ValueError(f"lines {start}-{end} are not in a file of {len(lines)} lines")
        if end >= done_above:
            raise ValueError(f"suggestions overlap at lines {start}-{end}")
        done_above = start
        replaced = lines[start - 1 : end]
        last_ending = _ending(replaced[-1])
        eol = last_ending or _ending(replaced[0]) or b"\n"
        out = [text.encode("utf-8") + eol for text in new]
        if out:
            out[-1] = out[-1][: len(out[-1]) - len(eol)] + last_ending
        lines[start - 1 : end] = out
    return b"".join(lines)


def _b64(data: bytes) -> str:
    """Base64 wrapped at 60 columns, as the contents and blobs APIs send it."""
    raw = base64.b64encode(data).decode("ascii")
    return "".join(raw[i : i + 60] + "\n" for i in range(0, len(raw), 60))


def _ts(epoch: float | None = None) -> str:
    moment = _EPOCH if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")


def _user(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    api = f"https://api.github.com/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": _node_id(kind, user_id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


_REPO_URLS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


# --------------------------------------------------------------------------- state


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    installation_id: int
    default_branch: str = "main"
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> path -> bytes
    branches: dict[str, str] = field(default_factory=dict)  # name -> sha
    blobs: dict[str, bytes] = field(default_factory=dict)
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    issue_comments: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def resolve(self, ref: str | None) -> dict[str, bytes] | None:
        sha = self.branches.get(ref or self.default_branch, ref)
        return self.commits.get(sha or "")


@dataclass
class PullRequest:
    repo: Repo
    number: int
    id: int
    title: str
    author: str
    base_sha: str
    head_sha: str
    base_ref: str
    head_ref: str
    files: list[dict[str, Any]]  # GitHub's file entries (with "patch" when there is one)
    draft: bool = False
    state: str = "open"
    head_repo: str | None = None  # full name; None: the same repository
    reviews: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)  # review comments

    def webhook_payload(self, action: str = "opened") -> dict[str, Any]:
        """The ``pull_request`` webhook GitHub would send for this PR (installation 1)."""
        full = self.repo.full_name
        repo = {"full_name": full, "name": self.repo.name, "owner": {"login": self.repo.owner}}
        return {
            "action": action,
            "number": self.number,
            "pull_request": {
                "number": self.number,
                "state": self.state,
                "draft": self.draft,
                "head": {"sha": self.head_sha, "ref": self.head_ref, "repo": repo},
                "base": {"sha": self.base_sha, "ref": self.base_ref, "repo": repo},
                "user": {"login": self.author, "type": "User"},
            },
            "repository": repo,
            "installation": {"id": self.repo.installation_id},
            "sender": {"login": self.author, "type": "User"},
        }

    def hunks(self, path: str) -> tuple[DiffHunk, ...] | None:
        """The hunks of ``path``'s patch (none without a patch); None: not in the PR."""
        for entry in self.files:
            if entry["filename"] == path:
                return diff_hunks(entry.get("patch"))
        return None


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    external_id: str | None
    details_url: str | None
    started_at: str | None
    completed_at: str | None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    route: str | None  # the route's name, None when unknown
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Fault:
    """A scripted answer instead of (or, with ``process``, after) the real one."""

    status: int
    body: Any  # JSON
    headers: dict[str, str] = field(default_factory=dict)
    process: bool = False  # act on the request first, then answer with this

    @classmethod
    def server_error(cls, status: int = 502, *, process: bool = False) -> Fault:
        return cls(status, {"message": "Server Error"}, process=process)

    @classmethod
    def secondary_rate_limit(cls, retry_after: int | None = 3, status: int = 403) -> Fault:
        # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        body = {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes"
            " before you try again.",
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        }
        return cls(status, body, headers)

    @classmethod
    def too_many_requests(cls, retry_after: int = 2) -> Fault:
        return cls.secondary_rate_limit(retry_after, status=429)

    @classmethod
    def graphql_rate_limit(
        cls, reset: float, installation_id: int = 1, error_type: str = "RATE_LIMITED"
    ) -> Fault:
        """GraphQL's primary rate limit: status 200, an error, ``x-ratelimit-remaining: 0``.

        https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit
        (newer answers say ``RATE_LIMIT``: https://github.com/yanyongyu/githubkit/issues/271)
        """
        body = {
            "errors": [
                {
                    "type": error_type,
                    "code": "graphql_rate_limit",
                    "message": "API rate limit already exceeded for installation ID"
                    f" {installation_id}.",
                }
            ]
        }
        headers = {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(reset)),
            "x-ratelimit-resource": "graphql",
        }
        return cls(200, body, headers)

    @classmethod
    def primary_rate_limit(cls, reset: float, installation_id: int = 1) -> Fault:
        body = {
            "message": f"API rate limit exceeded for installation ID {installation_id}.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        }
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset))}
        return cls(403, body, headers)


class _Refused(Exception):
    """An error answer, as GitHub would give it."""

    def __init__(
        self, status: int, message: str, errors: list[Any] | None = None, doc: str = DOCS
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": doc}
        if errors is not None:
            self.body["errors"] = errors
        self.body["status"] = str(status)


# GitHub counts check-run output and annotation text in UTF-8 bytes, whatever the docs
# say ("Maximum length: 65535 characters"); its answer to one byte too many
# (https://github.com/github/docs/issues/35252):
# {"resource":"CheckRun","code":"custom","field":"summary",
#  "message":"summary exceeds a maximum bytesize of 65535"}
# Annotation message/raw_details are documented as "Maximum length: 64 KB"; the same
# byte rule and answer are assumed for them.
# https://docs.github.com/en/rest/checks/runs#update-a-check-run
OUTPUT_MAX_BYTES = 65_535


def _over_bytesize(fields: dict[str, Any], keys: tuple[str, ...]) -> list[dict[str, str]]:
    """GitHub's validation errors for the ``keys`` of ``fields`` over 65,535 UTF-8 bytes."""
    errors = []
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) > OUTPUT_MAX_BYTES:
            errors.append(
                {
                    "resource": "CheckRun",
                    "code": "custom",
                    "field": key,
                    "message": f"{key} exceeds a maximum bytesize of {OUTPUT_MAX_BYTES}",
                }
            )
    return errors


def _not_found(doc: str = DOCS) -> _Refused:
    return _Refused(404, "Not Found", doc=doc)


def _unprocessable(errors: list[Any], doc: str) -> _Refused:
    return _Refused(422, "Unprocessable Entity", errors, doc)


# ------------------------------------------------------------------------- GraphQL
#
# Enough of GraphQL's grammar (https://spec.graphql.org/October2021/) to read the
# queries a client sends for blobs, with GitHub's answers and error shapes.


class _CannotHandle(Exception):
    """A query using GraphQL the fake does not implement (answered 500 and recorded)."""


_GQL_TOKEN = re.compile(
    r"""(?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
      | (?P<spread>\.\.\.)
      | (?P<punct>[!$():=@\[\]{}|&])
      | (?P<string>"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*")
      | (?P<number>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)""",
    re.X,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "punct" | "spread" | "string" | "number" | "name" | "end"
    text: str
    offset: int


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Field:
    alias: str | None
    name: str
    args: dict[str, Any]  # values: python literals or _Var
    selections: tuple[Any, ...]
    location: dict[str, int]

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class _InlineFragment:
    on: str | None
    selections: tuple[Any, ...]


@dataclass(frozen=True)
class _Spread:
    name: str


@dataclass(frozen=True)
class _Operation:
    kind: str  # "query" | "mutation" | "subscription"
    name: str | None
    variables: dict[str, tuple[str, Any]]  # name -> (type as written, default)
    selections: tuple[Any, ...]
    location: dict[str, int]


class _GraphQLParser:
    """A recursive-descent parser for executable GraphQL documents."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[_Token] = []
        pos = 0
        while pos < len(text):
            match = _GQL_TOKEN.match(text, pos)
            if match is None:
                raise _CannotHandle(f"unexpected character {text[pos]!r} at {pos}")
            if match.lastgroup != "skip":
                self.tokens.append(_Token(match.lastgroup or "", match.group(), pos))
            pos = match.end()
        self.tokens.append(_Token("end", "", len(text)))
        self.i = 0

    def location(self, token: _Token) -> dict[str, int]:
        line = self.text.count("\n", 0, token.offset) + 1
        column = token.offset - (self.text.rfind("\n", 0, token.offset) + 1) + 1
        return {"line": line, "column": column}

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, kind: str | None = None, text: str | None = None) -> _Token:
        token = self.tokens[self.i]
        if (kind and token.kind != kind) or (text is not None and token.text != text):
            raise _CannotHandle(f"expected {text or kind}, found {token.text or 'the end'!r}")
        self.i += 1
        return token

    def at(self, text: str) -> bool:
        return self.peek().text == text and self.peek().kind in ("punct", "spread", "name")

    def document(self) -> tuple[list[_Operation], dict[str, _InlineFragment]]:
        operations: list[_Operation] = []
        fragments: dict[str, _InlineFragment] = {}
        while self.peek().kind != "end":
            if self.at("fragment"):
                self.take()
                name = self.take("name").text
                self.take("name", "on")
                fragments[name] = _InlineFragment(self.take("name").text, self.selection_set())
            else:
                operations.append(self.operation())
        return operations, fragments

    def operation(self) -> _Operation:
        start = self.peek()
        if self.at("{"):
            return _Operation("query", None, {}, self.selection_set(), self.location(start))
        kind = self.take("name").text
        if kind not in ("query", "mutation", "subscription"):
            raise _CannotHandle(f"unknown operation type {kind!r}")
        name = self.take("name").text if self.peek().kind == "name" else None
        variables: dict[str, tuple[str, Any]] = {}
        if self.at("("):
            self.take()
            while not self.at(")"):
                self.take("punct", "$")
                var = self.take("name").text
                self.take("punct", ":")
                type_text = self.type_ref()
                default = None
                if self.at("="):
                    self.take()
                    default = self.value(const=True)
                variables[var] = (type_text, default)
            self.take("punct", ")")
        if self.at("@"):
            raise _CannotHandle("directives")
        return _Operation(kind, name, variables, self.selection_set(), self.location(start))

    def type_ref(self) -> str:
        if self.at("["):
            self.take()
            inner = self.type_ref()
            self.take("punct", "]")
            text = f"[{inner}]"
        else:
            text = self.take("name").text
        if self.at("!"):
            self.take()
            text += "!"
        return text

    def selection_set(self) -> tuple[Any, ...]:
        self.take("punct", "{")
        selections: list[Any] = []
        while not self.at("}"):
            selections.append(self.selection())
        self.take("punct", "}")
        if not selections:
            raise _CannotHandle("an empty selection set")
        return tuple(selections)

    def selection(self) -> Any:
        if self.peek().kind == "spread":
            self.take()
            if self.at("on") or self.at("{"):
                on = None
                if self.at("on"):
                    self.take()
                    on = self.take("name").text
                return _InlineFragment(on, self.selection_set())
            return _Spread(self.take("name").text)
        start = self.peek()
        name = self.take("name").text
        alias = None
        if self.at(":"):
            self.take()
            alias, name = name, self.take("name").text
        args: dict[str, Any] = {}
        if self.at("("):
            self.take()
            while not self.at(")"):
                arg = self.take("name").text
                self.take("punct", ":")
                args[arg] = self.value(const=False)
            self.take("punct", ")")
        if self.at("@"):
            raise _CannotHandle("directives")
        selections = self.selection_set() if self.at("{") else ()
        return _Field(alias, name, args, selections, self.location(start))

    def value(self, *, const: bool) -> Any:
        token = self.peek()
        if token.text == "$" and token.kind == "punct":
            if const:
                raise _CannotHandle("a variable in a default value")
            self.take()
            return _Var(self.take("name").text)
        if token.kind == "string":
            self.take()
            return json.loads(token.text)
        if token.kind == "number":
            self.take()
            return json.loads(token.text)
        if token.kind == "name":
            self.take()
            return {"true": True, "false": False, "null": None}.get(token.text, token.text)
        if self.at("["):
            self.take()
            items = []
            while not self.at("]"):
                items.append(self.value(const=const))
            self.take("punct", "]")
            return items
        raise _CannotHandle(f"value {token.text!r}")


def _graphql_error(message: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "message": message}


def _used_variables(selections: tuple[Any, ...], fragments: dict[str, _InlineFragment]) -> set[str]:
    used: set[str] = set()
    for sel in selections:
        if isinstance(sel, _Field):
            used |= {v.name for v in sel.args.values() if isinstance(v, _Var)}
            used |= _used_variables(sel.selections, fragments)
        elif isinstance(sel, _InlineFragment):
            used |= _used_variables(sel.selections, fragments)
        elif sel.name in fragments:
            used |= _used_variables(fragments[sel.name].selections, fragments)
    return used


def _coerce_variables(
    op: _Operation, given: Any, fragments: dict[str, _InlineFragment]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The operation's variable values, or GitHub's errors for them (graphql-ruby's)."""
    given = given if isinstance(given, dict) else {}
    label = op.name or "anonymous query"
    errors = []
    used = _used_variables(op.selections, fragments)
    for name in sorted(used - set(op.variables)):
        errors.append(
            _graphql_error(
                f"Variable ${name} is used by {label} but not declared",
                locations=[op.location],
                extensions={"code": "variableNotDefined", "variableName": name},
            )
        )
    for name in sorted(set(op.variables) - used):
        errors.append(
            _graphql_error(
                f"Variable ${name} is declared by {label} but not used",
                locations=[op.location],
                extensions={"code": "variableNotUsed", "variableName": name},
            )
        )
    values: dict[str, Any] = {}
    scalars = {
        "String": str,
        "ID": (str, int),
        "Int": int,
        "Boolean": bool,
        "GitObjectID": str,  # a git object id in hex
    }
    for name, (type_text, default) in op.variables.items():
        value = given.get(name, default)
        base = type_text.rstrip("!")
        if base not in scalars:
            raise _CannotHandle(f"variables of type {type_text}")
        problem = None
        if value is None and type_text.endswith("!"):
            problem = "Expected value to not be null"
        elif value is not None and (
            not isinstance(value, scalars[base])
            or (base == "GitObjectID" and not re.fullmatch(r"[0-9a-f]{40}", value))
        ):
            problem = f"Could not coerce value {json.dumps(value)} to {base}"
        if problem:
            errors.append(
                _graphql_error(
                    f"Variable ${name} of type {type_text} was provided invalid value",
                    locations=[op.location],
                    extensions={
                        "value": value,
                        "problems": [{"path": [], "explanation": problem}],
                    },
                )
            )
        values[name] = value
    return values, errors


class _GraphQLRun:
    """One query's execution against a :class:`FakeGitHub` (the types docgen reads)."""

    # Types an inline fragment or a fragment may name, with what they implement.
    TYPES: ClassVar[dict[str, frozenset[str]]] = {
        "Query": frozenset({"Query"}),
        "Repository": frozenset({"Repository", "Node"}),
        "Blob": frozenset({"Blob", "GitObject", "Node"}),
        "Tree": frozenset({"Tree", "GitObject", "Node"}),
        "Commit": frozenset({"Commit", "GitObject", "Node"}),
    }
    ABSTRACT: ClassVar[frozenset[str]] = frozenset({"GitObject", "Node"})

    def __init__(
        self,
        fake: FakeGitHub,
        installation: int,
        variables: dict[str, Any],
        fragments: dict[str, _InlineFragment],
    ) -> None:
        self.fake = fake
        self.installation = installation
        self.variables = variables
        self.fragments = fragments
        self.errors: list[dict[str, Any]] = []

    def value(self, raw: Any) -> Any:
        return self.variables.get(raw.name) if isinstance(raw, _Var) else raw

    def fields(self, selections: tuple[Any, ...], type_name: str) -> list[_Field]:
        """The fields that apply to an object of ``type_name`` (fragments flattened)."""
        out: list[_Field] = []
        for sel in selections:
            if isinstance(sel, _Spread):
                if sel.name not in self.fragments:
                    raise _CannotHandle(f"unknown fragment {sel.name}")
                sel = self.fragments[sel.name]
            if isinstance(sel, _InlineFragment):
                known = self.TYPES.keys() | self.ABSTRACT
                if sel.on is not None and sel.on not in known:
                    raise _CannotHandle(f"fragments on {sel.on}")
                if sel.on is None or sel.on in self.TYPES[type_name]:
                    out += self.fields(sel.selections, type_name)
                continue
            out.append(sel)
        return out

    def query_field(self, field: _Field) -> Any:
        if field.name == "__typename":
            return "Query"
        if field.name != "repository":
            raise _CannotHandle(f"field Query.{field.name}")
        owner, name = self.value(field.args.get("owner")), self.value(field.args.get("name"))
        repo = self.fake.repos.get(f"{owner}/{name}")
        if repo is None or repo.installation_id != self.installation:
            self.errors.append(
                _graphql_error(
                    f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                    type="NOT_FOUND",
                    path=[field.key],
                    locations=[field.location],
                )
            )
            return None
        return {
            f.key: self.repository_field(repo, f, [field.key])
            for f in self.fields(field.selections, "Repository")
        }

    def repository_field(self, repo: Repo, field: _Field, path: list[Any]) -> Any:
        if field.name == "__typename":
            return "Repository"
        if field.name == "nameWithOwner":
            return repo.full_name
        if field.name == "name":
            return repo.name
        if field.name != "object":
            raise _CannotHandle(f"field Repository.{field.name}")
        if set(field.args) - {"expression", "oid"} or len(field.args) != 1:
            raise _CannotHandle("object() needs exactly one of expression, oid")
        by_oid = "oid" in field.args
        expression = str(self.value(field.args.get("oid" if by_oid else "expression")))
        # fail_object names a path (expression) or a blob id (oid)
        key = expression if by_oid else expression.partition(":")[2]
        if key in self.fake.object_errors:
            error_type, message = self.fake.object_errors[key]
            self.errors.append(
                _graphql_error(
                    message,
                    type=error_type,
                    path=[*path, field.key],
                    locations=[field.location],
                )
            )
            return None
        if by_oid:
            data = repo.blobs.get(expression)
            found = None if data is None else ("Blob", data)
        else:
            found = self.fake._git_object(repo, expression)
        if found is None:
            return None  # no such object (at that revision): null, without an error
        type_name, data = found
        out: dict[str, Any] = {}
        for f in self.fields(field.selections, type_name):
            if f.name == "__typename":
                out[f.key] = type_name
            elif type_name == "Blob":
                out[f.key] = self.fake._blob_field(f.name, data, expression)
            elif f.name == "oid":
                out[f.key] = hashlib.sha1(expression.encode()).hexdigest()
            else:
                raise _CannotHandle(f"field {type_name}.{f.name}")
        return out


# --------------------------------------------------------------------------- routes

_NAME = r"[A-Za-z0-9_.-]+"
_ROUTE_TABLE: list[tuple[str, str, str]] = [
    ("POST", r"/app/installations/(?P<installation_id>\d+)/access_tokens", "tokens.create"),
    ("GET", r"/app", "apps.get_authenticated"),
    ("GET", rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})", "repos.get"),
    ("GET", rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/pulls/(?P<number>\d+)", "pulls.get"),
    (
        "GET",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/pulls/(?P<number>\d+)/files",
        "pulls.files",
    ),
    (
        "GET",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/contents(?:/(?P<path>.*))?",
        "repos.contents",
    ),
    (
        "GET",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/git/blobs/(?P<sha>[0-9a-f]+)",
        "git.blob",
    ),
    ("POST", rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/check-runs", "checks.create"),
    (
        "PATCH",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/check-runs/(?P<check_run_id>\d+)",
        "checks.update",
    ),
    (
        "GET",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/pulls/(?P<number>\d+)/reviews",
        "reviews.list",
    ),
    (
        "POST",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/pulls/(?P<number>\d+)/reviews",
        "reviews.create",
    ),
    (
        "GET",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/pulls/(?P<number>\d+)/comments",
        "comments.list",
    ),
    (
        "POST",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/issues/comments/(?P<comment_id>\d+)/reactions",
        "reactions.create",
    ),
    (
        "POST",
        rf"/repos/(?P<owner>{_NAME})/(?P<repo>{_NAME})/issues/(?P<number>\d+)/comments",
        "issue_comments.create",
    ),
    ("POST", r"/app-manifests/(?P<code>[A-Za-z0-9_-]+)/conversions", "manifests.convert"),
]
ROUTES = [(m, re.compile(p + r"\Z"), name) for m, p, name in _ROUTE_TABLE]
# POST /graphql (GHES: /api/graphql) is matched apart: its path does not follow the prefix.
ROUTE_NAMES = frozenset(name for _, _, name in _ROUTE_TABLE) | {"graphql"}


class FakeGitHub:
    """GitHub's REST API for one App, in memory.  See the module docstring."""

    def __init__(
        self,
        public_key: Any,
        *,
        app_id: int = APP_ID,
        prefix: str = "",
        token_ttl: float = 3600.0,
        contents_limit: int = CONTENTS_LIMIT,
        graphql_text_limit: int = GRAPHQL_TEXT_LIMIT,
    ) -> None:
        self.public_key = public_key  # the App's (what GitHub keeps after registration)
        self.app_id = app_id
        # The App's slug; its bot user, who authors its reviews and comments, is
        # "<slug>[bot]" (https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/registering-a-github-app#about-the-github-app-name).
        self.app_slug = BOT_LOGIN.removesuffix("[bot]")
        self.prefix = prefix.rstrip("/")  # "/api/v3" for GitHub Enterprise Server
        # GHES serves GraphQL at /api/graphql beside /api/v3:
        # https://docs.github.com/en/enterprise-server@latest/graphql/guides/forming-calls-with-graphql#the-graphql-endpoint
        self.graphql_path = (
            self.prefix.removesuffix("/v3") + "/graphql"
            if self.prefix.endswith("/api/v3")
            else self.prefix + "/graphql"
        )
        self.graphql_text_limit = graphql_text_limit
        # path -> (error type, message) answered for that object (see fail_object)
        self.object_errors: dict[str, tuple[str, str]] = {}
        self.token_ttl = token_ttl
        self.contents_limit = contents_limit
        self.calls: list[Call] = []
        self.errors: list[str] = []
        self.tokens: dict[str, tuple[int, float]] = {}  # token -> (installation, expires)
        self.installations: set[int] = set()
        self.repos: dict[str, Repo] = {}
        # code -> (manifest, expiry), from register_manifest
        self.manifest_codes: dict[str, tuple[dict[str, Any], float]] = {}
        self.rate_used: dict[int, int] = {}  # REST ("core") requests per installation
        # (route, path or blob id, bytes) of every file content sent (see bytes_served)
        self.served: list[tuple[str, str, int]] = []
        self.graphql_rate_used: dict[int, int] = {}
        self.rate_reset = int(time.time()) + 3600
        self._faults: dict[str, deque[Fault]] = {}
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self.git = GitDiffer()  # patches come from real `git diff`
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"],
                )
            ]
        )

    # ------------------------------------------------------------------ set-up

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        files: Mapping[str, bytes | str] | None = None,
        installation_id: int = 1,
        default_branch: str = "main",
    ) -> Repo:
        """A repository of ``installation_id`` whose default branch holds ``files``."""
        self.installations.add(installation_id)
        repo = Repo(owner, name, next(self._ids), installation_id, default_branch)
        self.repos[repo.full_name] = repo
        self.add_commit(repo, files or {}, branch=default_branch)
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name]

    def add_commit(
        self, repo: Repo, files: Mapping[str, bytes | str], *, branch: str | None = None
    ) -> str:
        """Store a commit holding exactly ``files``; returns its sha."""
        content = {path: _as_bytes(data) for path, data in files.items()}
        seed = json.dumps(
            [next(self._ids), sorted((p, git_blob_sha(d)) for p, d in content.items())]
        )
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = content
        for data in content.values():
            repo.blobs[git_blob_sha(data)] = data
        if branch is not None:
            repo.branches[branch] = sha
        return sha

    def add_pull(
        self,
        repo: Repo,
        number: int,
        base_files: Mapping[str, bytes | str],
        head_files: Mapping[str, bytes | str],
        *,
        title: str = "Add features",
        author: str = "octocat",
        draft: bool = False,
        renames: Mapping[str, str] | None = None,
        head_repo: str | None = None,
        omit_patch: frozenset[str] = frozenset(),
        base_ref: str | None = None,
    ) -> PullRequest:
        """A PR whose base commit holds ``base_files`` and head commit ``head_files``.

        The base commit becomes the tip of ``base_ref`` (default: the default branch;
        a PR may target any branch).  ``renames`` maps new paths to old ones;
        ``omit_patch`` lists files whose diff GitHub would not show.
        """
        base_ref = base_ref or repo.default_branch
        base_sha = self.add_commit(repo, base_files, branch=base_ref)
        head_ref = f"feature-{number}"
        head_sha = self.add_commit(repo, head_files, branch=head_ref)
        base, head = repo.commits[base_sha], repo.commits[head_sha]
        renames = dict(renames or {})
        renamed_from = set(renames.values())
        entries = []
        for path in sorted(set(base) | set(head)):
            if path in renamed_from and path not in head:
                continue
            old_path = renames.get(path, path)
            old, new = base.get(old_path), head.get(path)
            if old == new and path not in renames:
                continue
            if path in renames:
                status = "renamed"
            elif old is None:
                status = "added"
            elif new is None:
                status = "removed"
            else:
                status = "modified"
            patch = None if path in omit_patch else self.git.patch(old, new)
            entries.append(self._file_entry(repo, head_sha, path, status, old, new, patch))
            if status == "renamed":
                entries[-1]["previous_filename"] = old_path
        pull = PullRequest(
            repo,
            number,
            next(self._ids),
            title,
            author,
            base_sha,
            head_sha,
            base_ref,
            head_ref,
            entries,
            draft=draft,
            head_repo=head_repo,
        )
        repo.pulls[number] = pull
        return pull

    def _file_entry(
        self,
        repo: Repo,
        head_sha: str,
        path: str,
        status: str,
        old: bytes | None,
        new: bytes | None,
        patch: str | None,
    ) -> dict[str, Any]:
        lines = (patch or "").split("\n")
        additions = sum(1 for line in lines if line.startswith("+"))
        deletions = sum(1 for line in lines if line.startswith("-"))
        blob = new if new is not None else old or b""
        entry: dict[str, Any] = {
            "sha": git_blob_sha(blob),
            "filename": path,
            "status": status,
            "additions": additions,
            "deletions": deletions,
            "changes": additions + deletions,
            "blob_url": f"{WEB}/{repo.full_name}/blob/{head_sha}/{path}",
            "raw_url": f"{WEB}/{repo.full_name}/raw/{head_sha}/{path}",
            "contents_url": f"https://api.github.com/repos/{repo.full_name}/contents/{path}?ref={head_sha}",
        }
        if patch is not None:
            entry["patch"] = patch
        return entry

    def apply_suggestions(
        self, pull: PullRequest, path: str, comment_ids: Collection[int] | None = None
    ) -> bytes:
        """``path`` at the PR's head after committing the suggestions posted on it.

        What "Commit suggestion" (or a batch of them) does on GitHub: each comment's
        ```suggestion lines replace head lines ``start_line``..``line`` (git's lines).
        A comment made on an older head is outdated and cannot be applied.  All the
        file's suggestions, or those of the review comments ``comment_ids``.
        https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request#applying-suggested-changes
        """
        edits = []
        for comment in pull.comments:
            block = suggestion_block(comment["body"])
            if comment["path"] != path or block is None:
                continue
            if comment_ids is not None and comment["id"] not in comment_ids:
                continue
            if comment["commit_id"] != pull.head_sha:
                raise ValueError(f"comment {comment['id']} is outdated")
            start = comment["start_line"] or comment["line"]
            edits.append((start, comment["line"], block))
        return apply_suggestion_lines(pull.repo.commits[pull.head_sha][path], edits)

    def add_issue_comment(
        self, repo: Repo, number: int, body: str, *, author: str = "octocat"
    ) -> int:
        """A comment on the PR's conversation (e.g. ``/docgen``); returns its id."""
        comment_id = next(self._ids)
        repo.issue_comments[comment_id] = {
            "id": comment_id,
            "number": number,
            "body": body,
            "user": _user(author, 583231),
            "reactions": [],
        }
        return comment_id

    def add_review_comment(
        self, pull: PullRequest, body: str, *, author: str, kind: str = "User", line: int = 1
    ) -> int:
        """A review comment on ``pull`` by someone other than the App; returns its id."""
        comment_id = next(self._ids)
        pull.comments.append(
            {
                "id": comment_id,
                "node_id": _node_id("PullRequestReviewComment", comment_id),
                "path": next(iter(f["filename"] for f in pull.files), "x.py"),
                "commit_id": pull.head_sha,
                "original_commit_id": pull.head_sha,
                "user": _user(author, 7000 + comment_id, kind),
                "body": body,
                "created_at": _ts(time.time()),
                "updated_at": _ts(time.time()),
                "author_association": "CONTRIBUTOR",
                "line": line,
                "side": "RIGHT",
                "subject_type": "line",
            }
        )
        return comment_id

    def register_manifest(self, manifest: str | Mapping[str, Any]) -> str:
        """What GitHub does when someone submits the manifest form: the ``code`` it redirects with.

        ``manifest`` is the form's ``manifest`` field (JSON) or its parsed value.
        https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
        """
        data = json.loads(manifest) if isinstance(manifest, str) else dict(manifest)
        if not isinstance(data.get("url"), str) or not data["url"]:
            raise ValueError("a manifest needs `url`, the App's homepage")
        hook = data.get("hook_attributes")
        if hook is not None and not (isinstance(hook, dict) and hook.get("url")):
            raise ValueError("`hook_attributes` needs a `url`")
        code = secrets.token_hex(10)
        self.manifest_codes[code] = (data, time.time() + 3600)  # valid for an hour, once
        return code

    def fail(self, route: str, *faults: Fault) -> None:
        """Answer the next requests to ``route`` (a name in :data:`ROUTE_NAMES`) with faults."""
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route name {route!r}; one of {sorted(ROUTE_NAMES)}")
        self._faults.setdefault(route, deque()).extend(faults)

    def fail_object(
        self,
        path: str,
        error_type: str = "NOT_FOUND",
        message: str = "Something went wrong while executing your query.",
    ) -> None:
        """Answer GraphQL ``object`` fields for ``path`` with null and an error naming it."""
        self.object_errors[path] = (error_type, message)

    def expire_tokens(self) -> None:
        """Make every issued installation token expired (GitHub answers 401 to them)."""
        self.tokens = {t: (i, 0.0) for t, (i, _) in self.tokens.items()}

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    @property
    def graphql_objects(self) -> list[str]:
        """Every ``object(expression:)`` value asked for, over all GraphQL calls."""
        out = []
        for call in self.calls_to("graphql"):
            variables = (call.json or {}).get("variables") or {}
            out += [v for k, v in variables.items() if re.fullmatch(r"e\d+", k)]
        return out

    @property
    def bytes_served(self) -> int:
        """Bytes of file content sent so far: GraphQL ``text``, contents, blobs (decoded)."""
        return sum(n for _, _, n in self.served)

    def _served(self, route: str, what: str, n: int) -> None:
        with self._lock:
            self.served.append((route, what, n))

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    @property
    def token_requests(self) -> int:
        return len(self.calls_to("tokens.create"))

    # ---------------------------------------------------------------- dispatch

    async def _dispatch(self, request: Request) -> Response:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        path = request.url.path
        route, params = self._match(request.method, path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.calls.append(
                Call(request.method, path, dict(request.query_params), payload, route, headers)
            )
        if route is None:
            return self._error(f"unknown route: {request.method} {path}")
        installation: int | None = None
        try:
            installation = self._authenticate(route, params, headers)
            fault = self._next_fault(route)
            resource = "graphql" if route == "graphql" else "core"
            if fault is not None and not fault.process:
                return self._answer(fault.status, fault.body, installation, fault.headers, resource)
            handler: Callable[..., Response] = getattr(self, "_" + route.replace(".", "_"))
            response = handler(request, params, payload, installation)
            if fault is not None:
                return self._answer(fault.status, fault.body, installation, fault.headers, resource)
            self._rate_headers(response, installation, resource)
            return response
        except _Refused as exc:
            return self._answer(exc.status, exc.body, installation)
        except Exception as exc:  # a bug in the fake, or a request it cannot judge
            return self._error(f"{request.method} {path}: {type(exc).__name__}: {exc}")

    def _match(self, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        if path == self.graphql_path:
            return ("graphql", {}) if method == "POST" else (None, {})
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return None, {}
            path = path[len(self.prefix) :]
        for route_method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                return name, {k: v for k, v in match.groupdict().items() if v is not None}
        return None, {}

    def _error(self, message: str) -> Response:
        with self._lock:
            self.errors.append(message)
        return JSONResponse({"message": f"fake GitHub: {message}"}, status_code=500)

    def _next_fault(self, route: str) -> Fault | None:
        queue = self._faults.get(route)
        with self._lock:
            return queue.popleft() if queue else None

    def _answer(
        self,
        status: int,
        body: Any,
        installation: int | None,
        headers: Mapping[str, str] | None = None,
        resource: str = "core",
    ) -> Response:
        response = JSONResponse(body, status_code=status)
        self._rate_headers(response, installation, resource)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def _rate_headers(
        self, response: Response, installation: int | None, resource: str = "core"
    ) -> None:
        # GraphQL has its own budget (points; one per query here):
        # https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api
        if installation is None:
            return
        counts = self.graphql_rate_used if resource == "graphql" else self.rate_used
        with self._lock:
            used = counts[installation] = counts.get(installation, 0) + 1
        response.headers["x-ratelimit-limit"] = str(RATE_LIMIT)
        response.headers["x-ratelimit-remaining"] = str(max(RATE_LIMIT - used, 0))
        response.headers["x-ratelimit-used"] = str(used)
        response.headers["x-ratelimit-reset"] = str(self.rate_reset)
        response.headers["x-ratelimit-resource"] = resource

    def _authenticate(
        self, route: str, params: dict[str, str], headers: dict[str, str]
    ) -> int | None:
        if route == "manifests.convert":  # the code is the credential
            return None
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if route == "apps.get_authenticated":  # the App itself: its JWT, no installation
            if scheme.lower() != "bearer":
                raise _Refused(401, "A JSON web token could not be decoded")
            self._check_jwt(credential)
            return None
        if route == "tokens.create":
            if scheme.lower() != "bearer":
                raise _Refused(401, "A JSON web token could not be decoded")
            self._check_jwt(credential)
            installation = int(params["installation_id"])
            if installation not in self.installations:
                raise _not_found()
            return installation
        doc = GRAPHQL_DOCS if route == "graphql" else DOCS
        if scheme.lower() not in ("token", "bearer") or credential not in self.tokens:
            raise _Refused(401, "Bad credentials", doc=doc)
        installation, expires = self.tokens[credential]
        if expires <= time.time():
            raise _Refused(401, "Bad credentials", doc=doc)
        if route == "graphql":  # the repository is an argument, checked when resolved
            return installation
        repo = self.repos.get(f"{params.get('owner')}/{params.get('repo')}")
        if repo is None or repo.installation_id != installation:
            raise _not_found()
        return installation

    def _check_jwt(self, token: str) -> None:
        # https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            raise _Refused(401, "A JSON web token could not be decoded") from None
        if str(claims["iss"]) != str(self.app_id):
            raise _Refused(401, "Integration not found")
        if claims["exp"] > time.time() + 600 + 30:
            raise _Refused(
                401,
                "'Expiration time' claim ('exp') is too far in the future",
            )

    def _repo_of(self, params: dict[str, str]) -> Repo:
        return self.repos[f"{params['owner']}/{params['repo']}"]

    def _pull_of(self, params: dict[str, str]) -> PullRequest:
        pull = self._repo_of(params).pulls.get(int(params["number"]))
        if pull is None:
            raise _not_found("https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
        return pull

    def _api(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + self.prefix

    # ---------------------------------------------------------------- handlers

    def _tokens_create(self, request: Request, params, payload, installation: int) -> Response:
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + self.token_ttl
        with self._lock:
            self.tokens[token] = (installation, expires)
        body = {
            "token": token,
            "expires_at": _ts(expires),
            "permissions": {
                "checks": "write",
                "contents": "read",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
            },
            "repository_selection": "all",
        }
        return JSONResponse(body, status_code=201)

    def _repos_get(self, request: Request, params, payload, installation: int) -> Response:
        repo = self._repo_of(params)
        body = self._repo_json(request, repo)
        body.update(
            {
                "has_issues": True,
                "has_projects": True,
                "has_wiki": True,
                "has_discussions": False,
                "archived": False,
                "subscribers_count": 1,
                "network_count": 0,
                "allow_forking": True,
                "is_template": False,
                "topics": [],
                "visibility": "public",
            }
        )
        return JSONResponse(body)

    def _repo_json(self, request: Request, repo: Repo) -> dict[str, Any]:
        api = f"{self._api(request)}/repos/{repo.full_name}"
        owner = _user(repo.owner, 9919, "Organization")
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": False,
            "owner": owner,
            "html_url": f"{WEB}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in _REPO_URLS.items()},
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": f"{WEB}/{repo.full_name}.git",
            "svn_url": f"{WEB}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "forks_count": 0,
            "forks": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "size": 108,
            "default_branch": repo.default_branch,
            "open_issues_count": len(repo.pulls),
            "open_issues": len(repo.pulls),
            "has_pages": False,
            "disabled": False,
            "license": None,
            "pushed_at": _ts(),
            "created_at": _ts(),
            "updated_at": _ts(),
        }
        return body

    def _pulls_get(self, request: Request, params, payload, installation: int) -> Response:
        pull = self._pull_of(params)
        repo = pull.repo
        api = f"{self._api(request)}/repos/{repo.full_name}"
        html = f"{WEB}/{repo.full_name}/pull/{pull.number}"
        repo_json = self._repo_json(request, repo)
        head_repo = repo_json
        if pull.head_repo is not None:
            head_repo = dict(repo_json, full_name=pull.head_repo, fork=True)
            head_repo["name"] = pull.head_repo.split("/")[1]
            head_repo["owner"] = _user(pull.head_repo.split("/")[0], 771)
        author = _user(pull.author, 583231)
        links = {
            "self": f"{api}/pulls/{pull.number}",
            "html": html,
            "issue": f"{api}/issues/{pull.number}",
            "comments": f"{api}/issues/{pull.number}/comments",
            "review_comments": f"{api}/pulls/{pull.number}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{pull.number}/commits",
            "statuses": f"{api}/statuses/{pull.head_sha}",
        }
        additions = sum(f["additions"] for f in pull.files)
        deletions = sum(f["deletions"] for f in pull.files)
        body = {
            "url": links["self"],
            "id": pull.id,
            "node_id": _node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": author,
            "body": None,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _ts(),
            "updated_at": _ts(),
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{head_repo['owner']['login']}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": head_repo["owner"],
                "repo": head_repo,
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": pull.base_sha,
                "user": repo_json["owner"],
                "repo": repo_json,
            },
            "_links": {key: {"href": value} for key, value in links.items()},
            "author_association": "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pull.draft,
            "merged": False,
            "mergeable": True,
            "rebaseable": True,
            "mergeable_state": "clean",
            "merged_by": None,
            "comments": 0,
            "review_comments": len(pull.comments),
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": additions,
            "deletions": deletions,
            "changed_files": len(pull.files),
        }
        return JSONResponse(body)

    def _page(
        self, request: Request, items: list[Any], *, default: int = 30, cap: int | None = None
    ) -> Response:
        """One page of ``items`` with GitHub's ``Link`` header.

        https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
        """
        query = request.query_params
        per_page = min(max(int(query.get("per_page", default)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
        if cap is not None:
            items = items[:cap]
        last = max((len(items) + per_page - 1) // per_page, 1)
        response = JSONResponse(items[(page - 1) * per_page : page * per_page])
        url = str(request.url).split("?", 1)[0]

        def link(n: int, rel: str) -> str:
            return f'<{url}?{urlencode({**dict(query), "per_page": per_page, "page": n})}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first")]
        if links:
            response.headers["link"] = ", ".join(links)
        return response

    def _pulls_files(self, request: Request, params, payload, installation: int) -> Response:
        return self._page(request, self._pull_of(params).files, cap=MAX_PR_FILES)

    def _repos_contents(self, request: Request, params, payload, installation: int) -> Response:
        doc = "https://docs.github.com/rest/repos/contents#get-repository-content"
        repo = self._repo_of(params)
        ref = request.query_params.get("ref")
        files = repo.resolve(ref)
        if files is None:
            raise _Refused(404, f"No commit found for the ref {ref}", doc=doc)
        path = params.get("path", "").strip("/")
        accept = request.headers.get("accept", "")
        api = f"{self._api(request)}/repos/{repo.full_name}"
        if path not in files:
            prefix = f"{path}/" if path else ""
            children = sorted(
                {p[len(prefix) :].split("/")[0] for p in files if p.startswith(prefix)}
            )
            if not children:
                raise _not_found(doc)
            entries = [self._content_item(api, repo, files, prefix + c, ref) for c in children]
            if "object" in accept:
                item = self._content_item(api, repo, files, path, ref, kind="dir")
                return JSONResponse({**item, "entries": entries})
            return JSONResponse(entries)
        data = files[path]
        if "raw" in accept:
            self._served("repos.contents", path, len(data))
            return Response(data, media_type="application/vnd.github.raw")
        item = self._content_item(api, repo, files, path, ref)
        if len(data) > self.contents_limit:
            if "object" not in accept:
                raise _Refused(
                    403,
                    "This API returns blobs up to 1 MB in size. The requested blob is too large"
                    " to fetch via the API, but you can use the Git Data API to request blobs up"
                    " to 100 MB in size.",
                    [{"resource": "Blob", "field": "data", "code": "too_large"}],
                    doc,
                )
            return JSONResponse({**item, "content": "", "encoding": "none"})
        self._served("repos.contents", path, len(data))
        return JSONResponse({**item, "content": _b64(data), "encoding": "base64"})

    def _content_item(
        self,
        api: str,
        repo: Repo,
        files: dict[str, bytes],
        path: str,
        ref: str | None,
        kind: str | None = None,
    ) -> dict[str, Any]:
        is_file = path in files
        kind = kind or ("file" if is_file else "dir")
        data = files.get(path, b"")
        sha = git_blob_sha(data) if is_file else hashlib.sha1(path.encode()).hexdigest()
        branch = ref or repo.default_branch
        url = f"{api}/contents/{path}?ref={branch}"
        git_url = f"{api}/git/{'blobs' if kind == 'file' else 'trees'}/{sha}"
        html_url = f"{WEB}/{repo.full_name}/{'blob' if kind == 'file' else 'tree'}/{branch}/{path}"
        return {
            "type": kind,
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": (
                f"https://raw.githubusercontent.com/{repo.full_name}/{branch}/{path}"
                if kind == "file"
                else None
            ),
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def _git_blob(self, request: Request, params, payload, installation: int) -> Response:
        repo = self._repo_of(params)
        data = repo.blobs.get(params["sha"])
        if data is None:
            raise _not_found("https://docs.github.com/rest/git/blobs#get-a-blob")
        self._served("git.blob", params["sha"], len(data))
        return JSONResponse(
            {
                "sha": params["sha"],
                "node_id": _node_id("Blob", len(data)),
                "size": len(data),
                "url": f"{self._api(request)}/repos/{repo.full_name}/git/blobs/{params['sha']}",
                "content": _b64(data),
                "encoding": "base64",
            }
        )

    # ---------------------------------------------------------------- GraphQL

    def _graphql(self, request: Request, params, payload, installation: int) -> Response:
        """``POST /graphql``: one query operation over repositories and their git objects.

        https://docs.github.com/en/graphql/guides/forming-calls-with-graphql
        """
        payload = payload if isinstance(payload, dict) else {}
        if not isinstance(payload.get("query"), str):
            raise _Refused(400, "Problems parsing JSON", doc=GRAPHQL_DOCS)
        operations, fragments = _GraphQLParser(payload["query"]).document()
        name = payload.get("operationName")
        chosen = [op for op in operations if name is None or op.name == name]
        if len(chosen) != 1:
            raise _CannotHandle("no single operation to run")
        op = chosen[0]
        if op.kind != "query":
            raise _CannotHandle(f"{op.kind} operations")
        variables, errors = _coerce_variables(op, payload.get("variables"), fragments)
        if errors:  # GitHub answers invalid variables with 200 and no data
            return JSONResponse({"errors": errors})
        run = _GraphQLRun(self, installation, variables, fragments)
        data = {f.key: run.query_field(f) for f in run.fields(op.selections, "Query")}
        body: dict[str, Any] = {"data": data}
        if run.errors:
            body["errors"] = run.errors
        return JSONResponse(body)

    def _git_object(self, repo: Repo, expression: str) -> tuple[str, bytes] | None:
        """What ``object(expression: "<rev>:<path>")`` finds: ("Blob", bytes), ("Tree", b"")."""
        rev, colon, path = expression.partition(":")
        files = repo.resolve(rev) if colon else None
        if files is None:
            return None
        path = path.strip("/")
        if path in files:
            return "Blob", files[path]
        if not path or any(p.startswith(path + "/") for p in files):
            return "Tree", b""
        return None

    def _blob_field(self, name: str, data: bytes, what: str = "") -> Any:
        # git's own test for binary content: a NUL in the first 8,000 bytes.
        binary = b"\0" in data[:8000]
        if name == "oid":
            return git_blob_sha(data)
        if name == "abbreviatedOid":
            return git_blob_sha(data)[:7]
        if name == "byteSize":
            return len(data)
        if name == "isBinary":
            return binary
        if name == "isTruncated":
            return not binary and len(data) > self.graphql_text_limit
        if name == "text":
            # Not the bytes when they are not UTF-8 (GitHub renders text; so does this).
            if binary:
                return None
            text = data[: self.graphql_text_limit].decode("utf-8", "replace")
            self._served("graphql", what, len(text.encode("utf-8", "surrogatepass")))
            return text
        raise _CannotHandle(f"field Blob.{name}")

    # ------------------------------------------------------------- check runs

    _CHECKS_DOC = "https://docs.github.com/rest/checks/runs#create-a-check-run"

    def _validate_check_body(self, body: dict[str, Any], *, create: bool) -> None:
        problems: list[str] = []
        too_big: list[dict[str, str]] = []
        if create:
            for key in ("name", "head_sha"):
                if not isinstance(body.get(key), str) or not body[key]:
                    problems.append(f"{key} is missing")
        status = body.get("status")
        if status is not None and status not in ("queued", "in_progress", "completed"):
            problems.append(f"status {status!r} is not valid")
        conclusion = body.get("conclusion")
        if status == "completed" and conclusion is None:
            problems.append("conclusion is required when status is completed")
        if conclusion == "action_required" and not body.get("details_url"):
            problems.append("details_url is required when conclusion is action_required")
        output = body.get("output")
        if output is not None:
            if create and not output.get("title"):
                problems.append("output.title is missing")
            if not isinstance(output.get("summary"), str):
                problems.append("output.summary is missing")
            too_big += _over_bytesize(output, ("summary", "text"))
            annotations = output.get("annotations") or []
            if len(annotations) > 50:
                problems.append("Only 50 annotations are allowed per request")
            for a in annotations:
                missing = [
                    k
                    for k in ("path", "start_line", "end_line", "annotation_level", "message")
                    if k not in a
                ]
                if missing:
                    problems.append(f"annotation lacks {', '.join(missing)}")
                elif a["annotation_level"] not in ("notice", "warning", "failure"):
                    problems.append("annotation_level is not valid")
                elif a["start_line"] > a["end_line"]:
                    problems.append("annotation start_line is after end_line")
                elif len(a.get("title") or "") > 255:
                    problems.append("annotation title is longer than 255 characters")
                else:
                    too_big += _over_bytesize(a, ("message", "raw_details"))
        actions = body.get("actions") or []
        if len(actions) > 3:
            problems.append("at most 3 actions are allowed")
        for action in actions:
            for key, limit in (("label", 20), ("description", 40), ("identifier", 20)):
                if not isinstance(action.get(key), str) or not 0 < len(action[key]) <= limit:
                    problems.append(f"action {key} must be 1-{limit} characters")
        if problems:
            raise _Refused(422, "Invalid request.", problems, self._CHECKS_DOC)
        if too_big:
            raise _Refused(422, "Validation Failed", too_big, self._CHECKS_DOC)

    def _check_run_json(self, request: Request, repo: Repo, run: CheckRun) -> dict[str, Any]:
        api = f"{self._api(request)}/repos/{repo.full_name}"
        pulls = [p for p in repo.pulls.values() if p.head_sha == run.head_sha]
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": _node_id("CheckRun", run.id),
            "external_id": run.external_id,
            "url": f"{api}/check-runs/{run.id}",
            "html_url": f"{WEB}/{repo.full_name}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": 5000 + run.id},
            "app": None,
            "pull_requests": [
                {
                    "id": p.id,
                    "number": p.number,
                    "url": f"{api}/pulls/{p.number}",
                    "head": {
                        "ref": p.head_ref,
                        "sha": p.head_sha,
                        "repo": {"id": repo.id, "url": api, "name": repo.name},
                    },
                    "base": {
                        "ref": p.base_ref,
                        "sha": p.base_sha,
                        "repo": {"id": repo.id, "url": api, "name": repo.name},
                    },
                }
                for p in pulls
            ],
        }

    def _apply_check_body(self, run: CheckRun, body: dict[str, Any]) -> None:
        for key in ("status", "conclusion", "external_id", "details_url", "started_at"):
            if key in body:
                setattr(run, key, body[key])
        if body.get("conclusion") is not None:
            run.status = "completed"
            run.completed_at = body.get("completed_at") or _ts(time.time())
        output = body.get("output")
        if output is not None:
            run.title = output.get("title", run.title)
            run.summary = output.get("summary", run.summary)
            run.text = output.get("text", run.text)
            # Annotations of every request are appended:
            # https://docs.github.com/en/rest/checks/runs#update-a-check-run
            run.annotations.extend(output.get("annotations") or [])
        if "actions" in body:
            run.actions = list(body["actions"])

    def _checks_create(self, request: Request, params, body, installation: int) -> Response:
        repo = self._repo_of(params)
        body = body if isinstance(body, dict) else {}
        self._validate_check_body(body, create=True)
        if body["head_sha"] not in repo.commits:
            raise _Refused(
                422, f"No commit found for SHA: {body['head_sha']}", [], self._CHECKS_DOC
            )
        run = CheckRun(
            next(self._ids),
            body["name"],
            body["head_sha"],
            "queued",
            None,
            None,
            None,
            _ts(time.time()),
            None,
        )
        self._apply_check_body(run, body)
        repo.check_runs[run.id] = run
        return JSONResponse(self._check_run_json(request, repo, run), status_code=201)

    def _checks_update(self, request: Request, params, body, installation: int) -> Response:
        repo = self._repo_of(params)
        run = repo.check_runs.get(int(params["check_run_id"]))
        if run is None:
            raise _not_found("https://docs.github.com/rest/checks/runs#update-a-check-run")
        body = body if isinstance(body, dict) else {}
        self._validate_check_body(body, create=False)
        self._apply_check_body(run, body)
        run.updates += 1
        return JSONResponse(self._check_run_json(request, repo, run))

    # ---------------------------------------------------------------- reviews

    _REVIEWS_DOC = "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request"

    def _validate_comment(self, pull: PullRequest, comment: Any) -> DiffHunk:
        """The hunk a review comment lands in; 422 (for the whole review) when none."""
        if not isinstance(comment, dict) or not isinstance(comment.get("path"), str):
            raise _unprocessable(
                ["pull_request_review_thread.path can't be blank"], self._REVIEWS_DOC
            )
        if "position" in comment or comment.get("side", "RIGHT") != "RIGHT":
            raise AssertionError("the fake supports RIGHT-side line comments only")
        if not str(comment.get("body") or "").strip():
            raise _unprocessable(["Body can't be blank"], self._REVIEWS_DOC)
        hunks = pull.hunks(comment["path"])
        if hunks is None:
            raise _unprocessable(["Path could not be resolved"], self._REVIEWS_DOC)
        line = comment.get("line")
        hunk = next((h for h in hunks if isinstance(line, int) and line in h.right_lines), None)
        if hunk is None:
            raise _unprocessable(
                ["pull_request_review_thread.line must be part of the diff"], self._REVIEWS_DOC
            )
        start = comment.get("start_line")
        if start is not None:
            if comment.get("start_side", "RIGHT") != "RIGHT":
                raise AssertionError("the fake supports RIGHT-side line comments only")
            if not isinstance(start, int) or start >= line or start not in hunk.right_lines:
                raise _unprocessable(
                    [
                        "pull_request_review_thread.start_line must be part of the same hunk"
                        " as the line."
                    ],
                    self._REVIEWS_DOC,
                )
        elif "start_side" in comment:
            raise _unprocessable(
                ["pull_request_review_thread.start_line can't be blank"], self._REVIEWS_DOC
            )
        return hunk

    def _reviews_create(self, request: Request, params, body, installation: int) -> Response:
        pull = self._pull_of(params)
        body = body if isinstance(body, dict) else {}
        event = body.get("event")
        if event not in (None, "APPROVE", "REQUEST_CHANGES", "COMMENT"):
            raise _unprocessable([f"event {event!r} is not valid"], self._REVIEWS_DOC)
        commit_id = body.get("commit_id") or pull.head_sha
        if commit_id != pull.head_sha:
            raise _unprocessable(["Commit id is not part of the pull request"], self._REVIEWS_DOC)
        comments = body.get("comments") or []
        if event in ("REQUEST_CHANGES", "COMMENT") and not comments and not body.get("body"):
            raise _unprocessable(["Body can't be blank"], self._REVIEWS_DOC)
        hunks = [self._validate_comment(pull, c) for c in comments]
        review_id = next(self._ids)
        state = {None: "PENDING", "APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
        api = f"{self._api(request)}/repos/{pull.repo.full_name}"
        html = f"{WEB}/{pull.repo.full_name}/pull/{pull.number}"
        review = {
            "id": review_id,
            "node_id": _node_id("PullRequestReview", review_id),
            "user": _user(self.bot_login, 41898282, "Bot"),
            "body": body.get("body") or "",
            "state": state.get(event, "COMMENTED"),
            "html_url": f"{html}#pullrequestreview-{review_id}",
            "pull_request_url": f"{api}/pulls/{pull.number}",
            "_links": {
                "html": {"href": f"{html}#pullrequestreview-{review_id}"},
                "pull_request": {"href": f"{api}/pulls/{pull.number}"},
            },
            "submitted_at": None if event is None else _ts(time.time()),
            "commit_id": commit_id,
            "author_association": "NONE",
        }
        pull.reviews.append(review)
        for comment, hunk in zip(comments, hunks, strict=True):
            pull.comments.append(self._review_comment(api, html, pull, review, comment, hunk))
        return JSONResponse(review)

    def _review_comment(
        self,
        api: str,
        html: str,
        pull: PullRequest,
        review: dict[str, Any],
        comment: dict[str, Any],
        hunk: DiffHunk,
    ) -> dict[str, Any]:
        comment_id = next(self._ids)
        start = comment.get("start_line")
        return {
            "url": f"{api}/pulls/comments/{comment_id}",
            "pull_request_review_id": review["id"],
            "id": comment_id,
            "node_id": _node_id("PullRequestReviewComment", comment_id),
            "diff_hunk": hunk.text_through(comment["line"]),
            "path": comment["path"],
            "commit_id": review["commit_id"],
            "original_commit_id": review["commit_id"],
            "user": review["user"],
            "body": comment["body"],
            "created_at": _ts(time.time()),
            "updated_at": _ts(time.time()),
            "html_url": f"{html}#discussion_r{comment_id}",
            "pull_request_url": f"{api}/pulls/{pull.number}",
            "author_association": "NONE",
            "_links": {
                "self": {"href": f"{api}/pulls/comments/{comment_id}"},
                "html": {"href": f"{html}#discussion_r{comment_id}"},
                "pull_request": {"href": f"{api}/pulls/{pull.number}"},
            },
            "start_line": start,
            "original_start_line": start,
            "start_side": "RIGHT" if start is not None else None,
            "line": comment["line"],
            "original_line": comment["line"],
            "side": "RIGHT",
            "subject_type": "line",
        }

    def _apps_get_authenticated(self, request: Request, params, payload, installation) -> Response:
        # https://docs.github.com/en/rest/apps/apps#get-the-authenticated-app
        slug = self.app_slug
        return JSONResponse(
            {
                "id": self.app_id,
                "slug": slug,
                "node_id": _node_id("Integration", self.app_id),
                "client_id": "Iv1.0123456789abcdef",
                "owner": _user("octo", 583231, "Organization"),
                "name": slug,
                "description": "",
                "external_url": f"{WEB}/apps/{slug}",
                "html_url": f"{WEB}/apps/{slug}",
                "created_at": _ts(_EPOCH.timestamp()),
                "updated_at": _ts(_EPOCH.timestamp()),
                "permissions": {"metadata": "read", "pull_requests": "write"},
                "events": ["pull_request"],
            }
        )

    def _reviews_list(self, request: Request, params, payload, installation: int) -> Response:
        return self._page(request, self._pull_of(params).reviews)

    def _comments_list(self, request: Request, params, payload, installation: int) -> Response:
        return self._page(request, self._pull_of(params).comments)

    # ------------------------------------------------------- issue comments

    def _reactions_create(self, request: Request, params, body, installation: int) -> Response:
        doc = (
            "https://docs.github.com/rest/reactions/reactions#create-reaction-for-an-issue-comment"
        )
        repo = self._repo_of(params)
        comment = repo.issue_comments.get(int(params["comment_id"]))
        if comment is None:
            raise _not_found(doc)
        content = (body or {}).get("content")
        allowed = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
        if content not in allowed:
            raise _Refused(422, "Validation Failed", [f"content {content!r} is not valid"], doc)
        for reaction in comment["reactions"]:
            if reaction["content"] == content and reaction["user"]["login"] == self.bot_login:
                return JSONResponse(reaction, status_code=200)  # already there
        reaction_id = next(self._ids)
        reaction = {
            "id": reaction_id,
            "node_id": _node_id("Reaction", reaction_id),
            "user": _user(self.bot_login, 41898282, "Bot"),
            "content": content,
            "created_at": _ts(time.time()),
        }
        comment["reactions"].append(reaction)
        return JSONResponse(reaction, status_code=201)

    def _issue_comments_create(self, request: Request, params, body, installation: int) -> Response:
        doc = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
        repo = self._repo_of(params)
        number = int(params["number"])
        if number not in repo.pulls:
            raise _not_found(doc)
        text = (body or {}).get("body")
        if not isinstance(text, str) or not text.strip():
            raise _Refused(422, "Validation Failed", ["body can't be blank"], doc)
        comment_id = self.add_issue_comment(repo, number, text, author=self.bot_login)
        api = f"{self._api(request)}/repos/{repo.full_name}"
        return JSONResponse(
            {
                "id": comment_id,
                "node_id": _node_id("IssueComment", comment_id),
                "url": f"{api}/issues/comments/{comment_id}",
                "html_url": f"{WEB}/{repo.full_name}/pull/{number}#issuecomment-{comment_id}",
                "body": text,
                "user": _user(self.bot_login, 41898282, "Bot"),
                "created_at": _ts(time.time()),
                "updated_at": _ts(time.time()),
                "issue_url": f"{api}/issues/{number}",
                "author_association": "NONE",
            },
            status_code=201,
        )

    # ---------------------------------------------------------- app manifests

    def _manifests_convert(self, request: Request, params, payload, installation: None) -> Response:
        doc = "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest"
        with self._lock:
            manifest, expires = self.manifest_codes.pop(params["code"], (None, 0.0))
        if manifest is None or expires <= time.time():
            raise _not_found(doc)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY", as GitHub
            serialization.NoEncryption(),
        ).decode()
        self.app_id, self.public_key = next(self._ids), key.public_key()
        name = manifest.get("name") or "my-app"
        slug = self.app_slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        hook = manifest.get("hook_attributes")
        return JSONResponse(
            {
                "id": self.app_id,
                "slug": slug,
                "node_id": _node_id("Integration", self.app_id),
                "client_id": f"Iv1.{secrets.token_hex(8)}",
                "owner": _user("octocat", 583231),
                "name": name,
                "description": manifest.get("description") or "",
                "external_url": manifest["url"],
                "html_url": f"{WEB}/apps/{slug}",
                "created_at": _ts(time.time()),
                "updated_at": _ts(time.time()),
                "permissions": {"metadata": "read", **manifest.get("default_permissions", {})},
                "events": list(manifest.get("default_events", [])),
                "installations_count": 0,
                "client_secret": secrets.token_hex(20),
                "webhook_secret": secrets.token_hex(20) if hook else None,
                "pem": pem,
            },
            status_code=201,
        )

    # ------------------------------------------------------------------ serve

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run the fake on 127.0.0.1:<free port> in a thread; yields its API base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake GitHub server did not start")
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}{self.prefix}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
