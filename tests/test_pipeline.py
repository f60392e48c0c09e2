"""The whole pipeline on a real-looking PR: offline, through the fake LLM, and on bad input.

These are the end-to-end checks of DESIGN.md's invariants 1 (a suggestion never changes
code), 2 (only lines GitHub accepts), 3 (the budget), 4 (idempotent with the cache),
7 (bad input never crashes) and 9 (no secrets in the report).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass

import openai
import pytest

from bot.cli.sample import make_sample_repo
from bot.config import RepoConfig
from bot.docstrings import diff
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache, SqliteCache
from bot.docstrings.edits import apply_edits
from bot.docstrings.llm.failures import RetryPolicy
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.llm.openai_provider import OpenAIProvider
from bot.docstrings.localgit import read_changes
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import Action, FileChange, Report, Style
from bot.docstrings.pipeline import RunResult, run
from bot.docstrings.plan import BATCH_ANSWER_OVERHEAD, Batch
from bot.docstrings.proof import same_code
from bot.docstrings.render import checkrun
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding, with_margin
from tests.fake_openai import API_KEY, recorded


@pytest.fixture(scope="module")
def sample_changes(tmp_path_factory):
    root = make_sample_repo(tmp_path_factory.mktemp("sample"))
    return read_changes(root, "main", "feature").changes


def context(provider=None, *, budget=20_000, cache=None, config=None) -> Context:
    return Context(
        config=config or RepoConfig(),
        provider=provider or OfflineProvider(),
        cache=cache if cache is not None else MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(budget),
    )


def go(changes, ctx) -> RunResult:
    return asyncio.run(run(changes, ctx))


def actions(result: RunResult) -> dict[str, str]:
    return {o.target.qualname: o.action.value for o in result.report.outcomes}


def assert_invariants(changes, result: RunResult) -> None:
    """Invariants 1 and 2 for every suggestion of a run."""
    by_path = {c.path: c for c in changes}
    for outcome in result.report.outcomes:
        s = outcome.suggestion
        if s is None:
            continue
        change = by_path[s.path]
        head = change.head.decode()
        # 1: applied alone to the head file, the suggestion changes no code.
        from bot.docstrings.models import Edit

        new = apply_edits(head, [Edit(s.start, s.end, s.body_lines)])
        assert same_code(head, new), outcome.target.qualname
        # 2: the lines it replaces are RIGHT-side lines of one hunk of the PR's patch.
        hunks = diff.parse_patch(change.patch)
        assert any(h.covers(s.start, s.end) for h in hunks), outcome.target.qualname


class TestOffline:
    def test_sample_pr(self, sample_changes):
        result = go(sample_changes, context())
        assert actions(result) == {
            "restock": "updated",
            "report": "unchanged",
            "cheapest": "added",
            "low_stock": "added",
            "Basket": "added",
            "Basket.__init__": "skipped",
            "Basket.add": "added",
            "Basket.checkout": "added",
            "_cents": "skipped",
        }
        report = result.report
        assert report.coverage_after.documented - report.coverage_before.documented == 5
        assert report.usage.total == 0 and report.cost_usd == 0
        assert all(o.offline for o in report.outcomes if o.suggestion)
        assert_invariants(sample_changes, result)
        # Everything applied together still changes no code.
        path = "shop/inventory.py"
        assert same_code(result.head_texts[path], result.new_texts[path])

    def test_stale_update_keeps_what_the_maintainer_wrote(self, sample_changes):
        result = go(sample_changes, context())
        restock = next(o for o in result.report.outcomes if o.target.qualname == "restock")
        assert restock.docstring.startswith("Put items back on the shelf.")
        assert "    sku: The product." in restock.docstring  # no types, like the file
        assert "shelf" not in restock.docstring.split("Args:")[1]

    def test_style_is_the_repository_s(self, sample_changes):
        result = go(sample_changes, context())
        assert result.report.style == Style.GOOGLE
        forced = context()
        forced.style_override = Style.NUMPY
        out = go(sample_changes, forced)
        cheapest = next(o for o in out.report.outcomes if o.target.qualname == "cheapest")
        assert "Parameters\n----------" in cheapest.docstring

    def test_types_follow_the_file(self):
        documented = 'def a(x: int) -> int:\n    """Halve.\n\n    Args:\n        x (int): N.\n\n    Returns:\n        int: Half.\n    """\n    return x // 2\n'
        new = "\n\ndef b(y: str) -> str:\n    z = y * 2\n    return z\n"
        head = documented + new
        patch = "@@ -10,0 +11,5 @@\n" + "".join(f"+{line}\n" for line in new.splitlines())
        result = go([FileChange("t.py", "modified", patch, head.encode())], context())
        [added] = [o for o in result.report.outcomes if o.action == Action.ADDED]
        assert (
            "    y (str): The y." in added.docstring and "    str: The result." in added.docstring
        )

    def test_header_outside_the_diff_is_reported_not_commented(self):
        head = (
            "def old(a, b):\n" + "".join(f"    x{i} = {i}\n" for i in range(20)) + "    return a\n"
        )
        patch = "@@ -19,3 +19,4 @@ def old(a, b):\n     x17 = 17\n     x18 = 18\n+    x19 = 19\n     return a\n"
        change = FileChange("m.py", "modified", patch, head.encode())
        result = go([change], context())
        [outcome] = result.report.outcomes
        assert outcome.action == Action.SKIPPED
        assert outcome.reason.startswith(checkrun.OUTSIDE_DIFF)
        assert outcome.suggestion is None
        assert checkrun.annotations(result.report)[0]["start_line"] == 1

    def test_exclusions_and_private_definitions(self, sample_changes):
        result = go(sample_changes, context(config=RepoConfig(exclude=("shop/*",))))
        assert result.report.outcomes == []
        assert [s.reason for s in result.report.skips] == [
            "excluded by include/exclude in the config"
        ]
        result = go(sample_changes, context(config=RepoConfig(skip_private=False)))
        assert actions(result)["_cents"] == "added"


def _added(text: str) -> str:
    lines = text.splitlines()
    return f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)


BAD_INPUTS = [
    ("syntax.py", "added", b"def broken(:\n    pass\n", "does not parse"),
    ("latin.py", "added", b"# -*- coding: latin-1 -*-\ndef f(x):\n    return '\xe9'\n", "encoding"),
    ("undeclared.py", "added", b"def f(x):\n    return '\xff\xfe'\n", "UTF-8"),
    ("nul.py", "added", b"def f(x):\n    return 1\x00\n", "binary"),
    ("huge.py", "added", b"x = 1\n" * 200_000, "too large"),
    ("gen_pb2.py", "added", b"def f(x):\n    return x\n", "generated"),
    ("gen.py", "added", b"# @generated by tool\ndef f(x):\n    return x\n", "generated"),
]


class TestBadInputNeverCrashes:
    @pytest.mark.parametrize(
        ("path", "status", "content", "why"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
    )
    def test_each_bad_file_is_a_skip_with_a_reason(self, path, status, content, why):
        text = content.decode("latin-1")
        change = FileChange(path, status, _added(text), content)
        src = "def fine(a):\n    b = a * 2\n    return b\n"
        good = FileChange("ok.py", "added", _added(src), src.encode())
        result = go([change, good], context())
        assert [s.path for s in result.report.skips] == [path]
        assert why.lower() in result.report.skips[0].reason.lower()
        assert actions(result) == {"fine": "added"}  # the good file is not lost
        assert checkrun.markdown_report(result.report)

    def test_binary_or_missing_patch(self):
        change = FileChange("blob.py", "modified", None, b"def f():\n    return 1\n")
        result = go([change], context())
        assert "no patch" in result.report.skips[0].reason

    def test_malformed_patch(self):
        change = FileChange("m.py", "modified", "@@ garbage @@\n+x\n", b"x\n")
        result = go([change], context())
        assert "unreadable patch" in result.report.skips[0].reason

    def test_deleted_renamed_empty_and_non_python(self):
        changes = [
            FileChange("gone.py", "removed", "@@ -1,2 +0,0 @@\n-def f():\n-    pass\n", None),
            FileChange("new_name.py", "renamed", None, b"def f():\n    return 1\n", "old_name.py"),
            FileChange("README.md", "modified", "@@ -1 +1 @@\n-a\n+b\n", b"b\n"),
        ]
        for batch in (changes, []):
            result = go(batch, context())
            assert result.report.outcomes == []
            assert result.report.skips == []  # nothing to review is not a skip
            assert checkrun.markdown_report(result.report)

    def test_content_that_could_not_be_read(self):
        change = FileChange("m.py", "modified", "@@ -1 +1,2 @@\n x = 1\n+y = 2\n", None)
        result = go([change], context())
        assert [s.reason for s in result.report.skips] == ["file content unavailable"]

    def test_crlf_tabs_and_encoding_line_survive(self):
        text = "# -*- coding: utf-8 -*-\r\nclass K:\r\n\tdef m(self, a):\r\n\t\tb = a\r\n\t\treturn b\r\n"
        change = FileChange("k.py", "added", _added(text), text.encode())
        result = go([change], context())
        new = result.new_texts["k.py"]
        assert new.startswith("# -*- coding: utf-8 -*-\r\n")
        assert "\n" not in new.replace("\r\n", "")
        assert '\r\n\t"""K."""\r\n' in new
        assert '\r\n\t\t"""M.\r\n\r\n\t\tArgs:\r\n\t\t    a: The a.\r\n' in new
        assert same_code(text, new)


