"""Token accounting: counting, the per-PR budget, batch planning and the cost ledger.

Everything here is pure except :func:`load_encoding`, which reads the tokenizer files
vendored in ``bot/data/tiktoken`` (tiktoken would otherwise download them at run time).

The budget invariant (DESIGN.md, invariant 3): the tokens the provider reports as used
never add up to more than the limit, provided it respects ``max_tokens`` and our prompt
estimate is not below its own count.  The estimate carries a safety margin
(:func:`with_margin`); before a call the pipeline reserves prompt estimate +
``max_tokens`` (:meth:`TokenBudget.reserve`), afterwards it settles with the reported
usage (:meth:`TokenBudget.settle`), releasing what was not used.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot import quota
from bot.config import price_for
from bot.models import Target, Usage

if TYPE_CHECKING:  # imported by load_encoding: an offline review never needs it
    import tiktoken

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data" / "tiktoken"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.7 – 0.14).  Calling those
# constructors would download the files, so the constants live here.
_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _EncodingSpec:
    sha256: str
    pat_str: str
    special_tokens: Mapping[str, int]


ENCODINGS: dict[str, _EncodingSpec] = {
    "o200k_base": _EncodingSpec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": _EncodingSpec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}
DEFAULT_ENCODING = "o200k_base"


class EncodingIntegrityError(ValueError):
    """A vendored tokenizer file is missing, unreadable or fails its sha256 check."""


def _read_ranks(path: Path, expected_sha256: str) -> dict[bytes, int]:
    # Same format and checks as tiktoken.load.load_tiktoken_bpe, without its cache:
    # that function copies even a local file into TIKTOKEN_CACHE_DIR (or the temp
    # dir) and fails when a user-specified cache dir is read-only.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EncodingIntegrityError(
            f"cannot read tokenizer file {path.name}: {exc.strerror or exc}"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise EncodingIntegrityError(
            f"tokenizer file {path.name} failed verification: sha256 {actual[:16]}… "
            f"instead of {expected_sha256[:16]}…; the installation is corrupted, reinstall docgen"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as exc:  # pragma: no cover - the hash makes this unreachable
            raise EncodingIntegrityError(f"bad line in tokenizer file {path.name}") from exc
    return ranks


@functools.cache
def load_encoding(name: str, path: Path | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, built from the vendored, hash-checked file.

    Loaded once per process (about 0.3 s for o200k_base); never touches the network.
    ``path`` overrides the file (tests).  Raises :class:`EncodingIntegrityError` when
    the file does not match tiktoken's published sha256, ``ValueError`` for an
    unknown name.
    """
    spec = ENCODINGS.get(name)
    if spec is None:
        known = ", ".join(sorted(ENCODINGS))
        raise ValueError(f"unknown tokenizer encoding {name!r} (known: {known})")
    import tiktoken

    ranks = _read_ranks(path or DATA_DIR / f"{name}.tiktoken", spec.sha256)
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


# Longest prefix wins; "gpt-4o" must not fall into "gpt-4".
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure's spelling of gpt-3.5 deployments
    ("text-embedding-", "cl100k_base"),
)


def encoding_for_model(model: str, override: str | None = None) -> str:
    """The encoding name to count ``model``'s tokens with.

    ``override`` (``DOCGEN_ENCODING``) wins and must be a vendored encoding.  Unknown
    names (Azure deployment names, other OpenAI-compatible servers) get o200k_base,
    the encoding of every current OpenAI chat model.
    """
    if override:
        if override not in ENCODINGS:
            known = ", ".join(sorted(ENCODINGS))
            raise ValueError(f"unknown tokenizer encoding {override!r} (known: {known})")
        return override
    name = model.strip().lower()
    if name.startswith("ft:"):  # fine-tuned: ft:gpt-4o-mini-2024-07-18:org::id
        name = name[3:]
    best: tuple[str, str] | None = None
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, encoding)
    return best[1] if best else DEFAULT_ENCODING


# https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


