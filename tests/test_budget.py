"""Token counting with the vendored encodings, the budget, the ledger and the plan."""

from __future__ import annotations

import hashlib
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import tiktoken.load
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.docstrings.budget import BudgetExceeded, CallCharge, TokenBudget
from bot.docstrings.ledger import Ledger
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import Param, Target, Usage
from bot.docstrings.plan import BATCH_ANSWER_OVERHEAD, Batch, PlanItem, completion_reserve, plan
from bot.docstrings.tokens import (
    DATA_DIR,
    EncodingIntegrityError,
    TokenCounter,
    encoding_for_model,
    load_encoding,
    with_margin,
)
from tests import factories


def target(
    qualname: str = "f",
    *,
    start: int = 1,
    end: int = 3,
    params: int = 0,
    kind: str = "function",
    returns_value: bool = False,
    raises: tuple[str, ...] = (),
) -> Target:
    return factories.make_target(
        path="pkg/mod.py",
        qualname=qualname,
        kind=kind,
        params=tuple(Param(f"p{i}", "positional") for i in range(params)),
        returns_value=returns_value,
        raises=raises,
        **factories.on_lines(start, end),
    )


@pytest.fixture(scope="module")
def o200k() -> TokenCounter:
    return TokenCounter(load_encoding("o200k_base"))


@pytest.fixture(scope="module")
def cl100k() -> TokenCounter:
    return TokenCounter(load_encoding("cl100k_base"))


# ----------------------------------------------------------------------- encodings


def test_known_token_ids(o200k: TokenCounter, cl100k: TokenCounter) -> None:
    assert o200k.encoding.encode("hello world") == [24912, 2375]
    assert o200k.count("hello world") == 2
    # The cookbook's example: https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken
    assert cl100k.encoding.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert cl100k.count("tiktoken is great!") == 6


SAMPLES = [
    "hello world",
    "def get_user(id: int) -> User:\n    return db.get(id)\n",
    "Ünïcödé, 日本語のテキスト, emoji 🎉 and tabs\t\r\n",
    "<|endoftext|> is ordinary text here",
    "    " * 50 + "x = 1234567890",
]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_counts_match_tiktokens_own_constructor(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed tiktoken's download cache with the vendored file under the key it would use
    # for its URL, forbid downloads, and build the encoding tiktoken's own way.
    import tiktoken_ext.openai_public as public

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    shutil.copy(DATA_DIR / f"{name}.tiktoken", cached)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_download(path: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {path}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)
    theirs = tiktoken.Encoding(**getattr(public, name)())
    ours = load_encoding(name)
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)
        assert ours.encode(text, disallowed_special=()) == theirs.encode(
            text, disallowed_special=()
        )


def test_loading_never_touches_network_or_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    load_encoding.cache_clear()
    try:
        encoding = load_encoding("o200k_base")
    finally:
        load_encoding.cache_clear()
    assert encoding.encode("hello world") == [24912, 2375]
    assert list(cache.iterdir()) == []  # tiktoken's loader would have copied it here


def test_loaded_once_per_process() -> None:
    assert load_encoding("o200k_base") is load_encoding("o200k_base")


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "o200k_base.tiktoken"
    data = bytearray((DATA_DIR / "o200k_base.tiktoken").read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(EncodingIntegrityError, match=r"o200k_base\.tiktoken failed verification"):
        load_encoding("o200k_base", copy)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncodingIntegrityError, match="cannot read tokenizer file"):
        load_encoding("cl100k_base", tmp_path / "nope.tiktoken")


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer encoding 'p50k_base'"):
        load_encoding("p50k_base")
    with pytest.raises(ValueError, match="known: cl100k_base, o200k_base"):
        encoding_for_model("gpt-4o", "r50k_base")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("my-azure-deployment", "o200k_base"),
        ("llama3.1:8b", "o200k_base"),
        ("offline", "o200k_base"),
    ],
)
def test_encoding_for_model(model: str, expected: str) -> None:
    assert encoding_for_model(model) == expected


def test_encoding_override_wins() -> None:
    assert encoding_for_model("gpt-4o", "cl100k_base") == "cl100k_base"


