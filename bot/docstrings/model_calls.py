"""Asking the model: plan calls within the budget, send them, learn from the answers.

Each call reserves its worst case first (invariant 3), runs concurrently with the
others under the provider's own limit, and teaches the model's :class:`ModelProfile`
what its answers cost.  An answer cut at ``max_tokens`` gets one more try, alone and
with more room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from bot.docstrings import deadline as deadline_mod
from bot.docstrings import update as update_mod
from bot.docstrings import voice
from bot.docstrings.budget import BudgetExceeded, CallCharge
from bot.docstrings.cache import cache_key
from bot.docstrings.ledger import Ledger
from bot.docstrings.llm.answer import NO_ENTRY
from bot.docstrings.llm.context import context_for
from bot.docstrings.llm.prompt import estimate_prompt_tokens
from bot.docstrings.llm.provider import (
    TRUNCATED,
    GenerationItem,
    GenerationRequest,
    GenerationResult,
    ProviderError,
)
from bot.docstrings.model_profile import MAX_ANSWER_ROOM, ModelProfile
from bot.docstrings.models import Decision, DocParts, Report, Style, Usage
from bot.docstrings.plan import (
    BATCH_ANSWER_OVERHEAD,
    Batch,
    Plan,
    PlanItem,
    completion_reserve,
    plan,
)
from bot.docstrings.run_state import Candidate, Context

log = logging.getLogger(__name__)

MAX_CONCURRENT_CALLS = 4
REPAIR_RESERVE_RATIO = 0.15  # of the budget, held back for the one repair round


# How an outcome's reason starts when its model call failed (``docgen review`` counts them).
MODEL_FAILED = "model call failed"


async def generate_all(
    candidates: Sequence[Candidate],
    ctx: Context,
    ledger: Ledger,
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
    todo: list[Candidate] = []
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
    todo: Sequence[Candidate],
    by_id: dict[str, Candidate],
    ctx: Context,
    ledger: Ledger,
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
            await _skeletons(group, style, ctx)
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


async def _skeletons(group: Sequence[Candidate], style: Style, ctx: Context) -> None:
    """Signature-derived skeletons cost no tokens: nothing to plan or reserve."""
    items = _items(group, ctx)
    request = GenerationRequest(tuple(items.values()), style, ctx.config.language)
    ctx.progress.items_sent(len(items))
    result = await ctx.provider.generate(request)
    ctx.progress.answers_received(len(result.parts))
    for c in group:
        c.parts = result.parts.get(c.target.id)
        c.reason = "" if c.parts else result.errors.get(c.target.id, "no skeleton")


def _items(group: Sequence[Candidate], ctx: Context) -> dict[str, GenerationItem]:
    return {c.target.id: _item(c, ctx) for c in group}


def _item(c: Candidate, ctx: Context) -> GenerationItem:
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


def _ask(c: Candidate) -> update_mod.Ask | None:
    """For a stale docstring docgen can update in place: the entries to ask for."""
    if c.target.decision != Decision.STALE:
        return None
    return update_mod.needed(c.merge_target(), c.file.lines, c.file.style)


def answer_room(c: Candidate, profile: ModelProfile, retry_length: bool) -> int:
    """``max_tokens`` share for one candidate: sized from the item and the model's
    observed answers; after a truncated answer, at least twice what it had."""
    room = profile.answer_room(completion_reserve(c.target))
    if retry_length:
        room = max(room, 2 * c.room)
    return min(MAX_ANSWER_ROOM, room)


def _plan(
    group: Sequence[Candidate],
    style: Style,
    feedback: dict[str, list[str]],
    ctx: Context,
    repair: bool,
    mode: str | None,
    retry_length: bool = False,
) -> tuple[dict[str, GenerationItem], Plan]:
    """The requests' items and their packing into calls within the budget, their
    prompts counted as sent in ``mode`` (None: not known yet, the dearest)."""
    items = _items(group, ctx)
    language = ctx.config.language
    overhead = estimate_prompt_tokens(GenerationRequest((), style, language), ctx.counter, mode)
    plan_items = []
    for c in group:
        deadline_mod.check(ctx.deadline, f"counting the tokens of {c.target.path}")
        plan_items.append(
            PlanItem(
                c.target,
                _item_tokens(ctx, items[c.target.id], style, feedback, overhead, mode),
                answer_room(c, ctx.profile, retry_length),
            )
        )
    packed = plan(
        plan_items,
        ctx.budget,
        overhead_tokens=overhead,
        repair_reserve_ratio=0.0 if repair else REPAIR_RESERVE_RATIO,
        max_batch_items=1 if retry_length else 8,
        profile=ctx.profile,
    )
    return items, packed


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
    batch: Batch, request: GenerationRequest, ctx: Context, mode: str | None
) -> Batch:
    """``batch`` with its prompt counted as the request will be sent.

    The plan counts each item's example docstrings as if it were alone; a request
    shares them (:func:`bot.docstrings.llm.prompt.build_messages`), so the plan's figure is an upper
    bound and the reservation can be the request's own count.  Never more than planned.
    """
    actual = estimate_prompt_tokens(request, ctx.counter, mode)
    if actual >= batch.estimate:
        return batch
    return replace(batch, estimate=actual, prompt_tokens=ctx.profile.prompt_reserve(actual))


def call_tokens(batch: Batch, profile: ModelProfile) -> int:
    """What a call reserves: its plan's figure, or more if answers since the plan
    taught a larger tokenizer ratio (calls run concurrently and learn as they land)."""
    return max(batch.tokens, profile.prompt_reserve(batch.estimate) + batch.max_tokens)


def _charge(batch: Batch, ctx: Context) -> CallCharge:
    """The call's hold on the budget, sized with the learned tokenizer ratio, for the
    first attempt and (with whatever ratio has been learned by then) every retry."""

    def size() -> int:
        return call_tokens(batch, ctx.profile)

    return CallCharge(ctx.budget, size(), resize=size)


async def _call(
    request: GenerationRequest,
    batch: Batch,
    planned_mode: str | None,
    by_id: dict[str, Candidate],
    ctx: Context,
    ledger: Ledger,
    report: Report,
    sem: asyncio.Semaphore,
) -> None:
    ids = [t.id for t in batch.targets]
    group = [by_id[i] for i in ids]
    async with sem:
        # Invariant 3: reserve the worst case (prompt estimate + max_tokens) first;
        # every attempt that gets no answer is charged that much, and a retry is only
        # sent with a fresh reservation (the provider asks ``charge``).
        charge = _charge(batch, ctx)
        try:
            charge.open()
        except BudgetExceeded as exc:
            for c in group:
                if not c.truncated:
                    c.parts = None
                c.reason = _after_truncation(c, str(exc))
            return
        ctx.progress.items_sent(len(ids))
        try:
            result = await ctx.provider.generate(replace(request, spend=charge))
        except ProviderError as exc:
            # What is still held was for an answered refusal: providers do not bill
            # those.  Unanswered attempts were charged in full already.
            charge.settle(0)
            ledger.record_unanswered(charge)
            for c in group:
                c.parts = None
                c.reason = _after_truncation(c, f"{MODEL_FAILED}: {exc.reason}")
            return
    ctx.progress.answers_received(sum(1 for i in ids if i in result.parts))
    charge.settle(result.usage.total)
    ledger.record_unanswered(charge)
    ledger.record(result.model or ctx.provider.model, result.usage)
    if result.mode:
        report.response_mode = result.mode
    truncated = {i for i in ids if result.errors.get(i) == TRUNCATED}
    await _learn(result, request, batch, planned_mode, ctx, bool(truncated))
    _take(result, group, truncated, report)


async def _learn(
    result: GenerationResult,
    request: GenerationRequest,
    batch: Batch,
    planned_mode: str | None,
    ctx: Context,
    truncated: bool,
) -> None:
    """Teach the model's profile what this answer cost."""
    estimate = batch.estimate
    if result.mode and result.mode != planned_mode:
        # Planned before the server's mode was known (for the dearest): the tokenizer
        # ratio is learned against what the mode actually used costs.
        estimate = await asyncio.to_thread(
            estimate_prompt_tokens, request, ctx.counter, result.mode
        )
    ctx.profile = observe(ctx.profile, batch, estimate, result.usage, truncated)


