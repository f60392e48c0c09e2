"""Which webhook does what: a pure decision per (event, payload).

Payloads are read leniently (plain dicts, ``.get`` chains): GitHub's published examples
lag behind the live API and strict models reject some of them.  We take the ids, shas
and numbers the job needs and fetch the rest through the API.
https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from bot.docstrings.models import Style
from bot.docstrings.render import markdown

PR_ACTIONS = frozenset({"opened", "reopened", "ready_for_review", "synchronize"})
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
ACTION_IDENTIFIER = "generate"  # the check run's "Generate docstrings" button

HELP = """\
**docgen** writes missing docstrings for the Python functions this PR changes and \
offers them as suggestions you can commit with one click.

| command | does |
| --- | --- |
| `/docgen` | document the changed functions now |
| `/docgen path/or/glob.py …` | only these files (fnmatch globs) |
| `/docgen --style google\\|numpy\\|sphinx\\|plain` | write in this style |
| `/docgen help` | this message |

Only repository owners, members and collaborators can run commands. Settings live in \
`.github/docgen.yml` on the repository's default branch (else in the organization's \
`.github` repository): whatever branch a PR targets, and a PR's own changes to that file \
apply once they are merged."""


@dataclass(frozen=True)
class Options:
    """What a trigger asks of a run."""

    paths: tuple[str, ...] = ()
    style: str | None = None
    force: bool = False  # run even when auto_run is off (command, button, re-run)


@dataclass(frozen=True)
class Run:
    """Enqueue a review of one PR."""

    installation_id: int
    owner: str
    repo: str
    number: int
    head_sha: str | None  # None: the job reads it from the API (comment triggers)
    trigger: str
    options: Options = field(default_factory=Options)
    comment_id: int | None = None  # react 👀 to the command that asked
    check_run_id: int | None = None  # a re-run reuses nothing, but we log which one

    @property
    def key(self) -> str:
        """One job per PR: newer triggers for the same key supersede queued ones."""
        return f"{self.owner}/{self.repo}#{self.number}"


@dataclass(frozen=True)
class Reply:
    """Answer a comment (help text, or the command's error)."""

    installation_id: int
    owner: str
    repo: str
    number: int
    body: str
    comment_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}:reply"


@dataclass(frozen=True)
class Forget:
    """Drop cached credentials of an installation (deleted or suspended)."""

    installation_id: int


@dataclass(frozen=True)
class Ignore:
    """Nothing to do; ``reason`` goes to the log and the 200 answer."""

    reason: str