# ----------------------------------------------------------------- through the LLM


def llm_provider(
    origin: str, scenario: str, *, sleep=None, **kw
) -> tuple[OpenAIProvider, openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=API_KEY,
        base_url=origin + "/v1",
        max_retries=0,
        default_headers={"x-fake-scenario": scenario, "x-fake-run": f"pipeline-{scenario}"},
    )

    async def no_sleep(_: float) -> None:
        return None

    provider = OpenAIProvider(
        client, "gpt-4o-mini", timeout=5, retry=RetryPolicy(), sleep=sleep or no_sleep, **kw
    )
    return provider, client


def run_then_close(client, changes, ctx: Context) -> RunResult:
    """Run the pipeline, then close the provider's client (on the same event loop)."""

    async def main() -> RunResult:
        try:
            return await run(changes, ctx)
        finally:
            await client.close()

    return asyncio.run(main())


def run_llm(changes, scenario: str, cassette: str, **ctx_kw) -> tuple[RunResult, int]:
    with recorded(cassette) as rec:
        provider, client = llm_provider(rec.origin, scenario)

        result = run_then_close(client, changes, context(provider, **ctx_kw))
        calls = len(rec.fake.requests) if rec.live else rec.cassette.play_count
    return result, calls


@dataclass
class ForeignRun:
    report: Report
    calls: list[tuple[int, int]]  # (server's prompt tokens, tokens docgen held for the prompt)