def test_count_messages_uses_cookbook_overhead(o200k: TokenCounter) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello world", "name": "alice"},
    ]
    by_hand = 3  # reply priming
    by_hand += 3 + o200k.count("system") + o200k.count("You are terse.")
    by_hand += 3 + o200k.count("user") + o200k.count("hello world") + o200k.count("alice") + 1
    assert o200k.count_messages(messages) == by_hand
    assert o200k.count_messages([]) == 3


def test_special_token_text_is_counted_as_text(o200k: TokenCounter) -> None:
    # Untrusted code may contain special-token text; counting must not raise.
    assert o200k.count("<|endoftext|>") > 1


# -------------------------------------------------------------------------- budget


def test_budget_charge_and_afford() -> None:
    b = TokenBudget(100)
    assert b.remaining == 100 and b.can_afford(100) and not b.can_afford(101)
    b.charge(60)
    assert (b.spent, b.remaining) == (60, 40)
    with pytest.raises(BudgetExceeded, match=r"needs 41, 40 left"):
        b.charge(41)
    assert b.spent == 60


def test_budget_reserve_and_settle_releases_the_unused_part() -> None:
    b = TokenBudget(1000)
    r = b.reserve(600)
    assert (b.reserved, b.remaining) == (600, 400)
    with pytest.raises(BudgetExceeded):
        b.reserve(401)
    b.settle(r, 250)
    assert (b.spent, b.reserved, b.remaining, b.slack) == (250, 0, 750, 0)
    with pytest.raises(ValueError, match="already settled"):
        b.settle(r, 10)


def test_budget_overrun_is_recorded_and_makes_later_calls_stricter() -> None:
    b = TokenBudget(1000)
    r = b.reserve(300)
    b.settle(r, 340)  # the provider counted 40 more than we estimated
    assert b.overruns == [(300, 340)]
    assert b.slack == 40
    assert b.remaining == 660
    assert b.can_afford(620) and not b.can_afford(621)
    with pytest.raises(BudgetExceeded, match="needs 661, 660 left"):
        b.reserve(621)
    r2 = b.reserve(620)
    assert r2.tokens == 660


def test_an_unanswered_attempt_is_charged_and_a_retry_re_reserves() -> None:
    b = TokenBudget(2_500)
    charge = CallCharge(b, 1_000)
    charge.open()
    charge.unanswered()  # timed out: the server may have processed (and billed) it all
    assert (b.spent, b.reserved, charge.lost) == (1_000, 0, [1_000])
    assert charge.again() is None and b.reserved == 1_000
    charge.unanswered()
    assert charge.again() == "token budget exhausted (needs 1000, 500 left)"
    charge.settle(0)
    assert (b.spent, b.reserved) == (2_000, 0)


def test_a_retry_reserves_with_what_was_learned_meanwhile() -> None:
    """Calls run concurrently: a larger tokenizer ratio learned from another call's
    answer while this one waited for a retry sizes the retry's reservation."""
    b = TokenBudget(10_000)
    size = 1_000
    charge = CallCharge(b, size, resize=lambda: size)
    charge.open()
    charge.unanswered()
    size = 1_080
    assert charge.again() is None and b.reserved == 1_080
    charge.unanswered()
    size = 900  # never less than it held before
    assert charge.again() is None and b.reserved == 1_080
    charge.settle(1_050)
    assert (b.spent, b.reserved, charge.lost) == (1_000 + 1_080 + 1_050, 0, [1_000, 1_080])


def test_budget_rejects_negative() -> None:
    with pytest.raises(ValueError):
        TokenBudget(-1)
    b = TokenBudget(10)
    with pytest.raises(ValueError):
        b.charge(-1)
    with pytest.raises(ValueError):
        b.reserve(-1)


def test_with_margin() -> None:
    assert with_margin(0) == 16
    assert with_margin(1000) == 1036
    assert with_margin(1001) == 1038  # ceil(1021.02) + 16


# -------------------------------------------------------------------------- ledger


def test_ledger_costs_and_totals() -> None:
    ledger = Ledger()
    e = ledger.record("gpt-4o-mini-2024-07-18", Usage(1_000_000, 1_000_000))
    assert e.cost_usd == pytest.approx(0.15 + 0.60)
    ledger.record("gpt-4o", Usage(1000, 100))
    ledger.record("gpt-4o-mini", Usage(500, 50), cached=True)
    assert ledger.usage == Usage(1_001_000, 1_000_100)
    assert ledger.saved == Usage(500, 50)
    assert ledger.calls == 2
    assert ledger.cost_usd == pytest.approx(0.75 + (1000 * 2.5 + 100 * 10.0) / 1e6)
    assert ledger.notes == []


