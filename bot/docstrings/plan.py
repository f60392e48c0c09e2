"""Packing definitions into model calls that fit what is left of the budget."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.docstrings.budget import TokenBudget
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import Target

COMPLETION_FLOOR = 120
COMPLETION_CEILING = 600  # from the item alone; observed answers may widen it


def completion_reserve(target: Target) -> int:
    """``max_tokens`` to reserve for one definition's answer, from the item alone.

    The JSON answer costs about 80 tokens of framing (keys, id, summary) plus ~40 per
    parameter and ~30 per returns/yields/raises entry; a longer definition earns a
    longer description (one token per two source lines, up to 80).  At least 120, at
    most 600.  :meth:`ModelProfile.answer_room` widens it for a verbose model.
    """
    n = 80 + 40 * len(target.documentable_params)
    if target.kind != "class":
        n += 30 * (bool(target.returns_value) + bool(target.yields) + len(target.raises))
    n += min(80, max(0, target.end - target.start + 1) // 2)
    return min(COMPLETION_CEILING, max(COMPLETION_FLOOR, n))


@dataclass(frozen=True)
class PlanItem:
    """One definition to generate for, with its token estimates (from the caller)."""

    target: Target
    prompt_tokens: int  # the item's share of the prompt, without the request overhead
    completion_tokens: int  # its share of max_tokens (see completion_reserve)


BATCH_ANSWER_OVERHEAD = 16  # the {"docstrings": [...]} wrapper around the items


@dataclass(frozen=True)
class Batch:
    """One provider call: its items, prompt estimate (with margin) and ``max_tokens``."""

    items: tuple[PlanItem, ...]
    prompt_tokens: int  # with_margin(ratio * (overhead + sum of the items' prompt tokens))
    max_tokens: int  # sum of the items' completion reservations + the answer wrapper
    estimate: int = 0  # overhead + the items' prompt tokens: docgen's own count, no margin

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(i.target for i in self.items)

    @property
    def tokens(self) -> int:
        """What the pipeline reserves for this call (before the budget's slack)."""
        return self.prompt_tokens + self.max_tokens


@dataclass(frozen=True)
class Plan:
    """Batches to send, and definitions deferred with the reason shown to the user."""

    batches: tuple[Batch, ...]
    deferred: tuple[tuple[Target, str], ...]
    held_back: int = 0  # tokens kept for the repair round

    @property
    def tokens(self) -> int:
        """Worst-case tokens of all batches (the budget's ``slack`` comes on top, per call)."""
        return sum(b.tokens for b in self.batches)


def _is_public(target: Target) -> bool:
    return not any(part.startswith("_") for part in target.qualname.split("."))


def _priority(indexed: tuple[int, PlanItem]) -> tuple[bool, int, int]:
    index, item = indexed
    t = item.target
    return (not _is_public(t), -(t.end - t.start), index)


def _batch(
    items: Sequence[PlanItem], overhead_tokens: int, profile: ModelProfile | None = None
) -> Batch:
    estimate = overhead_tokens + sum(i.prompt_tokens for i in items)
    prompt = (profile or ModelProfile()).prompt_reserve(estimate)
    completion = BATCH_ANSWER_OVERHEAD + sum(i.completion_tokens for i in items)
    return Batch(tuple(items), prompt, completion, estimate)


def plan(
    items: Sequence[PlanItem],
    budget: TokenBudget,
    *,
    overhead_tokens: int,
    max_batch_prompt_tokens: int = 6000,
    max_batch_items: int = 8,
    repair_reserve_ratio: float = 0.15,
    profile: ModelProfile | None = None,
) -> Plan:
    """Pack definitions into calls that fit what is left of the budget.

    Priority: public API first (no ``_``-prefixed part in the qualname), then larger
    definitions, then source order.  Each item goes into the first batch where it
    fits (prompt sum ≤ ``max_batch_prompt_tokens``, at most ``max_batch_items``), or
    opens a new one.  A batch costs ``with_margin(overhead + prompts) + completions``
    plus the budget's ``slack``; the planned total never exceeds
    ``budget.remaining - held_back``.

    ``repair_reserve_ratio`` of the budget's *limit* is held back for the one repair
    round (whose own ``plan`` call should pass ``repair_reserve_ratio=0``).  Because
    the hold-back is a floor on what stays unplanned, several ``plan`` calls in one
    round (one per docstring style) all respect it.

    ``profile`` (the model's :class:`ModelProfile`) scales the prompt estimates by the
    learned tokenizer ratio; the items' completion shares are the caller's.
    """
    if not 0 <= repair_reserve_ratio < 1:
        raise ValueError("repair_reserve_ratio must be in [0, 1)")
    held_back = math.ceil(budget.limit * repair_reserve_ratio)
    packer = _Packer(
        left=max(0, budget.remaining - held_back),
        per_call=budget.slack,
        overhead=overhead_tokens,
        max_prompt=max_batch_prompt_tokens,
        max_items=max_batch_items,
        profile=profile,
    )
    deferred: list[tuple[Target, str]] = []
    for _, item in sorted(enumerate(items), key=_priority):
        reason = packer.add(item)
        if reason is not None:
            deferred.append((item.target, reason))
    batches = tuple(_batch(members, overhead_tokens, profile) for members in packer.batches)
    return Plan(batches, tuple(deferred), held_back)


@dataclass
class _Packer:
    """First-fit packing of items into calls, each call costed with the budget's slack,
    within ``left`` tokens."""

    left: int
    per_call: int
    overhead: int
    max_prompt: int
    max_items: int
    profile: ModelProfile | None
    batches: list[list[PlanItem]] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)

    def add(self, item: PlanItem) -> str | None:
        """Place ``item``; the reason it is deferred when it cannot be."""
        if item.prompt_tokens > self.max_prompt:
            return f"function too large for one request ({item.prompt_tokens} tokens)"
        if self._join(item):
            return None
        cost = self._cost([item])
        if cost > self.left:
            return f"token budget exhausted (needs {cost}, {self.left} left)"
        self.batches.append([item])
        self.costs.append(cost)
        self.left -= cost
        return None

    def _join(self, item: PlanItem) -> bool:
        """Add ``item`` to the first open batch it fits in, if any."""
        for i, members in enumerate(self.batches):
            if len(members) >= self.max_items:
                continue
            if sum(m.prompt_tokens for m in members) + item.prompt_tokens > self.max_prompt:
                continue
            extra = self._cost([*members, item]) - self.costs[i]
            if extra <= self.left:
                self.left -= extra
                self.costs[i] += extra
                members.append(item)
                return True
        return False

    def _cost(self, members: Sequence[PlanItem]) -> int:
        return _batch(members, self.overhead, self.profile).tokens + self.per_call
