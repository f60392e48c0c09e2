"""The docstring pipeline: changed files in, a report with suggestions out.

``diff → extract → plan → generate → validate → render``, one function per stage over
plain data.  This module only wires them together; the App (``github.fetch_pr``) and
the CLI (``localgit``) feed it :class:`FileChange` values and publish the
:class:`~bot.models.Report` it returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from bot import budget as budget_mod
from bot import deadline as deadline_mod
from bot import diff as diff_mod
from bot import extract as extract_mod
from bot import style as style_mod
from bot import update as update_mod
from bot import validate, voice
from bot.cache import DocstringCache, cache_key
from bot.config import RepoConfig
from bot.generate import (
    NO_ENTRY,
    TRUNCATED,
    GenerationItem,
    GenerationRequest,
    Provider,
    ProviderError,
    context_for,
    estimate_prompt_tokens,
)
from bot.lines import LineMap
from bot.models import (
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
    Style,
    Suggestion,
    Target,
    Usage,
)
from bot.progress import Progress

log = logging.getLogger(__name__)

MAX_CONCURRENT_CALLS = 4
REPAIR_RESERVE_RATIO = 0.15  # of the budget, held back for the one repair round


# How an outcome's reason starts when its model call failed (``docgen review`` counts them).
MODEL_FAILED = "model call failed"


@dataclass
class Context:
    """What a run needs besides the changes: config, provider, cache and budget."""

    config: RepoConfig
    provider: Provider
    cache: DocstringCache
    counter: budget_mod.TokenCounter
    budget: budget_mod.TokenBudget
    repo_docstrings: Sequence[str] = ()  # sample of the repository's docstrings, for style
    default_style: Style = Style.GOOGLE
    style_override: Style | None = None
    notes: list[str] = field(default_factory=list)
    # What the model's answers taught about its token counts; run() merges the stored
    # one in and stores the result (issue 9, items 4 and 7).
    profile: budget_mod.ModelProfile = field(default_factory=budget_mod.ModelProfile)
    # GitHub takes a suggestion only on lines inside one hunk of the PR's diff.  The App
    # keeps that rule; the local CLI (`docgen review`, `--apply`) is not bound by it.
    within_hunks: bool = True
    # The job's time limit: the stages that run in threads check it between files, so
    # a run past it stops (DeadlineExceeded) instead of parsing on after the job ended.
    deadline: deadline_mod.Deadline | None = None
    # Told of files parsed, items sent and answers received (a terminal line locally).
    progress: Progress = field(default_factory=Progress)


@dataclass
class _File:
    change: FileChange
    diff: FileDiff
    text: str
    lines: list[str]
    result: ExtractResult
    style: Style
    types: bool = False  # write annotations into the docstring (x (int): ...)
    line_map: LineMap = field(default_factory=lambda: LineMap(""))  # Python ↔ git lines
    mood: str = voice.IMPERATIVE  # "Return …" or "Returns …", as the repository writes
    width: int = update_mod.DEFAULT_WIDTH  # the column the file wraps its docstrings at


@dataclass
class _Candidate:
    file: _File
    target: Target
    parts: DocParts | None = None
    cached: bool = False
    violations: list[str] = field(default_factory=list)  # in words, fed back to the model
    first_reason: str = ""  # why the first answer failed, when a repair round followed
    truncated: bool = False  # the last answer stopped at max_tokens
    length_retried: bool = False
    room: int = 0  # the max_tokens share of its last call
    accepted: validate.Accepted | None = None
    text: str = ""
    reason: str = ""
    offer: str = ""  # why GitHub cannot take it as a suggestion: offered instead
    # A stale docstring: what its update changed ("updated: added parameter x"), or
    # why it was regenerated instead.
    update_note: str = ""


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

    candidates: list[_Candidate] = []
    for f in files:
        report.coverage_before += f.result.coverage
        report.skips.extend(f.result.skips)
        for target in f.result.targets:
            outcome = _triage(target, f, ctx)
            if outcome is not None:
                report.outcomes.append(outcome)
            else:
                candidates.append(_Candidate(f, target, offer=_offer_only(target, f, ctx)))

    if len(candidates) > ctx.config.max_functions:
        over = candidates[ctx.config.max_functions :]
        candidates = candidates[: ctx.config.max_functions]
        for c in over:
            report.outcomes.append(
                _skip(c.target, f"over the limit of {ctx.config.max_functions} functions per run")
            )

    ledger = budget_mod.Ledger()
    deadline_mod.check(ctx.deadline, "asking the model for docstrings")
    if not ctx.provider.offline:
        stored = await asyncio.to_thread(ctx.cache.get_profile, ctx.provider.model)
        if stored is not None:
            ctx.profile = ctx.profile.merge(stored)
    calls_before = ctx.profile.calls
    await _generate_all(candidates, ctx, ledger, report)
    await asyncio.to_thread(_validate_all, candidates, ctx)
    # One repair round: candidates that failed the checks go back with the errors.
    retry = [c for c in candidates if c.parts is not None and c.accepted is None and c.violations]
    if retry and not ctx.provider.offline:
        for c in retry:
            c.first_reason = c.reason
            c.length_retried = False  # one retry with more room per round
        await _generate_all(retry, ctx, ledger, report, repair=True)
        await asyncio.to_thread(_validate_all, retry, ctx)
        for c in retry:
            c.reason = repair_reason(c.reason, c.first_reason, c.accepted is not None)

    new_texts, head_texts = await asyncio.to_thread(_finish, files, candidates, ctx, report)
    if ctx.profile.calls > calls_before:
        await asyncio.to_thread(ctx.cache.put_profile, ctx.provider.model, ctx.profile)
    report.notes.extend(ctx.profile.notes(ctx.provider.model))
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
    report.elapsed_s = time.perf_counter() - started
    return RunResult(report, new_texts, head_texts)


def _prepare_all(changes: list[FileChange], ctx: Context, report: Report) -> list[_File]:
    files = []
    for change in changes:
        deadline_mod.check(ctx.deadline, f"parsing {change.path}")
        f = _prepare(change, ctx, report)
        ctx.progress.file_parsed()
        if f is not None:
            files.append(f)
    return files


def _prepare(change: FileChange, ctx: Context, report: Report) -> _File | None:
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
            # A local review (bot.localgit) names its own reason: it never asked GitHub.
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
    text = (
        change.head.decode("utf-8-sig")
        if change.head.startswith(b"\xef\xbb\xbf")
        else change.head.decode("utf-8")
    )
    style = style_mod.detect_for_file(
        result.docstrings,
        ctx.repo_docstrings,
        ctx.style_override or ctx.config.forced_style(),
        ctx.default_style,
    )
    types = style_mod.detect_types_for_file(result.docstrings, ctx.repo_docstrings, style)
    # Python's own line splitting (\n, \r\n, \r): str.splitlines also splits at \f,
    # \x85, U+2028 ..., which would shift every line number after one of them.
    lines = [line.rstrip("\r\n") for line in validate.split_lines(text)]
    mood = voice.detect_mood(result.docstrings, ctx.repo_docstrings)
    # Measured (a second parse of the file) only where a stale docstring is updated.
    stale = any(t.decision == Decision.STALE for t in result.targets)
    width = update_mod.file_width(text) if stale else update_mod.DEFAULT_WIDTH
    return _File(change, fd, text, lines, result, style, types, LineMap(text), mood, width)


NO_PATCH = "no patch from GitHub (binary file or diff too large to show)"
_LONE_CR = "Python counts two lines there and GitHub one, so no suggestion can replace it"
REMOVED_DOCSTRING = "docstring removed in this PR"


def _triage(target: Target, f: _File, ctx: Context) -> Outcome | None:
    """Decide, before spending tokens, whether a target gets a docstring at all."""
    config = ctx.config
    if target.decision == Decision.SKIP:
        return _skip(target, target.reason)
    if target.decision == Decision.OK:
        return Outcome(target, Action.UNCHANGED, "documented")
    if target.decision == Decision.STALE and not config.update_stale:
        return _skip(target, f"stale docstring ({target.reason}); update_stale is off")
    region = validate.edit_region(target)
    if isinstance(region, str):
        return _skip(target, region)
    # GitHub counts git's lines (a lone \r is no line break there): bot.lines.
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


def _offer_only(target: Target, f: _File, ctx: Context) -> str:
    """Why GitHub cannot take ``target``'s suggestion, or "" when it can (or need not).

    A multi-line suggestion must lie inside one hunk of the diff (context lines
    included): https://docs.github.com/en/rest/pulls/comments#create-a-review-comment-for-a-pull-request
    """
    region = validate.edit_region(target)
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


async def _generate_all(
    candidates: Sequence[_Candidate],
    ctx: Context,
    ledger: budget_mod.Ledger,
    report: Report,
    *,
    repair: bool = False,
) -> None:
    """Fill ``parts`` from the cache or the provider, within the token budget.

    The first round holds back part of the budget for the repair round; the repair
    round (``repair=True``) may use it.  Calls run concurrently, each with its own
    reservation, so the budget holds whatever order they finish in.
    """
    model = ctx.provider.model
    language = ctx.config.language
    todo: list[_Candidate] = []
    keys: dict[int, str] = {}
    found: dict[str, DocParts] = {}
    if not repair:  # a repair round regenerates what was rejected: no cache
        keys = {id(c): cache_key(c.target, c.file.style, model, language) for c in candidates}
        # One read per round, off the event loop (hashing 200 sources and a SQLite read).
        found = await asyncio.to_thread(ctx.cache.get_many, list(keys.values()))
    for c in candidates:
        hit = found.get(keys[id(c)]) if keys else None
        if hit is not None:
            c.parts, c.cached = hit, True
            report.cache_hits += 1
            continue
        todo.append(c)
    if not todo:
        return

    by_id = {c.target.id: c for c in todo}
    # The provider's own (adaptive) limit decides what is on the wire; this one only
    # keeps more calls than it could ever run from holding reservations.
    sem = asyncio.Semaphore(getattr(ctx.provider, "concurrency", MAX_CONCURRENT_CALLS))
    await _send(todo, by_id, ctx, ledger, report, sem, repair=repair)
    # Item 7 of issue 9: an answer cut at max_tokens gets one more try, alone and with
    # more room, if the budget allows (never the repair round's hold-back).
    cut = [c for c in todo if c.truncated and not c.length_retried]
    if cut and not ctx.provider.offline:
        for c in cut:
            c.length_retried = True
        await _send(cut, by_id, ctx, ledger, report, sem, repair=repair, retry_length=True)


async def _send(
    todo: Sequence[_Candidate],
    by_id: dict[str, _Candidate],
    ctx: Context,
    ledger: budget_mod.Ledger,
    report: Report,
    sem: asyncio.Semaphore,
    *,
    repair: bool,
    retry_length: bool = False,
) -> None:
    """Plan ``todo`` per style and run the calls concurrently."""
    language = ctx.config.language
    calls = []
    # One request speaks one convention: plan per style.
    for style in sorted({c.file.style for c in todo}):
        group = [c for c in todo if c.file.style == style]
        feedback = {c.target.id: list(c.violations) for c in group} if repair else {}
        if ctx.provider.offline:
            items = _items(group, ctx)
            # Signature-derived skeletons cost no tokens: nothing to plan or reserve.
            request = GenerationRequest(tuple(items.values()), style, language)
            ctx.progress.items_sent(len(items))
            result = await ctx.provider.generate(request)
            ctx.progress.answers_received(len(result.parts))
            for c in group:
                c.parts = result.parts.get(c.target.id)
                c.reason = "" if c.parts else result.errors.get(c.target.id, "no skeleton")
            continue
        # Context and token counts for a big PR are 100s of ms of CPU: in a thread,
        # so the event loop (webhooks, other jobs) keeps running.  The budget is only
        # read here; reservations happen in _call, on the loop.
        # The response mode changes what a request costs; unknown (first call) → the largest.
        mode = getattr(ctx.provider, "known_mode", None)
        items, plan = await asyncio.to_thread(
            _plan, group, style, feedback, ctx, repair, mode, retry_length
        )
        for target, reason in plan.deferred:
            c = by_id[target.id]
            if retry_length:  # keep what happened, say why there was no second try
                c.reason = f"{c.reason}; not retried with more room: {reason}"
                continue
            c.parts, c.reason = None, reason
        for batch in plan.batches:
            for item in batch.items:
                by_id[item.target.id].room = item.completion_tokens
            request = GenerationRequest(
                tuple(items[t.id] for t in batch.targets),
                style,
                language,
                batch.max_tokens,
                {t.id: feedback[t.id] for t in batch.targets if t.id in feedback},
            )
            batch = _as_sent(batch, request, ctx, mode)
            calls.append(_call(request, batch, mode, by_id, ctx, ledger, report, sem))
    deadline_mod.check(ctx.deadline, "asking the model for docstrings")
    await asyncio.gather(*calls)


def _items(group: Sequence[_Candidate], ctx: Context) -> dict[str, GenerationItem]:
    return {c.target.id: _item(c, ctx) for c in group}


def _item(c: _Candidate, ctx: Context) -> GenerationItem:
    """What the model is told about one candidate: its context and the repository's voice
    (the examples are part of the prompt, so the plan counts them like the source).
    Offline skeletons need neither context nor examples: no repository scan for them.
    A stale docstring updated in place is shown instead of examples: the model writes
    only its missing entries, in the voice the docstring itself shows."""
    if ctx.provider.offline:
        return GenerationItem(c.target, mood=c.file.mood)
    ask = _ask(c)
    examples = () if ask else voice.examples_for(c.target, c.file.text, ctx.repo_docstrings)
    return GenerationItem(c.target, context_for(c.target, c.file.text), examples, c.file.mood, ask)


def _ask(c: _Candidate) -> update_mod.Ask | None:
    """For a stale docstring docgen can update in place: the entries to ask for."""
    if c.target.decision != Decision.STALE:
        return None
    return update_mod.needed(_merge_target(c), c.file.lines, c.file.style)


def _merge_target(c: _Candidate) -> Target:
    """What an update merges against: a class's docstring documents its __init__'s
    parameters (the class's own Target has none), when the PR touched __init__."""
    if c.target.kind != "class":
        return c.target
    init = f"{c.target.qualname}.__init__"
    found = [t for t in c.file.result.targets if t.qualname == init]
    return replace(c.target, params=found[-1].documentable_params) if found else c.target


def answer_room(c: _Candidate, profile: budget_mod.ModelProfile, retry_length: bool) -> int:
    """``max_tokens`` share for one candidate: sized from the item and the model's
    observed answers; after a truncated answer, at least twice what it had."""
    room = profile.answer_room(budget_mod.completion_reserve(c.target))
    if retry_length:
        room = max(room, 2 * c.room)
    return min(budget_mod.MAX_ANSWER_ROOM, room)


def _plan(
    group: Sequence[_Candidate],
    style: Style,
    feedback: dict[str, list[str]],
    ctx: Context,
    repair: bool,
    mode: str | None,
    retry_length: bool = False,
) -> tuple[dict[str, GenerationItem], budget_mod.Plan]:
    """The requests' items and their packing into calls within the budget, their
    prompts counted as sent in ``mode`` (None: not known yet, the dearest)."""
    items = _items(group, ctx)
    language = ctx.config.language
    overhead = estimate_prompt_tokens(GenerationRequest((), style, language), ctx.counter, mode)
    plan_items = []
    for c in group:
        deadline_mod.check(ctx.deadline, f"counting the tokens of {c.target.path}")
        plan_items.append(
            budget_mod.PlanItem(
                c.target,
                _item_tokens(ctx, items[c.target.id], style, feedback, overhead, mode),
                answer_room(c, ctx.profile, retry_length),
            )
        )
    plan = budget_mod.plan(
        plan_items,
        ctx.budget,
        overhead_tokens=overhead,
        repair_reserve_ratio=0.0 if repair else REPAIR_RESERVE_RATIO,
        max_batch_items=1 if retry_length else 8,
        profile=ctx.profile,
    )
    return items, plan


def _item_tokens(
    ctx: Context,
    item: GenerationItem,
    style: Style,
    feedback: dict[str, list[str]],
    overhead: int,
    mode: str | None,
) -> int:
    """One item's share of a request's prompt: a one-item request minus the overhead."""
    own = {item.target.id: feedback[item.target.id]} if item.target.id in feedback else {}
    request = GenerationRequest((item,), style, ctx.config.language, 0, own)
    return max(0, estimate_prompt_tokens(request, ctx.counter, mode) - overhead)


def _as_sent(
    batch: budget_mod.Batch, request: GenerationRequest, ctx: Context, mode: str | None
) -> budget_mod.Batch:
    """``batch`` with its prompt counted as the request will be sent.

    The plan counts each item's example docstrings as if it were alone; a request
    shares them (:func:`bot.generate.build_messages`), so the plan's figure is an upper
    bound and the reservation can be the request's own count.  Never more than planned.
    """
    actual = estimate_prompt_tokens(request, ctx.counter, mode)
    if actual >= batch.estimate:
        return batch
    return replace(batch, estimate=actual, prompt_tokens=ctx.profile.prompt_reserve(actual))


def call_tokens(batch: budget_mod.Batch, profile: budget_mod.ModelProfile) -> int:
    """What a call reserves: its plan's figure, or more if answers since the plan
    taught a larger tokenizer ratio (calls run concurrently and learn as they land)."""
    return max(batch.tokens, profile.prompt_reserve(batch.estimate) + batch.max_tokens)


def _charge(batch: budget_mod.Batch, ctx: Context) -> budget_mod.CallCharge:
    """The call's hold on the budget, sized with the learned tokenizer ratio, for the
    first attempt and (with whatever ratio has been learned by then) every retry."""

    def size() -> int:
        return call_tokens(batch, ctx.profile)

    return budget_mod.CallCharge(ctx.budget, size(), resize=size)


async def _call(
    request: GenerationRequest,
    batch: budget_mod.Batch,
    planned_mode: str | None,
    by_id: dict[str, _Candidate],
    ctx: Context,
    ledger: budget_mod.Ledger,
    report: Report,
    sem: asyncio.Semaphore,
) -> None:
    ids = [t.id for t in batch.targets]
    async with sem:
        # Invariant 3: reserve the worst case (prompt estimate + max_tokens) first;
        # every attempt that gets no answer is charged that much, and a retry is only
        # sent with a fresh reservation (the provider asks ``charge``).
        charge = _charge(batch, ctx)
        try:
            charge.open()
        except budget_mod.BudgetExceeded as exc:
            for i in ids:
                if not by_id[i].truncated:
                    by_id[i].parts = None
                by_id[i].reason = _after_truncation(by_id[i], str(exc))
            return
        ctx.progress.items_sent(len(ids))
        try:
            result = await ctx.provider.generate(replace(request, spend=charge))
        except ProviderError as exc:
            # What is still held was for an answered refusal: providers do not bill
            # those.  Unanswered attempts were charged in full already.
            charge.settle(0)
            ledger.record_unanswered(charge)
            for i in ids:
                by_id[i].parts = None
                by_id[i].reason = _after_truncation(by_id[i], f"{MODEL_FAILED}: {exc.reason}")
            return
    ctx.progress.answers_received(sum(1 for i in ids if i in result.parts))
    charge.settle(result.usage.total)
    ledger.record_unanswered(charge)
    ledger.record(result.model or ctx.provider.model, result.usage)
    if result.mode:
        report.response_mode = result.mode
    truncated = [i for i in ids if result.errors.get(i) == TRUNCATED]
    estimate = batch.estimate
    if result.mode and result.mode != planned_mode:
        # Planned before the server's mode was known (for the dearest): the tokenizer
        # ratio is learned against what the mode actually used costs.
        estimate = await asyncio.to_thread(
            estimate_prompt_tokens, request, ctx.counter, result.mode
        )
    ctx.profile = observe(ctx.profile, batch, estimate, result.usage, bool(truncated))
    for note in result.notes:
        log.info("provider note: %s", note)
        if note not in report.notes:
            report.notes.append(note)
    for i in ids:
        c = by_id[i]
        c.truncated = i in truncated
        if i in result.parts:
            c.parts, c.reason = result.parts[i], ""
        else:
            c.parts = None
            c.reason = f"no usable answer: {result.errors.get(i, NO_ENTRY)}"


def _after_truncation(c: _Candidate, reason: str) -> str:
    # A length retry that could not run keeps the first call's reason in front.
    return f"{c.reason}; not retried with more room: {reason}" if c.truncated else reason


def observe(
    profile: budget_mod.ModelProfile,
    batch: budget_mod.Batch,
    estimate: int,
    usage: Usage,
    truncated: bool,
) -> budget_mod.ModelProfile:
    """The model's profile after one answer to ``batch``, whose prompt docgen counted
    as ``estimate`` tokens (see :class:`ModelProfile`)."""
    static = budget_mod.BATCH_ANSWER_OVERHEAD + sum(
        budget_mod.completion_reserve(t) for t in batch.targets
    )
    return profile.observe(
        estimate=estimate,
        prompt_tokens=usage.prompt_tokens,
        reserve=static,
        completion_tokens=usage.completion_tokens,
        truncated=truncated,
    )


def repair_reason(last: str, first: str, accepted: bool) -> str:
    """The reason shown for a definition whose repair round failed: the last problem
    and the first answer's, so that "answer truncated" does not hide what was wrong."""
    if accepted or not first or first == last:
        return last
    first = first.removeprefix("rejected: ")
    return f"{last or 'no docstring produced'} (after a repair round; the first answer: {first})"


def _validate_all(candidates: Sequence[_Candidate], ctx: Context) -> None:
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
            edit = validate.make_edit(
                c.target, text, c.file.lines, validate.file_quote(c.file.text)
            )
        except ValueError as exc:
            c.reason = str(exc)
            continue
        c.text = text
        c.accepted = validate.Accepted(c.target, edit)


def _update(c: _Candidate) -> bool:
    """Merge the answer's new entries into the stale docstring's own lines.

    True when that settled the candidate (accepted, or rejected with violations the
    repair round can fix); False when the docstring's structure cannot be located,
    and the whole docstring is regenerated instead (the note says why).
    """
    try:
        target = _merge_target(c)
        up = update_mod.update_docstring(
            target, c.file.lines, c.file.style, c.parts, c.file.width, _gone_raises(c)
        )
    except update_mod.MissingText as exc:
        c.violations = [str(exc)]
        c.reason = f"rejected: {exc}"
        return True
    except update_mod.Unlocatable as exc:
        c.update_note = f"regenerated: {exc}"
        return False
    violations = validate.check_updated_text(up.text, target, c.file.style, up.written)
    if violations:
        c.violations = [v.message for v in violations]
        c.reason = "rejected: " + "; ".join(c.violations)
        return True
    c.text, c.update_note = up.text, up.summary
    c.accepted = validate.Accepted(c.target, Edit(up.start, up.end, tuple(up.lines)))
    return True


_RAISE = re.compile(r"\braise\s+([\w.]+)")


def _gone_raises(c: _Candidate) -> set[str]:
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
    files: Sequence[_File], candidates: Sequence[_Candidate], ctx: Context, report: Report
) -> tuple[dict[str, str], dict[str, str]]:
    """Prove each file's edits together, then turn them into outcomes and suggestions."""
    model = ctx.provider.model
    new_texts: dict[str, str] = {}
    head_texts: dict[str, str] = {}
    by_file: dict[str, list[_Candidate]] = {}
    fresh: list[tuple[str, DocParts]] = []  # proven and newly generated: cache them
    for c in candidates:
        by_file.setdefault(c.file.change.path, []).append(c)
    for f in files:
        path = f.change.path
        deadline_mod.check(ctx.deadline, f"proving the suggestions for {path}")
        group = by_file.get(path, [])
        accepted = [c.accepted for c in group if c.accepted is not None]
        new_text, rejected = validate.prove_module(f.text, accepted)
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
            action = Action.UPDATED if c.target.decision == Decision.STALE else Action.ADDED
            suggestion = _suggestion(path, c.accepted.edit, c.target, c.text)
            if c.offer:  # proven, but GitHub cannot take it: offered in the check run
                outcome = Outcome(
                    c.target,
                    Action.OFFERED,
                    c.offer,
                    c.text,
                    offline=ctx.provider.offline,
                    replacement=suggestion,
                )
            else:
                outcome = Outcome(
                    c.target,
                    action,
                    _reason(c.target, action, c.update_note),
                    c.text,
                    suggestion,
                    offline=ctx.provider.offline,
                )
            report.outcomes.append(outcome)
        if new_text != f.text:
            new_texts[path] = new_text
            head_texts[path] = f.text
    ctx.cache.put_many(fresh)  # one transaction / round trip per run
    return new_texts, head_texts


def _reason(target: Target, action: Action, note: str = "") -> str:
    if action == Action.UPDATED:
        # The report shows the stale reason beside it (render._note).
        return note or target.reason
    return REMOVED_DOCSTRING if target.docstring_removed else ""


def _suggestion(path: str, edit: Edit, target: Target, text: str) -> Suggestion:
    """The suggestion, in Python's line numbers until :func:`_in_git_lines` maps it."""
    return Suggestion(path, edit.start, edit.end, edit.lines, target.id, docstring_hash(text))


def _in_git_lines(outcome: Outcome, lines: LineMap) -> Outcome:
    """The outcome with every line number git's, as GitHub and people count them.

    Inside the pipeline ``ast``'s numbers rule; they differ from git's after a lone
    ``\\r`` (:mod:`bot.lines`).  The suggestion's lines were proven placeable there.
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