class TokenCounter:
    """Counts tokens of text and of chat messages with one encoding.

    Built from an encoding, or with :meth:`lazy` from its name: then the encoding
    (about 0.3 s to load) is read on the first count, so a run that never counts
    (the offline provider) never loads it.
    """

    def __init__(self, encoding: tiktoken.Encoding | None, *, name: str = "") -> None:
        self._encoding = encoding
        self._name = encoding.name if encoding is not None else name

    @classmethod
    def lazy(cls, name: str) -> TokenCounter:
        """A counter that loads the vendored encoding ``name`` when first used."""
        if name not in ENCODINGS:  # a bad name is still an error up front
            known = ", ".join(sorted(ENCODINGS))
            raise ValueError(f"unknown tokenizer encoding {name!r} (known: {known})")
        return cls(None, name=name)

    @property
    def loaded(self) -> bool:
        return self._encoding is not None

    @property
    def encoding(self) -> tiktoken.Encoding:
        if self._encoding is None:
            self._encoding = load_encoding(self._name)
        return self._encoding

    @property
    def name(self) -> str:
        return self._name

    def count(self, text: str) -> int:
        """Tokens in ``text``; special-token text counts as ordinary text."""
        return len(self.encoding.encode_ordinary(text))

    def count_messages(self, messages: Iterable[Mapping[str, object]]) -> int:
        """Prompt tokens of a chat request, with the cookbook's per-message overhead."""
        total = REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if isinstance(value, str):
                    total += self.count(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total


def with_margin(prompt_estimate: int) -> int:
    """A prompt estimate plus the safety margin the budget reserves (2 % + 16 tokens).

    Covers the small differences between our count and the provider's (message
    framing, JSON joins between batched items).
    """
    return math.ceil(prompt_estimate * 1.02) + 16


# ------------------------------------------------------------------------ budget


class BudgetExceeded(Exception):
    """A charge or reservation would take the budget over its limit."""

    def __init__(self, needed: int, remaining: int) -> None:
        super().__init__(f"token budget exhausted (needs {needed}, {remaining} left)")
        self.needed = needed
        self.remaining = remaining


class CapReached(BudgetExceeded):
    """A shared quota (the installation's day or month cap) has no room for a call."""

    def __init__(self, hit: quota.CapHit) -> None:
        super().__init__(hit.needed, max(0, hit.limit - hit.used))
        self.hit = hit
        self.args = (hit.short(),)


class Pool(Protocol):
    """A quota shared beyond one run, reserved from together with a :class:`TokenBudget`."""

    def reserve(self, tokens: int) -> object:
        """Hold ``tokens``; raises :class:`BudgetExceeded` (e.g. :class:`CapReached`)."""
        ...

    def settle(self, hold: object, actual: int) -> None: ...


class InstallationQuota:
    """The installation's day and month caps as a :class:`Pool` (counters in ``store``).

    Reserving is one write to the journal (SQLite or Redis) per model call attempt.
    A settle the store cannot record leaves the hold counted in full: the cap errs on
    the side of the one who pays.
    """

    def __init__(
        self,
        store: quota.CapStore,
        installation_id: int,
        caps: quota.Caps,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.installation_id = installation_id
        self.caps = caps
        self.clock = clock

    def exhausted(self) -> quota.CapHit | None:
        """The cap already reached (no room for a single token), if any."""
        used = self.store.cap_used(self.installation_id)
        return quota.check(used, 1, self.caps, self.clock())

    def reserve(self, tokens: int) -> quota.Hold:
        held = self.store.reserve_tokens(self.installation_id, tokens, self.caps)
        if isinstance(held, quota.CapHit):
            raise CapReached(held)
        return held

    def settle(self, hold: object, actual: int) -> None:
        assert isinstance(hold, quota.Hold)
        try:
            self.store.settle_tokens(hold, actual)
        except Exception as exc:  # the job must not fail (and call again) over this
            log.warning(
                "could not settle %d reserved tokens of installation %d (%s); they stay counted",
                hold.tokens,
                hold.installation_id,
                exc,
            )


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one call until :meth:`TokenBudget.settle`."""

    id: int
    tokens: int


@dataclass
class TokenBudget:
    """A per-run token quota: ``spent`` (settled), plus tokens reserved for calls in flight.

    A call reserves its worst case (prompt estimate + ``max_tokens``), then settles
    with the provider's ``usage``.  If a call used more than it reserved (our estimate
    was low), the largest such excess becomes ``slack``: it is added to every later
    reservation, so no later call can start unless it fits even if the estimate is
    off by as much again.
    """

    limit: int
    spent: int = 0
    reserved: int = 0
    slack: int = 0
    overruns: list[tuple[int, int]] = field(default_factory=list)  # (reserved, actual)
    # A quota beyond this run (the installation's caps): every reservation must fit
    # there too; ``refused`` keeps the last time it did not.
    pool: Pool | None = field(default=None, repr=False, compare=False)
    refused: BudgetExceeded | None = field(default=None, repr=False, compare=False)
    _open: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _holds: dict[int, object] = field(default_factory=dict, init=False, repr=False, compare=False)
    _next_id: int = field(default=1, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 0 or self.spent < 0:
            raise ValueError("a token budget cannot be negative")

    @property
    def remaining(self) -> int:
        """Tokens neither spent nor reserved (never negative)."""
        return max(0, self.limit - self.spent - self.reserved)

    def can_afford(self, tokens: int) -> bool:
        """Whether a call that may use ``tokens`` can start now (slack included)."""
        return tokens + self.slack <= self.remaining

    def charge(self, tokens: int) -> None:
        """Spend ``tokens`` outright; raises :class:`BudgetExceeded` past the limit."""
        if tokens < 0:
            raise ValueError("cannot charge a negative number of tokens")
        if tokens > self.remaining:
            raise BudgetExceeded(tokens, self.remaining)
        self.spent += tokens

    def reserve(self, tokens: int) -> Reservation:
        """Hold ``tokens`` (+ ``slack``) for a call; raises :class:`BudgetExceeded`."""
        if tokens < 0:
            raise ValueError("cannot reserve a negative number of tokens")
        needed = tokens + self.slack
        if needed > self.remaining:
            raise BudgetExceeded(needed, self.remaining)
        hold = None
        if self.pool is not None:
            try:
                hold = self.pool.reserve(needed)
            except BudgetExceeded as exc:
                self.refused = exc
                raise
        reservation = Reservation(self._next_id, needed)
        self._next_id += 1
        self._open[reservation.id] = needed
        if hold is not None:
            self._holds[reservation.id] = hold
        self.reserved += needed
        return reservation

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Replace a reservation by the tokens the call actually used.

        ``actual`` is charged even when it exceeds the reservation (the provider has
        billed it); the excess is recorded in ``overruns`` and raises ``slack``.
        """
        held = self._open.pop(reservation.id, None)
        if held is None:
            raise ValueError("reservation already settled or not from this budget")
        actual = max(0, actual)
        self.reserved -= held
        self.spent += actual
        hold = self._holds.pop(reservation.id, None)
        if hold is not None and self.pool is not None:
            self.pool.settle(hold, actual)
        if actual > held:
            self.overruns.append((held, actual))
            self.slack = max(self.slack, actual - held)


@dataclass
class CallCharge:
    """One provider call's hold on the budget, across its attempts.

    :meth:`open` reserves ``tokens`` (prompt estimate + ``max_tokens``).  An attempt
    whose answer never came (timeout, dropped connection) may still be processed and
    billed in full, so :meth:`unanswered` charges what it held; a retry must
    :meth:`again` reserve before it is sent, and is not sent when the budget has no room.
    :meth:`settle` ends the call with the usage the provider reported (0 for a call
    refused outright: providers do not bill those).
    """

    budget: TokenBudget
    tokens: int
    reservation: Reservation | None = None
    lost: list[int] = field(default_factory=list)  # charged per attempt that never answered
    # What an attempt needs now, asked again before each retry: answers that landed
    # meanwhile may have taught a larger tokenizer ratio (ModelProfile).  Never less.
    resize: Callable[[], int] | None = field(default=None, repr=False)

    def open(self) -> None:
        """Reserve for the first attempt; raises :class:`BudgetExceeded`."""
        self.reservation = self.budget.reserve(self.tokens)

    def unanswered(self) -> None:
        if self.reservation is None:
            return
        held = self.reservation.tokens
        self.budget.settle(self.reservation, held)
        self.reservation = None
        self.lost.append(held)

    def again(self) -> str | None:
        if self.reservation is not None:
            return None  # the last attempt was answered (an error): its hold still stands
        if self.resize is not None:
            self.tokens = max(self.tokens, self.resize())
        try:
            self.reservation = self.budget.reserve(self.tokens)
        except BudgetExceeded as exc:
            return str(exc)
        return None

    def settle(self, actual: int) -> None:
        """End the call: the open reservation becomes ``actual`` tokens."""
        if self.reservation is not None:
            self.budget.settle(self.reservation, actual)
            self.reservation = None
        elif actual > 0:  # pragma: no cover - an answer always comes with a reservation
            self.budget.spent += actual


# ------------------------------------------------------------------------ ledger


@dataclass(frozen=True)
class LedgerEntry:
    """One provider answer (or one answer taken from the cache)."""

    model: str
    usage: Usage
    cost_usd: float
    cached: bool = False
    price_known: bool = True


@dataclass
class Ledger:
    """What a run spent, call by call, with costs from :func:`bot.config.price_for`."""

    entries: list[LedgerEntry] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)  # tokens charged per lost attempt

    def record(self, model: str, usage: Usage, *, cached: bool = False) -> LedgerEntry:
        """Add one call.  ``cached`` entries cost nothing; their usage counts as saved."""
        price = price_for(model)
        cost = 0.0
        if price is not None and not cached:
            cost = (
                usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion
            ) / 1_000_000
        entry = LedgerEntry(model, usage, cost, cached, price is not None)
        self.entries.append(entry)
        return entry

    @property
    def usage(self) -> Usage:
        """Tokens actually spent (cache hits excluded)."""
        total = Usage()
        for e in self.entries:
            if not e.cached:
                total += e.usage
        return total

    @property
    def saved(self) -> Usage:
        """Tokens the cache saved, as recorded for cached entries."""
        total = Usage()
        for e in self.entries:
            if e.cached:
                total += e.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.entries)

    @property
    def calls(self) -> int:
        return sum(1 for e in self.entries if not e.cached)

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        """Models charged without a known price (their cost counts as 0)."""
        return tuple(sorted({e.model for e in self.entries if not e.price_known and not e.cached}))

    def record_unanswered(self, charge: CallCharge) -> None:
        """Note what a call's unanswered attempts were charged (they have no usage)."""
        self.unanswered += charge.lost

    @property
    def notes(self) -> list[str]:
        """Lines for the summary, e.g. that a cost is incomplete."""
        notes = [
            f"price unknown for model {m!r}: its cost is counted as $0"
            for m in self.unpriced_models
        ]
        if self.unanswered:
            n = len(self.unanswered)
            notes.append(
                f"{n} model call attempt{'s' if n != 1 else ''} got no answer (timeout or "
                f"lost connection); charged to the budget at their full reservation, "
                f"{sum(self.unanswered):,} tokens, which the server may have used"
            )
        return notes