def foreign_run(changes, cassette: str, cache, response_format: str = "auto") -> ForeignRun:
    with recorded(cassette) as rec:
        provider, client = llm_provider(
            rec.origin, "foreign_tokens", response_format=response_format
        )
        ctx = context(provider, cache=cache)
        held: list[int] = []
        reserve = ctx.budget.reserve

        def recording_reserve(tokens: int):
            held.append(tokens)
            return reserve(tokens)

        ctx.budget.reserve = recording_reserve  # type: ignore[method-assign]

        report = run_then_close(client, changes, ctx).report
        bodies = [json.loads(r.body) for r in rec.cassette.requests]
        answers = [json.loads(r["body"]["string"]) for r in rec.cassette.responses]
    calls = [
        (answer["usage"]["prompt_tokens"], tokens - body["max_tokens"])
        for answer, body, tokens in zip(answers, bodies, held, strict=True)
    ]
    return ForeignRun(report, calls)


def suggestion_hashes(result: RunResult) -> list[tuple[str, str]]:
    return sorted(
        (o.suggestion.target_id, o.suggestion.docstring_hash)
        for o in result.report.outcomes
        if o.suggestion
    )


class TestThroughTheModel:
    def test_normal(self, sample_changes):
        result, calls = run_llm(sample_changes, "normal", "pipeline_normal")
        report = result.report
        assert actions(result)["cheapest"] == "added"
        assert calls == 1  # six definitions, one batch
        assert report.usage.prompt_tokens > 0 and report.usage.completion_tokens > 0
        assert report.cost_usd > 0
        assert report.usage.total <= report.budget
        assert_invariants(sample_changes, result)

    def test_hostile_output_never_becomes_a_suggestion(self, sample_changes):
        result, calls = run_llm(sample_changes, "hostile", "pipeline_hostile")
        assert calls == 2  # the repair round asked again, and got the same again
        for o in result.report.outcomes:
            if o.target.qualname == "restock":
                # An update takes only the new entries' text: the hostile summary is
                # never used, and the maintainer's lines stay.
                assert o.suggestion is not None and "os.system" not in o.docstring
                assert o.docstring.startswith("Put items back on the shelf.")
                continue
            assert o.suggestion is None
        rejected = [o for o in result.report.outcomes if "triple quote" in o.reason]
        assert len(rejected) == 5
        assert "os.system" not in checkrun.markdown_report(result.report)

    def test_wrong_parameter_names_are_repaired_once(self, sample_changes):
        result, calls = run_llm(sample_changes, "wrong_then_ok", "pipeline_repair")
        assert calls == 2
        assert actions(result)["cheapest"] == "added"
        assert_invariants(sample_changes, result)

    def test_repair_feedback_is_in_words_not_codes(self, sample_changes):
        with recorded("pipeline_repair") as rec:
            provider, client = llm_provider(rec.origin, "wrong_then_ok")

            run_then_close(client, sample_changes, context(provider))
            bodies = [json.loads(r.body) for r in rec.cassette.requests]
        repair = bodies[1]["messages"][1]["content"]
        fixes = [line for line in repair.splitlines() if line.startswith("fix: ")]
        assert "fix: documents parameters the signature does not have: " in repair
        assert fixes and not [f for f in fixes if re.search(r"(?i)\bdg\d{3}", f)]

    def test_a_failed_repair_shows_the_first_answers_reasons(self, sample_changes):
        result, _ = run_llm(sample_changes, "wrong_then_length", "pipeline_repair_truncated")
        cheapest = next(o for o in result.report.outcomes if o.target.qualname == "cheapest")
        assert cheapest.action == Action.SKIPPED
        assert "answer truncated" in cheapest.reason
        assert "the first answer: documents parameters the signature does not have" in (
            cheapest.reason
        )

    def test_a_truncated_answer_is_retried_alone_with_more_room(self, sample_changes):
        """Issue 9, item 7: the batch is cut at max_tokens; each item goes again alone."""
        with recorded("pipeline_length_retry") as rec:
            provider, client = llm_provider(rec.origin, "length_then_ok")
            ctx = context(provider)

            result = run_then_close(client, sample_changes, ctx)
            bodies = [json.loads(r.body) for r in rec.cassette.requests]
        first, retries = bodies[0], bodies[1:]
        assert len(retries) == 6  # the six definitions of the batch, one call each
        items_first = len(re.findall(r"^## ", first["messages"][1]["content"], re.M))
        assert items_first == 6
        share = (first["max_tokens"] - BATCH_ANSWER_OVERHEAD) / 6
        for body in retries:
            assert len(re.findall(r"^## ", body["messages"][1]["content"], re.M)) == 1
            assert body["max_tokens"] > share  # more room than its share of the batch
        assert actions(result)["cheapest"] == "added"
        assert result.report.usage.total <= result.report.budget
        assert ctx.profile.widens_answers  # it learned that answers need more room
        assert any("room to answer" in n for n in result.report.notes)

    def test_foreign_tokenizer_ratio_is_learned_kept_and_reported(self, sample_changes, tmp_path):
        """Issue 9, item 4: a server counting 8 % more prompt tokens than o200k.

        The oracle is the server's own count (``usage.prompt_tokens`` in its answers)
        against what docgen reserved for the prompt (the reservation minus the
        request's ``max_tokens``)."""
        first_cache = SqliteCache(tmp_path / "first.sqlite3")
        # The mode known from the start: the first call is reserved for the mode it is
        # sent in (in auto mode it would hold the dearest mode's count, hiding the gap).
        first = foreign_run(sample_changes, "pipeline_foreign_first", first_cache, "json_schema")
        assert [prompt > held for prompt, held in first.calls] == [True]  # 2 % + 16 is short
        learned = first_cache.get_profile("gpt-4o-mini")
        assert learned is not None and 1.07 <= learned.prompt_ratio <= 1.10
        assert any("corrected by +" in n for n in first.report.notes)
        assert first.report.usage.total <= first.report.budget
        # Another run (another process: the same SQLite file, a fresh docstring cache)
        # reserves with the ratio: the server's count stays within the reservation.
        second_cache = MemoryCache()
        stored = SqliteCache(first_cache.path).get_profile("gpt-4o-mini")
        assert stored is not None
        second_cache.put_profile("gpt-4o-mini", stored)
        second = foreign_run(sample_changes, "pipeline_foreign_second", second_cache)
        assert second.calls and all(prompt <= held for prompt, held in second.calls)
        assert any("corrected by +" in n for n in second.report.notes)

    def test_the_ratio_is_learned_against_the_mode_sent(self, sample_changes):
        """In auto mode the first call is planned for the dearest mode (the server's is
        not known yet); the ratio is learned against the mode the server took, not
        against that guess (which would hide most of the 8 %)."""
        cache = MemoryCache()
        foreign_run(sample_changes, "pipeline_foreign_auto", cache)
        learned = cache.get_profile("gpt-4o-mini")
        assert learned is not None and 1.07 <= learned.prompt_ratio <= 1.10

    def test_budget_is_never_exceeded(self, sample_changes):
        result, _ = run_llm(sample_changes, "normal", "pipeline_small_budget", budget=2_000)
        report = result.report
        assert report.usage.total <= 2_000
        deferred = [o for o in report.outcomes if "budget" in o.reason]
        assert deferred, "a 2,000-token budget cannot cover six definitions"
        assert any(o.action == Action.ADDED for o in report.outcomes)

    def test_second_run_costs_nothing_and_suggests_the_same(self, sample_changes, tmp_path):
        cache = SqliteCache(tmp_path / "cache.sqlite3")
        first, calls1 = run_llm(sample_changes, "normal", "pipeline_normal", cache=cache)
        # The same cassette again: a call would replay (and count), or fail if it differed.
        second, calls2 = run_llm(sample_changes, "normal", "pipeline_normal", cache=cache)
        assert calls1 == 1 and calls2 == 0
        assert second.report.usage.total == 0 and second.report.cache_hits == 6
        assert suggestion_hashes(first) == suggestion_hashes(second)

    def test_auth_failure_is_a_reason_without_the_key(self, sample_changes, caplog):
        caplog.set_level(logging.DEBUG)
        result, _ = run_llm(sample_changes, "unauthorized", "pipeline_unauthorized")
        reasons = {
            o.reason
            for o in result.report.outcomes
            if o.action == Action.SKIPPED and o.target.decision.value != "skip"
        }
        assert reasons == {"model call failed: authentication failed (401)"}
        summary = checkrun.markdown_report(result.report)
        assert API_KEY not in summary and API_KEY[-8:] not in summary
        assert API_KEY not in caplog.text and API_KEY[-8:] not in caplog.text