# How docgen handles one event (not to be confused with models.Decision, a target's state).
Handling = Run | Reply | Forget | Ignore


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else {} (hostile or odd payloads never crash)."""
    return value if isinstance(value, dict) else {}


def _repo(payload: dict[str, Any]) -> tuple[str, str] | None:
    full = _obj(payload.get("repository")).get("full_name")
    if not isinstance(full, str):
        return None
    owner, _, name = full.partition("/")
    return (owner, name) if owner and name else None


def _installation(payload: dict[str, Any]) -> int | None:
    inst = _obj(payload.get("installation"))
    value = inst.get("id")
    return value if isinstance(value, int) else None


def decide(
    event: str,
    payload: dict[str, Any],
    *,
    app_id: int | None = None,
    run_drafts: bool = False,
    skip_forks: bool = False,
    reply_to_strangers: bool = False,
) -> Handling:
    """Map one webhook to what docgen should do about it."""
    if not isinstance(payload, dict):
        return Ignore("payload is not a JSON object")
    if event == "ping":
        return Ignore("pong")
    if event in ("installation", "installation_repositories"):
        action = payload.get("action")
        inst = _installation(payload)
        if event == "installation" and action in ("deleted", "suspend") and inst is not None:
            return Forget(inst)
        return Ignore(f"{event}.{action}: nothing to do")
    if event == "pull_request":
        return _pull_request(payload, run_drafts=run_drafts, skip_forks=skip_forks)
    if event == "issue_comment":
        return _issue_comment(payload, reply_to_strangers=reply_to_strangers)
    if event == "check_run":
        return _check_run(payload, app_id=app_id)
    return Ignore(f"event {event!r} is not handled")


def _pull_request(payload: dict[str, Any], *, run_drafts: bool, skip_forks: bool) -> Handling:
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return Ignore(f"pull_request.{action} is not handled")
    pr = _obj(payload.get("pull_request"))
    repo, inst, number = (
        _repo(payload),
        _installation(payload),
        pr.get("number") or payload.get("number"),
    )
    head_sha = _obj(pr.get("head")).get("sha")
    head_sha = head_sha if isinstance(head_sha, str) else None
    if repo is None or inst is None or not isinstance(number, int) or not head_sha:
        return Ignore("pull_request payload lacks repository, installation, number or head sha")
    if pr.get("state") == "closed":
        return Ignore("pull request is closed")
    if pr.get("draft") and not run_drafts:
        return Ignore("pull request is a draft")
    head_repo = _obj(_obj(pr.get("head")).get("repo")).get("full_name")
    base_repo = _obj(_obj(pr.get("base")).get("repo")).get("full_name")
    if skip_forks and head_repo and base_repo and head_repo != base_repo:
        return Ignore("pull request comes from a fork")
    return Run(inst, repo[0], repo[1], number, head_sha, f"pull_request.{action}")


def parse_command(body: str) -> Options | str | None:
    """``/docgen …`` → Options; "help" for help; an error message string; None if not ours.

    Only the first line counts, and it must start with ``/docgen`` as a word.
    """
    first = (body or "").strip().splitlines()[0] if (body or "").strip() else ""
    if first != "/docgen" and not first.startswith(("/docgen ", "/docgen\t")):
        return None
    try:
        words = shlex.split(first)[1:]
    except ValueError as exc:
        return f"could not read the command: {exc}"
    if words[:1] == ["help"] or words[:1] == ["--help"]:
        return "help"
    paths: list[str] = []
    style: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--style"):
            value = word.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
            if "=" not in word:
                i += 1
            if value not in {s.value for s in Style}:
                return f"unknown style {value!r}: use google, numpy, sphinx or plain"
            style = value
        elif word.startswith("-"):
            return f"unknown option {word!r}"
        else:
            paths.append(word)
        i += 1
    return Options(tuple(paths), style, force=True)


def _issue_comment(payload: dict[str, Any], *, reply_to_strangers: bool) -> Handling:
    if payload.get("action") != "created":
        return Ignore(f"issue_comment.{payload.get('action')} is not handled")
    issue = _obj(payload.get("issue"))
    comment = _obj(payload.get("comment"))
    if not issue.get("pull_request"):
        return Ignore("comment is on an issue, not a pull request")
    body = comment.get("body")
    command = parse_command(body if isinstance(body, str) else "")
    if command is None:
        return Ignore("not a /docgen command")
    user = _obj(comment.get("user"))
    if user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]"):
        return Ignore("comment by a bot")
    repo, inst, number = _repo(payload), _installation(payload), issue.get("number")
    if repo is None or inst is None or not isinstance(number, int):
        return Ignore("issue_comment payload lacks repository, installation or number")
    comment_id = comment.get("id") if isinstance(comment.get("id"), int) else None
    if comment.get("author_association") not in TRUSTED_ASSOCIATIONS:
        if reply_to_strangers:
            return Reply(
                inst,
                repo[0],
                repo[1],
                number,
                "Sorry, only repository owners, members and collaborators can run `/docgen`.",
                comment_id,
            )
        return Ignore(f"/docgen from {comment.get('author_association')!s}: not obeyed")
    if command == "help":
        return Reply(inst, repo[0], repo[1], number, HELP, comment_id)
    if isinstance(command, str):
        # The error quotes the comment's words: shown inert, they ping and link no one.
        body = f"docgen: {markdown.inline_text(command)}.\n\n{HELP}"
        return Reply(inst, repo[0], repo[1], number, body, comment_id)
    return Run(inst, repo[0], repo[1], number, None, "command", command, comment_id)


def _check_run(payload: dict[str, Any], *, app_id: int | None) -> Handling:
    action = payload.get("action")
    if action not in ("rerequested", "requested_action"):
        return Ignore(f"check_run.{action} is not handled")
    run = _obj(payload.get("check_run"))
    owner_app = _obj(run.get("app")).get("id")
    if app_id is not None and owner_app is not None and owner_app != app_id:
        return Ignore("check run belongs to another app")
    if action == "requested_action":
        identifier = _obj(payload.get("requested_action")).get("identifier")
        if identifier != ACTION_IDENTIFIER:
            return Ignore(f"unknown requested action {identifier!r}")
    prs = [p for p in run.get("pull_requests") or [] if isinstance(p, dict)]
    repo, inst = _repo(payload), _installation(payload)
    if not prs or repo is None or inst is None or not isinstance(prs[0].get("number"), int):
        return Ignore("check run is not attached to a pull request of this repository")
    return Run(
        inst,
        repo[0],
        repo[1],
        prs[0]["number"],
        run.get("head_sha"),
        f"check_run.{action}",
        Options(force=True),
        check_run_id=run.get("id"),
    )
