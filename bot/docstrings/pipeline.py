"""The docstring pipeline: changed files in, a report with suggestions out.

``diff → extract → plan → generate → validate → render``, one function per stage over
plain data.  This module only wires them together; the App (``github.fetch_pr``) and
the CLI (``localgit``) feed it :class:`FileChange` values and publish the
:class:`~bot.docstrings.models.Report` it returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bot.docstrings import deadline as deadline_mod
from bot.docstrings import diff as diff_mod
from bot.docstrings import doclayout, edits, proof, validate, voice
from bot.docstrings import extract as extract_mod
from bot.docstrings import style as style_mod
from bot.docstrings import update as update_mod
from bot.docstrings.cache import cache_key
from bot.docstrings.ledger import Ledger
from bot.docstrings.lines import LineMap, python_lines
from bot.docstrings.model_calls import generate_all
from bot.docstrings.models import (
    EXCLUDED_BY_CONFIG,
    Action,
    Coverage,
    Decision,
    DocParts,
    Edit,
    ExtractResult,
    FileChange,
    FileDiff,
    Outcome,
    Report,
    Skip,
    Suggestion,
    Target,
)
from bot.docstrings.run_state import Candidate, Context, PreparedFile

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """The report plus what ``--apply`` writes: path → new file text."""

    report: Report
    new_texts: dict[str, str]
    head_texts: dict[str, str]


def docstring_hash(text: str) -> str:
    """Short content hash of a docstring, used in markers for idempotency."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _skip(target: Target, reason: str) -> Outcome:
    return Outcome(target, Action.SKIPPED, reason)


async def run(changes: Iterable[FileChange], ctx: Context) -> RunResult:
    """Run the whole pipeline over the changed files of one PR."""
    started = time.perf_counter()
    report = Report(
        budget=ctx.budget.limit,
        model=ctx.provider.model,
        provider=ctx.provider.name,
        notes=list(ctx.notes),
    )
    # The CPU-bound stages run in a worker thread: in embedded mode this event loop
    # also answers webhooks, which must not wait seconds behind a big PR's parsing.
    changed = list(changes)
    ctx.progress.start(len(changed))
    files = await asyncio.to_thread(_prepare_all, changed, ctx, report)
    candidates = _candidates(files, ctx, report)

    ledger = Ledger()
    deadline_mod.check(ctx.deadline, "asking the model for docstrings")
    calls_before = await _load_profile(ctx)
    await _generate_and_validate(candidates, ctx, ledger, report)

    new_texts, head_texts = await asyncio.to_thread(_finish, files, candidates, ctx, report)
    if ctx.profile.calls > calls_before:
        await asyncio.to_thread(ctx.cache.put_profile, ctx.provider.model, ctx.profile)
    report.notes.extend(ctx.profile.notes(ctx.provider.model))
    _complete(report, files, ledger, ctx)
    report.elapsed_s = time.perf_counter() - started
    return RunResult(report, new_texts, head_texts)


def _candidates(files: Sequence[PreparedFile], ctx: Context, report: Report) -> list[Candidate]:
    """The definitions that need a docstring (the others become outcomes now), at most
    ``max_functions`` of them."""
    candidates: list[Candidate] = []
    for f in files:
        report.coverage_before += f.result.coverage
        report.skips.extend(f.result.skips)
        for target in f.result.targets:
            outcome = _triage(target, f, ctx)
            if outcome is not None:
                report.outcomes.append(outcome)
            else:
                candidates.append(Candidate(f, target, offer=_offer_only(target, f, ctx)))
    limit = ctx.config.max_functions
    for c in candidates[limit:]:
        report.outcomes.append(_skip(c.target, f"over the limit of {limit} functions per run"))
    return candidates[:limit]


async def _load_profile(ctx: Context) -> int:
    """Merge the stored profile of the model into ``ctx.profile``; its answers so far."""
    if not ctx.provider.offline:
        stored = await asyncio.to_thread(ctx.cache.get_profile, ctx.provider.model)
        if stored is not None:
            ctx.profile = ctx.profile.merge(stored)
    return ctx.profile.calls


async def _generate_and_validate(
    candidates: list[Candidate], ctx: Context, ledger: Ledger, report: Report
) -> None:
    """Ask for every candidate's parts and check them, with one repair round: the
    candidates that failed the checks go back with the errors."""
    await generate_all(candidates, ctx, ledger, report)
    await asyncio.to_thread(_validate_all, candidates, ctx)
    retry = [c for c in candidates if c.parts is not None and c.accepted is None and c.violations]
    if not retry or ctx.provider.offline:
        return
    for c in retry:
        c.first_reason = c.reason
        c.length_retried = False  # one retry with more room per round
    await generate_all(retry, ctx, ledger, report, repair=True)
    await asyncio.to_thread(_validate_all, retry, ctx)
    for c in retry:
        c.reason = repair_reason(c.reason, c.first_reason, c.accepted is not None)