def test_ledger_unknown_price() -> None:
    ledger = Ledger()
    entry = ledger.record("my-deployment", Usage(100, 10))
    assert entry.cost_usd == 0.0 and not entry.price_known
    assert ledger.unpriced_models == ("my-deployment",)
    assert ledger.notes == ["price unknown for model 'my-deployment': its cost is counted as $0"]


def test_offline_costs_nothing() -> None:
    ledger = Ledger()
    ledger.record("offline", Usage())
    assert ledger.cost_usd == 0 and ledger.notes == []


# ---------------------------------------------------------------------------- plan


def test_completion_reserve_bounds() -> None:
    assert completion_reserve(target()) == 120
    # 3 source lines earn 1 token of description
    assert completion_reserve(target(params=2, returns_value=True)) == 80 + 80 + 30 + 1
    assert completion_reserve(target(params=30)) == 600
    assert completion_reserve(target(kind="class", raises=("E",))) == 120


def test_completion_reserve_grows_with_the_item() -> None:
    """Issue 9, item 7: sized from the item: parameters, raises, and its length."""
    small = completion_reserve(target(params=3))
    assert completion_reserve(target(params=3, raises=("ValueError", "KeyError"))) == small + 60
    assert completion_reserve(target(params=3, end=121)) == small - 1 + 60  # 120 lines: +60
    assert completion_reserve(target(params=3, end=1000)) == small - 1 + 80  # capped


# ------------------------------------------------------------------ model profile


def test_profile_learns_the_largest_prompt_ratio() -> None:
    p = ModelProfile()
    assert p.prompt_reserve(1000) == with_margin(1000)  # nothing learned: our estimate
    p = p.observe(estimate=1000, prompt_tokens=1050, reserve=200, completion_tokens=100)
    p = p.observe(estimate=1000, prompt_tokens=1080, reserve=200, completion_tokens=100)
    p = p.observe(estimate=1000, prompt_tokens=1030, reserve=200, completion_tokens=100)
    assert p.prompt_ratio == 1.08 and p.calls == 3
    # The provider's count of an 8 % tokenizer stays within what is reserved.
    assert p.prompt_reserve(1000) >= 1080 and p.prompt_reserve(1000) == with_margin(1080)
    assert p.corrects_prompts
    assert "corrected by +8.0 %" in p.notes("smollm2")[0]


def test_profile_ignores_small_prompts_and_never_reserves_below_the_estimate() -> None:
    p = ModelProfile().observe(estimate=40, prompt_tokens=60, reserve=0, completion_tokens=0)
    assert p.prompt_ratio == 1.0  # 40 tokens: fixed framing, not a tokenizer ratio
    p = p.observe(estimate=1000, prompt_tokens=900, reserve=0, completion_tokens=0)
    assert p.prompt_reserve(1000) == with_margin(1000) and not p.corrects_prompts
    p = p.observe(estimate=1000, prompt_tokens=10_000, reserve=0, completion_tokens=0)
    assert p.prompt_ratio == 4.0  # capped: that is no tokenizer; the budget's slack covers it


def test_profile_widens_the_room_to_answer_from_observed_answers() -> None:
    p = ModelProfile()
    assert p.answer_room(200) == 200 and not p.widens_answers and p.notes("m") == []
    terse = p.observe(estimate=0, prompt_tokens=0, reserve=200, completion_tokens=100)
    assert terse.answer_room(200) == 200  # never below the item's own size
    verbose = p.observe(estimate=0, prompt_tokens=0, reserve=200, completion_tokens=320)
    assert verbose.answer_ratio == 1.6
    assert verbose.answer_room(200) == 400  # 1.6 x 1.25 headroom
    cut = p.observe(estimate=0, prompt_tokens=0, reserve=200, completion_tokens=200, truncated=True)
    assert cut.answer_room(200) > 200 * 1.25  # it needed more than it had
    assert verbose.answer_room(1900) == 2000  # MAX_ANSWER_ROOM