@pytest.mark.parametrize(
    ("last", "first", "accepted", "shown"),
    [
        (
            "rejected: x",
            "rejected: y",
            False,
            "rejected: x (after a repair round; the first answer: y)",
        ),
        ("rejected: x", "rejected: x", False, "rejected: x"),
        ("", "rejected: y", True, ""),
        (
            "",
            "rejected: y",
            False,
            "no docstring produced (after a repair round; the first answer: y)",
        ),
    ],
    ids=["both", "same", "accepted", "no-last"],
)
def test_repair_reason(last, first, accepted, shown):
    from bot.docstrings.pipeline import repair_reason

    assert repair_reason(last, first, accepted) == shown


class TestUnansweredCalls:
    """Invariant 3 with calls that never answer: a timed-out attempt costs its whole
    reservation (the server may finish and bill it), and no retry goes past the budget."""

    def run_slow(self, changes, budget: int, retries: int) -> tuple[RunResult, Context, int]:
        from tests.fake_openai import serve

        with serve() as (origin, fake):
            client = openai.AsyncOpenAI(
                api_key=API_KEY,
                base_url=origin + "/v1",
                max_retries=0,
                default_headers={"x-fake-scenario": "slow", "x-fake-delay": "1.0"},
            )

            async def no_sleep(_: float) -> None:
                return None

            provider = OpenAIProvider(
                client,
                "gpt-4o-mini",
                timeout=0.3,
                retry=RetryPolicy(max_retries=retries),
                sleep=no_sleep,
                concurrency=1,
            )
            ctx = context(provider, budget=budget)

            result = run_then_close(client, changes, ctx)
            return result, ctx, len(fake.requests)

    def test_each_attempt_is_charged_and_retries_stop_at_the_budget(self, sample_changes):
        result, ctx, sent = self.run_slow(sample_changes, budget=8_000, retries=5)
        report = result.report
        # Six definitions in one batch of ~3,300 tokens (the file's example docstrings
        # included): two attempts fit in 8,000, a third does not and is never sent.
        assert sent == 2
        assert ctx.budget.spent <= ctx.budget.limit and ctx.budget.reserved == 0
        assert ctx.budget.spent > 2 * 1_000  # charged at the reservation, not 0
        assert report.usage.total == 0  # the provider reported nothing
        reasons = {o.reason for o in report.outcomes if o.target.decision.value != "skip"}
        reasons.discard("documented")
        assert len(reasons) == 1
        (reason,) = reasons
        assert reason.startswith("model call failed: request timed out after 0.3 s after 2 attempts")
        assert "not retried: token budget exhausted" in reason
        assert any("2 model call attempts got no answer" in n for n in report.notes)


def test_a_calls_charge_follows_the_learned_ratio():
    """A retry of a call re-reserves with the tokenizer ratio learned since it was sent."""
    from bot.docstrings.model_calls import _charge

    ctx = context()
    batch = Batch((), prompt_tokens=with_margin(2_000), max_tokens=500, estimate=2_000)
    charge = _charge(batch, ctx)
    assert charge.tokens == batch.tokens
    charge.open()
    charge.unanswered()
    ctx.profile = ModelProfile(prompt_ratio=1.08)  # another call's answer landed
    assert charge.again() is None
    assert ctx.budget.reserved == ModelProfile(prompt_ratio=1.08).prompt_reserve(2_000) + 500
    assert ctx.budget.reserved > batch.tokens