def _complete(report: Report, files: Sequence[PreparedFile], ledger: Ledger, ctx: Context) -> None:
    """The report's totals: git's line numbers, usage, cost, style, coverage, order."""
    maps = {f.change.path: f.line_map for f in files}
    report.outcomes = [
        _in_git_lines(o, maps[o.target.path]) if o.target.path in maps else o
        for o in report.outcomes
    ]
    report.usage = ledger.usage
    report.cost_usd = ledger.cost_usd
    report.notes.extend(ledger.notes)
    report.style = files[0].style if files else (ctx.style_override or ctx.default_style)
    report.coverage_after = report.coverage_before + Coverage(
        sum(1 for o in report.outcomes if o.action == Action.ADDED), 0
    )
    report.outcomes.sort(key=lambda o: (o.target.path, o.target.def_line))
    report.skips.sort(key=lambda s: (s.path, s.line or 0))


def _prepare_all(changes: list[FileChange], ctx: Context, report: Report) -> list[PreparedFile]:
    files = []
    for change in changes:
        deadline_mod.check(ctx.deadline, f"parsing {change.path}")
        f = _prepare(change, ctx, report)
        ctx.progress.file_parsed()
        if f is not None:
            files.append(f)
    return files


def _prepare(change: FileChange, ctx: Context, report: Report) -> PreparedFile | None:
    """Diff and extract one file; anything wrong becomes a skip with a reason."""
    path = change.path
    if not path.endswith(".py"):
        return None
    if not ctx.config.wants(path):
        report.skips.append(Skip(path, EXCLUDED_BY_CONFIG))
        return None
    if change.status == "removed":
        return None  # nothing to document in a deleted file
    try:
        fd = diff_mod.file_diff(path, change.status, change.patch, change.previous_path)
    except diff_mod.PatchError as exc:
        report.skips.append(Skip(path, f"unreadable patch: {exc}"))
        return None
    if not fd.has_patch:
        # GitHub omits the patch of pure renames/copies (nothing to review) and of
        # binary files or diffs too large to show (worth a line in the summary).
        # https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
        if change.status not in ("renamed", "copied", "unchanged"):
            # A local review (bot.docstrings.localgit) names its own reason: it never asked GitHub.
            reason = change.skip_reason or NO_PATCH
            report.skips.append(Skip(path, reason))
        return None
    if not fd.added_lines and not fd.removed_lines:
        return None  # no line changed (a mode change): nothing to document
    if change.head is None:
        report.skips.append(Skip(path, change.skip_reason or "file content unavailable"))
        return None
    result = extract_mod.extract(path, change.head, fd, ctx.config)
    if result.skips and not result.targets and not result.coverage.total:
        report.skips.extend(result.skips)  # the file as a whole was skipped, with why
        return None
    return _prepared(change, change.head, fd, result, ctx)


def _prepared(
    change: FileChange, head: bytes, fd: FileDiff, result: ExtractResult, ctx: Context
) -> PreparedFile:
    """An extracted file with what its docstrings are written to: the repository's
    style, types, mood and wrap width, and its lines as Python counts them."""
    text = head.decode("utf-8-sig") if head.startswith(b"\xef\xbb\xbf") else head.decode("utf-8")
    style = style_mod.detect_for_file(
        result.docstrings,
        ctx.repo_docstrings,
        ctx.style_override or ctx.config.forced_style(),
        ctx.default_style,
    )
    types = style_mod.detect_types_for_file(result.docstrings, ctx.repo_docstrings, style)
    # Python's own line splitting (\n, \r\n, \r): str.splitlines also splits at \f,
    # \x85, U+2028 ..., which would shift every line number after one of them.
    lines = [line.rstrip("\r\n") for line in python_lines(text)]
    mood = voice.detect_mood(result.docstrings, ctx.repo_docstrings)
    # Measured (a second parse of the file) only where a stale docstring is updated.
    stale = any(t.decision == Decision.STALE for t in result.targets)
    width = update_mod.file_width(text) if stale else update_mod.DEFAULT_WIDTH
    return PreparedFile(change, fd, text, lines, result, style, types, LineMap(text), mood, width)


NO_PATCH = "no patch from GitHub (binary file or diff too large to show)"
_LONE_CR = "Python counts two lines there and GitHub one, so no suggestion can replace it"
REMOVED_DOCSTRING = "docstring removed in this PR"