# -------------------------------------------------------------------------- plan


COMPLETION_FLOOR = 120
COMPLETION_CEILING = 600  # from the item alone; observed answers may widen it
MAX_ANSWER_ROOM = 2000  # per item, whatever the model has shown (a length retry included)


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


# ---------------------------------------------------------------- model profile

MIN_LEARNING_ESTIMATE = 256  # smaller prompts: fixed framing differences dominate the ratio
MAX_PROMPT_RATIO = 4.0  # beyond this the answer is not a tokenizer difference; slack covers it
ANSWER_HEADROOM = 1.25  # over the largest answer seen, relative to completion_reserve


@dataclass(frozen=True)
class ModelProfile:
    """What a model's answers taught us about its token counts (issue 9, items 4 and 7).

    ``prompt_ratio`` is the largest ``usage.prompt_tokens / our estimate`` seen: a server
    with another tokenizer (SmolLM2's counts 3-8 % more than o200k) is reserved for
    with it, so that its own count stays within the budget.  ``answer_ratio`` is the
    largest ``usage.completion_tokens / completion_reserve`` seen (a truncated answer
    counts with the headroom it lacked): a verbose model gets more room to answer.
    Both only grow (the largest is the safe figure); ``calls`` is how many answers.
    """

    prompt_ratio: float = 1.0
    answer_ratio: float = 0.0
    calls: int = 0

    def observe(
        self,
        *,
        estimate: int,
        prompt_tokens: int,
        reserve: int,
        completion_tokens: int,
        truncated: bool = False,
    ) -> ModelProfile:
        """The profile after one answer: ``estimate`` is docgen's prompt count (before
        margin), ``reserve`` the answer room :func:`completion_reserve` gave the call."""
        prompt_ratio = self.prompt_ratio
        if estimate >= MIN_LEARNING_ESTIMATE and prompt_tokens > 0:
            seen = min(MAX_PROMPT_RATIO, prompt_tokens / estimate)
            prompt_ratio = max(prompt_ratio, seen)
        answer_ratio = self.answer_ratio
        if reserve > 0 and completion_tokens > 0:
            seen = completion_tokens / reserve
            if truncated:  # it needed more than it had: at least the headroom more
                seen *= ANSWER_HEADROOM
            answer_ratio = max(answer_ratio, seen)
        return ModelProfile(round(prompt_ratio, 4), round(answer_ratio, 4), self.calls + 1)

    def merge(self, other: ModelProfile) -> ModelProfile:
        """Two profiles of one model (another worker's, the stored one): the safe side."""
        return ModelProfile(
            max(self.prompt_ratio, other.prompt_ratio),
            max(self.answer_ratio, other.answer_ratio),
            max(self.calls, other.calls),
        )

    def prompt_reserve(self, estimate: int) -> int:
        """Prompt tokens to reserve for ``estimate``: the learned ratio, then the margin."""
        return with_margin(math.ceil(estimate * max(1.0, self.prompt_ratio)))

    def answer_room(self, reserve: int) -> int:
        """``max_tokens`` share for an item whose :func:`completion_reserve` is ``reserve``."""
        scale = max(1.0, self.answer_ratio * ANSWER_HEADROOM)
        return min(MAX_ANSWER_ROOM, math.ceil(reserve * scale))

    @property
    def corrects_prompts(self) -> bool:
        return self.prompt_ratio > 1.005

    @property
    def widens_answers(self) -> bool:
        return self.answer_ratio * ANSWER_HEADROOM > 1.005

    def notes(self, model: str) -> list[str]:
        """Lines for the report when this profile changed what a run reserved."""
        out = []
        if self.corrects_prompts:
            out.append(
                f"token estimates for {model!r} corrected by +{(self.prompt_ratio - 1) * 100:.1f} %: "
                "its server counts more prompt tokens than docgen's tiktoken estimate "
                f"(learned from {self.calls} answers); reservations include it"
            )
        if self.widens_answers:
            scale = self.answer_ratio * ANSWER_HEADROOM
            out.append(
                f"room to answer for {model!r} widened x{scale:.2f} from its observed answers"
            )
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "prompt_ratio": self.prompt_ratio,
                "answer_ratio": self.answer_ratio,
                "calls": self.calls,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelProfile:
        """Inverse of :meth:`to_json`; ``ValueError`` on anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        prompt, answer, calls = (
            data.get("prompt_ratio"),
            data.get("answer_ratio"),
            data.get("calls"),
        )
        numbers = (prompt, answer, calls)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise ValueError("not numbers")
        if not (0 < prompt <= MAX_PROMPT_RATIO and answer >= 0 and calls >= 0):
            raise ValueError("out of range")
        return cls(float(prompt), float(answer), int(calls))


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
    left = max(0, budget.remaining - held_back)
    per_call = budget.slack

    open_batches: list[list[PlanItem]] = []
    costs: list[int] = []
    deferred: list[tuple[Target, str]] = []
    for _, item in sorted(enumerate(items), key=_priority):
        if item.prompt_tokens > max_batch_prompt_tokens:
            deferred.append(
                (item.target, f"function too large for one request ({item.prompt_tokens} tokens)")
            )
            continue
        placed = False
        for i, members in enumerate(open_batches):
            if len(members) >= max_batch_items:
                continue
            if sum(m.prompt_tokens for m in members) + item.prompt_tokens > max_batch_prompt_tokens:
                continue
            new_cost = _batch([*members, item], overhead_tokens, profile).tokens + per_call
            if new_cost - costs[i] <= left:
                left -= new_cost - costs[i]
                costs[i] = new_cost
                members.append(item)
                placed = True
                break
        if placed:
            continue
        cost = _batch([item], overhead_tokens, profile).tokens + per_call
        if cost <= left:
            open_batches.append([item])
            costs.append(cost)
            left -= cost
        else:
            deferred.append((item.target, f"token budget exhausted (needs {cost}, {left} left)"))

    batches = tuple(_batch(members, overhead_tokens, profile) for members in open_batches)
    return Plan(batches, tuple(deferred), held_back)
