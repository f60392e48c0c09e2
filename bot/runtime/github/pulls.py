"""GitHub's answers about a pull request, read into values (pure).

Responses are read as plain JSON for the few fields we need rather than through
githubkit's full models, which older GHES releases do not always satisfy; a malformed
answer becomes a :class:`~bot.runtime.github.errors.GitHubError`, never a KeyError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from githubkit.response import Response

from bot.docstrings.models import FileChange
from bot.runtime.github.errors import GitHubError


@dataclass(frozen=True)
class PullInfo:
    """What a run needs to know about a pull request."""

    number: int
    state: str  # "open" | "closed"
    draft: bool
    head_sha: str
    base_sha: str
    base_ref: str
    head_ref: str
    head_repo_full_name: str | None  # None when the fork was deleted
    base_repo_full_name: str
    author_login: str
    title: str
    changed_files: int = 0

    @property
    def is_fork(self) -> bool:
        return self.head_repo_full_name != self.base_repo_full_name


@dataclass(frozen=True)
class FileEntry:
    """One entry of ``GET /repos/{owner}/{repo}/pulls/{n}/files``."""

    filename: str
    status: str
    patch: str | None  # None for binary files and diffs too large to show
    previous_filename: str | None
    sha: str | None  # blob sha of the head version
    additions: int = 0
    deletions: int = 0


@dataclass(frozen=True)
class PullChanges:
    """A PR's changed files with head contents, ready for :func:`bot.docstrings.pipeline.run`."""

    pull: PullInfo
    changes: list[FileChange]
    notes: list[str] = field(default_factory=list)


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def is_own_comment(comment: dict[str, Any], app_login: str) -> bool:
    """Whether a review comment was written by the App (its bot user ``app_login``).

    A review comment names its author in ``user`` (``login``, ``type``); an App's bot
    user is ``<slug>[bot]`` of type ``Bot``, a login no person can take.
    https://docs.github.com/en/rest/pulls/comments#list-review-comments-on-a-pull-request
    """
    user = as_object(comment.get("user"))
    return user.get("type") == "Bot" and str(user.get("login") or "").lower() == app_login.lower()


def pull_info(data: dict[str, Any]) -> PullInfo:
    """``GET /repos/{owner}/{repo}/pulls/{n}``'s answer (or a webhook's ``pull_request``)."""
    head, base = as_object(data.get("head")), as_object(data.get("base"))
    return PullInfo(
        number=int(data["number"]),
        state=str(data.get("state", "open")),
        draft=bool(data.get("draft", False)),
        head_sha=str(head["sha"]),
        base_sha=str(base["sha"]),
        base_ref=str(base.get("ref", "")),
        head_ref=str(head.get("ref", "")),
        head_repo_full_name=as_object(head.get("repo")).get("full_name"),
        base_repo_full_name=str(as_object(base.get("repo")).get("full_name", "")),
        author_login=str(as_object(data.get("user")).get("login", "")),
        title=str(data.get("title", "")),
        changed_files=int(data.get("changed_files") or 0),
    )


def file_entry(data: dict[str, Any]) -> FileEntry:
    """One item of ``GET …/pulls/{n}/files``."""
    return FileEntry(
        filename=str(data["filename"]),
        status=str(data.get("status", "modified")),
        patch=data.get("patch"),
        previous_filename=data.get("previous_filename"),
        sha=data.get("sha"),
        additions=int(data.get("additions") or 0),
        deletions=int(data.get("deletions") or 0),
    )


def object_id(data: dict[str, Any]) -> int:
    """The ``id`` of what a POST created (a check run, a review, a comment)."""
    return int(data["id"])


_T = TypeVar("_T")


def parsed(parse: Callable[[dict[str, Any]], _T], source: Any, route: str) -> _T:
    """``parse`` applied to a response's JSON object; a malformed answer is a GitHubError."""
    data = source.json() if isinstance(source, Response) else source
    try:
        return parse(as_object(data))
    except (KeyError, TypeError, ValueError):
        raise GitHubError(f"{route}: unexpected answer from GitHub", route=route) from None


def decode_content(content: str, encoding: str | None) -> bytes | None:
    """A contents or blob answer's bytes; None for an encoding we cannot read ("none")."""
    if encoding == "base64":
        try:
            return base64.b64decode(content)  # wrapped at 60 columns: newlines are skipped
        except binascii.Error:
            return None
    if encoding in ("utf-8", "utf8"):
        return content.encode("utf-8")
    return None
