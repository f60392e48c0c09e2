"""Request bodies docgen sends: review comments, reviews and check runs (pure).

Built by pure functions and tested with ``==``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.docstrings.models import Suggestion
from bot.docstrings.render import checkrun, markdown

CHECK_NAME = "docgen"
# https://docs.github.com/en/rest/checks/runs#update-a-check-run
MAX_ANNOTATIONS_PER_REQUEST = 50
# output.summary and output.text: 65,535 bytes of UTF-8 each (checkrun.SUMMARY_LIMIT says why)
OUTPUT_TEXT_LIMIT = checkrun.SUMMARY_LIMIT
MAX_ACTIONS = 3
_TRUNCATED = "\n\n*… truncated (GitHub's size limit)*"

Conclusion = Literal[
    "success", "neutral", "failure", "action_required", "cancelled", "skipped", "timed_out"
]


@dataclass(frozen=True)
class ReviewComment:
    """One comment of a review, on RIGHT-side lines ``start_line``..``line`` of ``path``."""

    path: str
    body: str
    line: int
    start_line: int | None = None

    @classmethod
    def from_suggestion(cls, suggestion: Suggestion, body: str) -> ReviewComment:
        start = suggestion.start if suggestion.start < suggestion.end else None
        return cls(suggestion.path, body, suggestion.end, start)

    def payload(self) -> dict[str, Any]:
        """The comment as ``POST …/reviews`` takes it.

        ``start_line``/``start_side`` only for a multi-line comment:
        https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request
        """
        out: dict[str, Any] = {
            "path": self.path,
            "body": self.body,
            "line": self.line,
            "side": "RIGHT",
        }
        if self.start_line is not None and self.start_line < self.line:
            out["start_line"] = self.start_line
            out["start_side"] = "RIGHT"
        return out


@dataclass
class ReviewResult:
    """What :meth:`PullRequestAPI.create_review` posted and what GitHub refused (and why)."""

    posted: list[ReviewComment] = field(default_factory=list)
    rejected: list[tuple[ReviewComment, str]] = field(default_factory=list)
    review_ids: list[int] = field(default_factory=list)

    @property
    def review_id(self) -> int | None:
        """The first review posted (more than one only when GitHub refused a batch)."""
        return self.review_ids[0] if self.review_ids else None


@dataclass(frozen=True)
class CheckRunAction:
    """A button on the check run page; clicking it sends ``check_run.requested_action``.

    https://docs.github.com/en/rest/guides/using-the-rest-api-to-interact-with-checks#check-runs-and-requested-actions
    """

    label: str  # at most 20 characters
    description: str  # at most 40
    identifier: str  # at most 20

    def __post_init__(self) -> None:
        for name, limit in (("label", 20), ("description", 40), ("identifier", 20)):
            value = getattr(self, name)
            if not value or len(value) > limit:
                raise ValueError(f"check run action {name} must be 1-{limit} characters")

    def payload(self) -> dict[str, str]:
        return {"label": self.label, "description": self.description, "identifier": self.identifier}


# The identifier is what bot.runtime.events matches in check_run.requested_action.
GENERATE_ACTION = CheckRunAction(
    "Generate docstrings", "Suggest docstrings for this PR", "generate"
)


def _cap(text: str, limit: int = OUTPUT_TEXT_LIMIT) -> str:
    return markdown.cap_bytes(text, limit, _TRUNCATED)


def review_body(count: int) -> str:
    """The text of a review that carries ``count`` suggestion comments."""
    what = "a docstring" if count == 1 else f"{count} docstrings"
    return f"📝 docgen suggests {what}. Commit the suggestions you want to keep."


def review_payload(
    commit_id: str, comments: Sequence[ReviewComment], body: str | None = None
) -> dict[str, Any]:
    """``POST /repos/{owner}/{repo}/pulls/{n}/reviews``: one submitted COMMENT review.

    Always with ``event``: a review created without one stays PENDING, visible only to
    us.  https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request
    """
    return {
        "commit_id": commit_id,
        "event": "COMMENT",
        "body": body if body is not None else review_body(len(comments)),
        "comments": [c.payload() for c in comments],
    }


def check_run_create_payload(
    head_sha: str,
    *,
    external_id: str,
    started_at: str,
    details_url: str | None = None,
    actions: Sequence[CheckRunAction] = (),
) -> dict[str, Any]:
    """``POST /repos/{owner}/{repo}/check-runs``: the ``docgen`` run, in progress.

    https://docs.github.com/en/rest/checks/runs#create-a-check-run
    """
    payload: dict[str, Any] = {
        "name": CHECK_NAME,
        "head_sha": head_sha,
        "status": "in_progress",
        "started_at": started_at,
        "external_id": external_id,
        "output": {
            "title": "docgen is writing docstrings",
            "summary": "Reading the changed files of this pull request…",
        },
    }
    if details_url:
        payload["details_url"] = details_url
    if actions:
        payload["actions"] = _actions(actions)
    return payload


def _actions(actions: Sequence[CheckRunAction]) -> list[dict[str, str]]:
    if len(actions) > MAX_ACTIONS:
        raise ValueError(f"a check run takes at most {MAX_ACTIONS} actions")
    return [a.payload() for a in actions]


def check_run_output(
    title: str,
    summary: str,
    annotations: Sequence[dict[str, Any]] = (),
    text: str | None = None,
) -> dict[str, Any]:
    """A check run's ``output``, with summary and text cut to GitHub's 65,535 bytes.

    ``annotations`` must already be one request's worth (≤ 50).
    """
    if len(annotations) > MAX_ANNOTATIONS_PER_REQUEST:
        raise ValueError(f"at most {MAX_ANNOTATIONS_PER_REQUEST} annotations per request")
    output: dict[str, Any] = {"title": title, "summary": _cap(summary)}
    if text is not None:
        output["text"] = _cap(text)
    if annotations:
        output["annotations"] = list(annotations)
    return output


def check_run_update_payloads(
    *,
    conclusion: Conclusion,
    title: str,
    summary: str,
    annotations: Sequence[dict[str, Any]] = (),
    text: str | None = None,
    completed_at: str,
    details_url: str | None = None,
    actions: Sequence[CheckRunAction] = (),
) -> list[dict[str, Any]]:
    """The ``PATCH /repos/{owner}/{repo}/check-runs/{id}`` bodies that complete a run.

    GitHub takes at most 50 annotations per request and appends those of each update
    (https://docs.github.com/en/rest/checks/runs#update-a-check-run): the first body
    completes the run with the first 50, each further body adds the next 50.
    """
    if conclusion == "action_required" and not details_url:
        raise ValueError("GitHub requires details_url with the action_required conclusion")
    chunks = [
        list(annotations[i : i + MAX_ANNOTATIONS_PER_REQUEST])
        for i in range(0, len(annotations), MAX_ANNOTATIONS_PER_REQUEST)
    ] or [[]]
    first: dict[str, Any] = {
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": completed_at,
        "output": check_run_output(title, summary, chunks[0], text),
    }
    if details_url:
        first["details_url"] = details_url
    if actions:
        first["actions"] = _actions(actions)
    return [first] + [
        {"output": check_run_output(title, summary, chunk, text)} for chunk in chunks[1:]
    ]
