"""The check run's conclusion (``conclusion.conclusion_for``) and the coverage gate.

GitHub's check-run conclusions:
https://docs.github.com/en/rest/checks/runs#update-a-check-run (success, neutral,
failure, ...).  docgen's rules: failure when the config is broken or the docstring
coverage of the changed files after the suggestions is below ``coverage_threshold``;
success when every definition that needed a docstring got a suggestion; neutral
otherwise (nothing to do, something skipped or only offered).
"""

from __future__ import annotations

import pytest

from bot.config import RepoConfig, Settings, load_repo_config
from bot.docstrings.models import Action, Coverage, Decision, Outcome, Report, Skip, Suggestion
from bot.runtime.conclusion import budget_notes, conclusion_for, why_not_run
from bot.runtime.usage import Totals
from tests.factories import make_target


def added(name: str, line: int) -> Outcome:
    t = make_target(path="m.py", qualname=name, start=line, def_line=line, header_end=line)
    body = (f"def {name}():", f'    """Do {name}."""')
    return Outcome(t, Action.ADDED, suggestion=Suggestion("m.py", line, line, body, t.id, "h"))


def skipped(name: str, line: int, decision: Decision = Decision.MISSING) -> Outcome:
    t = make_target(qualname=name, start=line, def_line=line, header_end=line, decision=decision)
    return Outcome(t, Action.SKIPPED, reason="token budget exhausted")


def report(outcomes: list[Outcome], before: Coverage, after: Coverage, **kw) -> Report:
    return Report(outcomes=outcomes, coverage_before=before, coverage_after=after, **kw)


EVERYTHING_SUGGESTED = report([added("a", 1), added("b", 5)], Coverage(2, 4), Coverage(4, 4))
ONE_LEFT = report([added("a", 1), skipped("b", 5)], Coverage(2, 4), Coverage(3, 4))
NOTHING_TO_DO = report([], Coverage(0, 0), Coverage(0, 0))
A_FILE_SKIPPED = report(
    [added("a", 1)], Coverage(0, 1), Coverage(1, 1), skips=[Skip("gen.py", "generated file")]
)
ONLY_PRIVATE_SKIPPED = report(
    [added("a", 1), skipped("_p", 5, Decision.SKIP)], Coverage(0, 1), Coverage(1, 1)
)


@pytest.mark.parametrize(
    ("rep", "threshold", "expected"),
    [
        pytest.param(EVERYTHING_SUGGESTED, None, "success", id="all-suggested"),
        pytest.param(EVERYTHING_SUGGESTED, 100, "success", id="all-suggested-threshold-met"),
        pytest.param(ONLY_PRIVATE_SKIPPED, None, "success", id="private-skip-is-not-left"),
        pytest.param(ONE_LEFT, None, "neutral", id="one-left-no-threshold"),
        pytest.param(ONE_LEFT, 75, "neutral", id="one-left-threshold-met-exactly"),
        pytest.param(ONE_LEFT, 75.1, "failure", id="one-left-below-threshold"),
        pytest.param(NOTHING_TO_DO, None, "neutral", id="nothing-to-do"),
        pytest.param(NOTHING_TO_DO, 100, "neutral", id="nothing-to-do-is-not-below"),
        pytest.param(A_FILE_SKIPPED, None, "neutral", id="file-skipped"),
    ],
)
def test_conclusion(rep: Report, threshold: float | None, expected: str) -> None:
    conclusion, title = conclusion_for(rep, False, RepoConfig(coverage_threshold=threshold))
    assert conclusion == expected
    assert title.startswith("docgen: ")


def test_below_threshold_says_by_how_much_in_the_title() -> None:
    config = load_repo_config("coverage_threshold: 80\n").config
    assert config.coverage_threshold == 80
    conclusion, title = conclusion_for(ONE_LEFT, False, config)
    assert conclusion == "failure"
    assert title.endswith("— coverage 75.0% is below 80%")


def test_a_broken_config_fails_the_check() -> None:
    loaded = load_repo_config("coverage_threshold: lots\n")
    assert loaded.errors  # the bad value is a message, the run goes on with defaults
    assert loaded.config.coverage_threshold is None
    conclusion, title = conclusion_for(EVERYTHING_SUGGESTED, True, loaded.config)
    assert conclusion == "failure" and title.endswith(".github/docgen.yml has errors")


@pytest.mark.parametrize("value", ["-1", "101"])
def test_threshold_out_of_range_is_a_config_error(value: str) -> None:
    loaded = load_repo_config(f"coverage_threshold: {value}\n")
    assert loaded.errors and loaded.config.coverage_threshold is None


# ------------------------------------------------------------ before the run starts


@pytest.mark.parametrize(
    ("config", "options", "fork", "title"),
    [
        pytest.param(RepoConfig(), {}, False, None, id="runs"),
        pytest.param(
            RepoConfig(auto_run=False),
            {},
            False,
            "docgen is set to run on request",
            id="on-request",
        ),
        pytest.param(RepoConfig(auto_run=False), {"force": True}, False, None, id="forced"),
        pytest.param(
            RepoConfig(fork_auto_run=False),
            {},
            True,
            "docgen runs on fork pull requests on request",
            id="fork-waits",
        ),
        pytest.param(RepoConfig(fork_auto_run=False), {}, False, None, id="not-a-fork"),
        pytest.param(
            RepoConfig(fork_auto_run=False), {"force": True}, True, None, id="fork-forced"
        ),
    ],
)
def test_why_a_run_stops_before_it_starts(config, options, fork, title):
    stop = why_not_run(Settings(_env_file=None), config, options, fork=fork, pool=None)
    assert (stop and stop["title"]) == title
    if stop is not None:  # a button to start it by hand (check-run requested_action)
        assert [a.identifier for a in stop["actions"]] == ["generate"]


def test_budget_notes_say_what_was_spent_and_why_it_is_smaller():
    spent = Totals(runs=2, prompt_tokens=1_000, completion_tokens=234, cost_usd=0.0123)
    notes = budget_notes(spent, 5_000, fork=True, offline=False)
    assert notes == [
        "This PR has used 1,234 of its 5,000-token budget in 2 earlier run(s) ($0.0123).",
        "This pull request comes from a fork: its budget is 5,000 tokens.",
    ]
    assert budget_notes(Totals(), 5_000, fork=False, offline=False) == []