def test_profile_merge_and_json() -> None:
    a = ModelProfile(1.05, 0.5, 3)
    b = ModelProfile(1.02, 1.5, 7)
    assert a.merge(b) == b.merge(a) == ModelProfile(1.05, 1.5, 7)
    assert ModelProfile.from_json(a.to_json()) == a
    for bad in (
        "[]",
        '{"prompt_ratio": "1"}',
        '{"prompt_ratio": 0, "answer_ratio": 1, "calls": 1}',
        "{",
    ):
        with pytest.raises(ValueError):
            ModelProfile.from_json(bad)


def test_plan_reserves_with_the_learned_ratio() -> None:
    items = [PlanItem(target("f"), 900, 200)]
    plain = plan(items, TokenBudget(10_000), overhead_tokens=100, repair_reserve_ratio=0)
    learned = ModelProfile(prompt_ratio=1.08)
    scaled = plan(
        items, TokenBudget(10_000), overhead_tokens=100, repair_reserve_ratio=0, profile=learned
    )
    assert plain.batches[0].estimate == scaled.batches[0].estimate == 1000
    assert plain.batches[0].prompt_tokens == with_margin(1000)
    assert scaled.batches[0].prompt_tokens == with_margin(1080)
    # A budget that fits the plain estimate but not the corrected one defers the item.
    tight = TokenBudget(with_margin(1000) + 16 + 200)
    assert plan(items, tight, overhead_tokens=100, repair_reserve_ratio=0).batches
    assert not plan(
        items, tight, overhead_tokens=100, repair_reserve_ratio=0, profile=learned
    ).batches


def test_plan_priority_public_then_larger_then_position() -> None:
    items = [
        PlanItem(target("_private", start=1, end=100), 100, 120),
        PlanItem(target("small", start=200, end=202), 100, 120),
        PlanItem(target("Big.method", start=300, end=350), 100, 120),
        PlanItem(target("Cls._helper", start=400, end=500), 100, 120),
        PlanItem(target("tiny", start=600, end=602), 100, 120),
    ]
    p = plan(items, TokenBudget(100_000), overhead_tokens=500, max_batch_items=1)
    assert [b.targets[0].qualname for b in p.batches] == [
        "Big.method",
        "small",
        "tiny",
        "Cls._helper",  # 100 lines
        "_private",  # 99 lines
    ]


def test_plan_packs_batches_within_limits() -> None:
    items = [PlanItem(target(f"f{i}", start=i * 10), 1000, 200) for i in range(20)]
    p = plan(
        items,
        TokenBudget(1_000_000),
        overhead_tokens=400,
        max_batch_prompt_tokens=3000,
        max_batch_items=8,
    )
    assert [len(b.items) for b in p.batches] == [3] * 6 + [2]
    for b in p.batches:
        assert b.prompt_tokens == with_margin(400 + 1000 * len(b.items))
        assert b.max_tokens == BATCH_ANSWER_OVERHEAD + 200 * len(b.items)
        assert b.tokens == b.prompt_tokens + b.max_tokens
    assert p.deferred == ()


def test_plan_defers_too_large_and_over_budget() -> None:
    huge = PlanItem(target("huge", end=900), 7000, 600)
    items = [huge] + [PlanItem(target(f"f{i}", start=i * 10), 1000, 200) for i in range(10)]
    b = TokenBudget(5000)
    p = plan(items, b, overhead_tokens=400, repair_reserve_ratio=0)
    reasons = dict((t.qualname, r) for t, r in p.deferred)
    assert reasons["huge"] == "function too large for one request (7000 tokens)"
    assert p.tokens <= b.remaining
    exhausted = [r for q, r in reasons.items() if q != "huge"]
    assert exhausted
    assert all(r.startswith("token budget exhausted (needs ") for r in exhausted)
    left = b.remaining - p.tokens
    assert exhausted[0] == f"token budget exhausted (needs {with_margin(1400) + 216}, {left} left)"


def test_plan_holds_back_the_repair_reserve() -> None:
    items = [PlanItem(target(f"f{i}", start=i * 10), 500, 200) for i in range(40)]
    b = TokenBudget(10_000)
    p = plan(items, b, overhead_tokens=300)
    assert p.held_back == 1500
    assert p.tokens <= 10_000 - 1500
    assert p.deferred  # not everything fits
    repair = plan(items[:1], b, overhead_tokens=300, repair_reserve_ratio=0)
    assert repair.batches and repair.held_back == 0