def _take(
    result: GenerationResult, group: Sequence[Candidate], truncated: set[str], report: Report
) -> None:
    """The answer's parts (or why there are none) into the candidates; its notes."""
    for note in result.notes:
        log.info("provider note: %s", note)
        if note not in report.notes:
            report.notes.append(note)
    for c in group:
        i = c.target.id
        c.truncated = i in truncated
        if i in result.parts:
            c.parts, c.reason = result.parts[i], ""
        else:
            c.parts = None
            c.reason = f"no usable answer: {result.errors.get(i, NO_ENTRY)}"


def _after_truncation(c: Candidate, reason: str) -> str:
    # A length retry that could not run keeps the first call's reason in front.
    return f"{c.reason}; not retried with more room: {reason}" if c.truncated else reason


def observe(
    profile: ModelProfile,
    batch: Batch,
    estimate: int,
    usage: Usage,
    truncated: bool,
) -> ModelProfile:
    """The model's profile after one answer to ``batch``, whose prompt docgen counted
    as ``estimate`` tokens (see :class:`ModelProfile`)."""
    static = BATCH_ANSWER_OVERHEAD + sum(
        completion_reserve(t) for t in batch.targets
    )
    return profile.observe(
        estimate=estimate,
        prompt_tokens=usage.prompt_tokens,
        reserve=static,
        completion_tokens=usage.completion_tokens,
        truncated=truncated,
    )