def _triage(target: Target, f: PreparedFile, ctx: Context) -> Outcome | None:
    """Decide, before spending tokens, whether a target gets a docstring at all."""
    config = ctx.config
    if target.decision == Decision.SKIP:
        return _skip(target, target.reason)
    if target.decision == Decision.OK:
        return Outcome(target, Action.UNCHANGED, "documented")
    if target.decision == Decision.STALE and not config.update_stale:
        return _skip(target, f"stale docstring ({target.reason}); update_stale is off")
    region = edits.edit_region(target)
    if isinstance(region, str):
        return _skip(target, region)
    # GitHub counts git's lines (a lone \r is no line break there): bot.docstrings.lines.
    start, end = f.line_map.git(region[0]), f.line_map.git(region[1])
    cr = f.line_map.lone_cr(start, end)
    if cr is not None:
        return _skip(target, f"line {cr} holds a lone carriage return (\\r): {_LONE_CR}")
    # A stale docstring GitHub cannot take is still rewritten, and offered instead.
    offerable = target.decision == Decision.STALE
    if ctx.within_hunks and not offerable and f.diff.hunk_covering(start, end) is None:
        # GitHub only accepts comments on lines inside one hunk of the diff:
        # https://docs.github.com/en/rest/pulls/comments#create-a-review-comment-for-a-pull-request
        where = f"line {start}" if start == end else f"lines {start}-{end}"
        return _skip(target, f"outside the diff: {where} not in the PR's changes")
    return None


_COUNTS = {2: "two", 3: "three", 4: "four"}


def _offer_only(target: Target, f: PreparedFile, ctx: Context) -> str:
    """Why GitHub cannot take ``target``'s suggestion, or "" when it can (or need not).

    A multi-line suggestion must lie inside one hunk of the diff (context lines
    included): https://docs.github.com/en/rest/pulls/comments#create-a-review-comment-for-a-pull-request
    """
    region = edits.edit_region(target)
    if not ctx.within_hunks or isinstance(region, str):
        return ""
    start, end = f.line_map.git(region[0]), f.line_map.git(region[1])  # GitHub's lines
    if f.diff.hunk_covering(start, end) is not None:
        return ""
    span = f"line {start}" if start == end else f"lines {start}–{end}"
    touched = [h for h in f.diff.hunks if any(n in h.lines for n in range(start, end + 1))]
    if len(touched) > 1:
        n = _COUNTS.get(len(touched), f"{len(touched):,}")
        return (
            f"the docstring spans {span} across {n} diff hunks;"
            " GitHub takes a suggestion within one hunk"
        )
    if touched:
        return (
            f"the docstring spans {span}, only partly in the PR's diff;"
            " GitHub takes a suggestion only on lines of one hunk"
        )
    return (
        f"the docstring ({span}) is outside the PR's diff;"
        " GitHub takes a suggestion only on lines of the diff"
    )


def repair_reason(last: str, first: str, accepted: bool) -> str:
    """The reason shown for a definition whose repair round failed: the last problem
    and the first answer's, so that "answer truncated" does not hide what was wrong."""
    if accepted or not first or first == last:
        return last
    first = first.removeprefix("rejected: ")
    return f"{last or 'no docstring produced'} (after a repair round; the first answer: {first})"


def _validate_all(candidates: Sequence[Candidate], ctx: Context) -> None:
    for c in candidates:
        if c.parts is None:
            continue
        deadline_mod.check(ctx.deadline, f"checking the docstrings of {c.target.path}")
        c.violations = []
        c.accepted = None
        c.parts = voice.parts_in_mood(c.parts, c.target, c.file.mood)
        if c.target.decision == Decision.STALE and _update(c):
            continue
        violations = validate.check_parts(
            c.parts, c.target, allow_restated=ctx.provider.offline, mood=c.file.mood
        )
        text = ""
        if not violations:
            text = style_mod.compose(c.parts, c.target, c.file.style, types=c.file.types)
            violations = validate.check_text(text, c.target, c.file.style)
        if violations:
            # The messages, not the codes: a model shown "DG306" copies it into its answer.
            c.violations = [v.message for v in violations]
            c.reason = "rejected: " + "; ".join(v.message for v in violations)
            continue
        try:
            edit = edits.make_edit(
                c.target, text, c.file.lines, edits.file_quote(c.file.text)
            )
        except ValueError as exc:
            c.reason = str(exc)
            continue
        c.text = text
        c.accepted = proof.Accepted(c.target, edit)


def _update(c: Candidate) -> bool:
    """Merge the answer's new entries into the stale docstring's own lines.

    True when that settled the candidate (accepted, or rejected with violations the
    repair round can fix); False when the docstring's structure cannot be located,
    and the whole docstring is regenerated instead (the note says why).
    """
    try:
        target = c.merge_target()
        up = update_mod.update_docstring(
            target, c.file.lines, c.file.style, c.parts, c.file.width, _gone_raises(c)
        )
    except doclayout.MissingText as exc:
        c.violations = [str(exc)]
        c.reason = f"rejected: {exc}"
        return True
    except doclayout.Unlocatable as exc:
        c.update_note = f"regenerated: {exc}"
        return False
    violations = validate.check_updated_text(up.text, target, c.file.style, up.written)
    if violations:
        c.violations = [v.message for v in violations]
        c.reason = "rejected: " + "; ".join(c.violations)
        return True
    c.text, c.update_note = up.text, up.summary
    c.accepted = proof.Accepted(c.target, Edit(up.start, up.end, tuple(up.lines)))
    return True