def test_plan_adds_the_budget_slack_per_call() -> None:
    b = TokenBudget(2000)
    b.settle(b.reserve(100), 150)  # slack 50, spent 150
    items = [PlanItem(target("a"), 300, 120), PlanItem(target("b", start=10), 300, 120)]
    p = plan(items, b, overhead_tokens=100, max_batch_items=1, repair_reserve_ratio=0)
    assert p.tokens + 50 * len(p.batches) <= b.remaining
    for batch in p.batches:
        b.reserve(batch.tokens)  # what the pipeline does: every planned call can start


def test_plan_of_nothing() -> None:
    p = plan([], TokenBudget(0), overhead_tokens=100)
    assert p.batches == () and p.deferred == ()


def test_plan_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError):
        plan([], TokenBudget(10), overhead_tokens=0, repair_reserve_ratio=1.0)


item_sizes = st.lists(
    st.tuples(
        st.integers(0, 9000),  # prompt tokens
        st.integers(120, 600),  # completion reservation
        st.booleans(),  # private
        st.integers(1, 400),  # length in lines
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    sizes=item_sizes,
    limit=st.integers(0, 60_000),
    spent=st.integers(0, 5_000),
    overhead=st.integers(0, 2_000),
    max_prompt=st.integers(500, 8000),
    max_items=st.integers(1, 10),
    ratio=st.sampled_from([0.0, 0.15, 0.5]),
)
def test_plan_never_exceeds_the_budget(
    sizes: list[tuple[int, int, bool, int]],
    limit: int,
    spent: int,
    overhead: int,
    max_prompt: int,
    max_items: int,
    ratio: float,
) -> None:
    b = TokenBudget(limit + spent, spent)
    items = [
        PlanItem(target(("_f" if private else "f") + str(i), start=i * 500, end=i * 500 + n), p, c)
        for i, (p, c, private, n) in enumerate(sizes)
    ]
    result = plan(
        items,
        b,
        overhead_tokens=overhead,
        max_batch_prompt_tokens=max_prompt,
        max_batch_items=max_items,
        repair_reserve_ratio=ratio,
    )
    assert result.tokens <= max(0, b.remaining - result.held_back)
    planned = [t for batch in result.batches for t in batch.targets]
    deferred = [t for t, _ in result.deferred]
    assert sorted(t.qualname for t in planned + deferred) == sorted(
        i.target.qualname for i in items
    )
    for batch in result.batches:
        assert 1 <= len(batch.items) <= max_items
        assert sum(i.prompt_tokens for i in batch.items) <= max_prompt
    # Every planned call can reserve its worst case, in any order.
    for batch in result.batches:
        b.reserve(batch.tokens)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(10, 3000), st.integers(120, 600)), max_size=30),
    limit=st.integers(1000, 40_000),
    data=st.data(),
)
def test_spent_never_exceeds_limit_when_providers_behave(
    sizes: list[tuple[int, int]], limit: int, data: st.DataObject
) -> None:
    """Invariant 3 end to end: plan, reserve, call, settle; the repair round too."""
    b = TokenBudget(limit)
    overhead = 400
    items = [PlanItem(target(f"f{i}", start=i * 10), p, c) for i, (p, c) in enumerate(sizes)]
    for ratio in (0.15, 0.0):  # first round, then the repair round
        result = plan(items, b, overhead_tokens=overhead, repair_reserve_ratio=ratio)
        for batch in result.batches:
            reservation = b.reserve(batch.tokens)
            real_prompt = overhead + sum(i.prompt_tokens for i in batch.items)
            # The provider's prompt count may exceed our raw count by up to the margin.
            prompt = data.draw(st.integers(real_prompt, batch.prompt_tokens))
            completion = data.draw(st.integers(0, batch.max_tokens))
            b.settle(reservation, prompt + completion)
        assert b.spent <= b.limit
    assert b.overruns == []


def test_batch_is_plain_data() -> None:
    t = target()
    batch = Batch((PlanItem(t, 10, 120),), 42, 136)
    assert batch.targets == (t,)
    assert replace(batch, max_tokens=1).tokens == 43