_RAISE = re.compile(r"\braise\s+([\w.]+)")


def _gone_raises(c: Candidate) -> set[str]:
    """Exceptions whose ``raise`` the PR deleted inside the definition (git's lines)."""
    git = c.file.line_map.git
    start, end = git(c.target.start), git(c.target.end) + 1
    return {
        name
        for hunk in c.file.diff.hunks
        for at, text in hunk.removed
        if start <= at <= end
        for name in _RAISE.findall(text)
    }


def _finish(
    files: Sequence[PreparedFile], candidates: Sequence[Candidate], ctx: Context, report: Report
) -> tuple[dict[str, str], dict[str, str]]:
    """Prove each file's edits together, then turn them into outcomes and suggestions."""
    model = ctx.provider.model
    new_texts: dict[str, str] = {}
    head_texts: dict[str, str] = {}
    by_file: dict[str, list[Candidate]] = {}
    fresh: list[tuple[str, DocParts]] = []  # proven and newly generated: cache them
    for c in candidates:
        by_file.setdefault(c.file.change.path, []).append(c)
    for f in files:
        path = f.change.path
        deadline_mod.check(ctx.deadline, f"proving the suggestions for {path}")
        group = by_file.get(path, [])
        accepted = [c.accepted for c in group if c.accepted is not None]
        new_text, rejected = proof.prove_module(f.text, accepted)
        bad = {id(a): why for a, why in rejected}
        for c in group:
            if c.accepted is not None and id(c.accepted) in bad:
                c.reason = f"rejected: {bad[id(c.accepted)]}"
                c.accepted = None
            if c.accepted is None:
                report.outcomes.append(_skip(c.target, c.reason or "no docstring produced"))
                continue
            if not c.cached:
                fresh.append((cache_key(c.target, f.style, model, ctx.config.language), c.parts))
            report.outcomes.append(_accepted(c, c.accepted.edit, ctx.provider.offline))
        if new_text != f.text:
            new_texts[path] = new_text
            head_texts[path] = f.text
    ctx.cache.put_many(fresh)  # one transaction / round trip per run
    return new_texts, head_texts


def _accepted(c: Candidate, edit: Edit, offline: bool) -> Outcome:
    """The outcome of a proven docstring: a suggestion, or offered in the check run
    when GitHub cannot take it as one."""
    suggestion = _suggestion(c.file.change.path, edit, c.target, c.text)
    if c.offer:
        return Outcome(
            c.target, Action.OFFERED, c.offer, c.text, offline=offline, replacement=suggestion
        )
    action = Action.UPDATED if c.target.decision == Decision.STALE else Action.ADDED
    reason = _reason(c.target, action, c.update_note)
    return Outcome(c.target, action, reason, c.text, suggestion, offline=offline)


def _reason(target: Target, action: Action, note: str = "") -> str:
    if action == Action.UPDATED:
        # The report shows the stale reason beside it (tally.outcome_note).
        return note or target.reason
    return REMOVED_DOCSTRING if target.docstring_removed else ""


def _suggestion(path: str, edit: Edit, target: Target, text: str) -> Suggestion:
    """The suggestion, in Python's line numbers until :func:`_in_git_lines` maps it."""
    return Suggestion(path, edit.start, edit.end, edit.lines, target.id, docstring_hash(text))


def _in_git_lines(outcome: Outcome, lines: LineMap) -> Outcome:
    """The outcome with every line number git's, as GitHub and people count them.

    Inside the pipeline ``ast``'s numbers rule; they differ from git's after a lone
    ``\\r`` (:mod:`bot.docstrings.lines`).  The suggestion's lines were proven placeable there.
    """
    if lines.identity:
        return outcome
    t = outcome.target
    git = lines.git
    target = replace(
        t,
        start=git(t.start),
        def_line=git(t.def_line),
        header_end=git(t.header_end),
        body_start=git(t.body_start),
        end=git(t.end),
        docstring_span=(git(t.docstring_span[0]), git(t.docstring_span[1]))
        if t.docstring_span
        else None,
    )
    s, r = outcome.suggestion, outcome.replacement
    if s is not None:
        s = replace(s, start=git(s.start), end=git(s.end), target_id=target.id)
    if r is not None:
        r = replace(r, start=git(r.start), end=git(r.end), target_id=target.id)
    return replace(outcome, target=target, suggestion=s, replacement=r)
