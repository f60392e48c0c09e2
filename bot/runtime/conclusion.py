"""What a review's check run concludes and says: pure functions of the run's facts.

The conclusion and title of a finished run, why a run stops before it starts, the
notes on budget and config, and the retry and failure texts.  Check runs are public on
public repositories: these texts never quote an exception or a secret.
"""

from __future__ import annotations

import re
from typing import Any

from bot import logs
from bot.config import LoadedRepoConfig, RepoConfig, Settings
from bot.docstrings.budget import CapReached, InstallationQuota, TokenBudget
from bot.docstrings.models import Action, Decision, FileChange, Report
from bot.docstrings.quota import fork_runs_automatically
from bot.docstrings.render import checkrun, markdown
from bot.runtime.github.payloads import GENERATE_ACTION, Conclusion
from bot.runtime.queue.store import Job
from bot.runtime.usage import Totals


def conclusion_for(
    report: Report, config_errors: bool, config: RepoConfig
) -> tuple[Conclusion, str]:
    """The check run's conclusion and title for a finished run.

    failure: the config is broken, or a coverage threshold is set and definitions were
    left undocumented (budget exhausted, model failures); neutral: nothing to do, or
    parts were skipped or only offered (to apply by hand); success: every definition
    that needed a docstring got a suggestion.
    """
    title = checkrun.check_title(report)
    left = [
        o
        for o in report.outcomes
        if o.action == Action.OFFERED
        or (o.action == Action.SKIPPED and o.target.decision in (Decision.MISSING, Decision.STALE))
    ]
    if config_errors:
        return "failure", f"{title} — .github/docgen.yml has errors"
    if (
        config.coverage_threshold is not None
        and report.coverage_after.percent < config.coverage_threshold
    ):
        return (
            "failure",
            f"{title} — coverage {report.coverage_after.percent:.1f}% is below {config.coverage_threshold:g}%",
        )
    suggested = any(o.suggestion is not None for o in report.outcomes)
    if left or report.skips or not suggested:
        return "neutral", title
    return "success", title


_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def retry_note(what: str, next_step: str, job: Job) -> str:
    """A retry or give-up note for the check run: what happened, in the PR author's
    terms, and the delivery id the operator finds the details under in the logs.

    Never the exception's text: check runs are public on public repositories, and an
    error message can name internal hosts, paths or addresses.
    """
    delivery = job.delivery_id or str(job.payload.get("delivery_id") or "")
    where = (
        f" The details are in docgen's logs under delivery `{delivery}`."
        if _DELIVERY_ID.fullmatch(delivery)
        else " The details are in docgen's logs."
    )
    return f"{what}; {next_step}.{where}"


def failure_summary(reason: str) -> str:
    """Why a run waits or failed, as check-run Markdown: no secrets, nothing live.

    The reason quotes errors that may carry PR text (paths, GitHub's messages): it is
    shown inert, so it pings and links no one.
    """
    return markdown.inline_text(logs.REDACTOR(reason), 2_000)


def why_not_run(
    settings: Settings,
    config: RepoConfig,
    options: dict[str, Any],
    *,
    fork: bool,
    pool: InstallationQuota | None,
) -> dict[str, Any] | None:
    """Why this run stops before reading a file, as its neutral check run's title,
    summary and buttons; None when it goes ahead."""
    forced = bool(options.get("force"))
    if not config.auto_run and not forced:
        return {
            "title": "docgen is set to run on request",
            "summary": "`auto_run` is off in `.github/docgen.yml`. Press **Generate docstrings** "
            "above, or comment `/docgen` on the pull request.",
            "actions": [GENERATE_ACTION],
        }
    if fork and not forced and not fork_runs_automatically(settings, config):
        return {
            "title": "docgen runs on fork pull requests on request",
            "summary": "This pull request comes from a fork, and docgen is set to review forks "
            "only when asked. A maintainer can press **Generate docstrings** above, or "
            "comment `/docgen`.",
            "actions": [GENERATE_ACTION],
        }
    hit = pool.exhausted() if pool is not None else None
    if hit is not None:  # nothing to spend: say so once, and do not retry (no RetryLater)
        return {"title": hit.title(), "summary": hit.message()}
    return None


def budget_notes(spent: Totals, limit: int, *, fork: bool, offline: bool) -> list[str]:
    """The summary's lines about what this PR may spend, and on which provider."""
    notes = []
    if spent.runs:
        notes.append(
            f"This PR has used {spent.tokens:,} of its {limit:,}-token budget in {spent.runs} "
            f"earlier run(s) (${spent.cost_usd:.4f})."
        )
    if fork:
        notes.append(f"This pull request comes from a fork: its budget is {limit:,} tokens.")
    if offline:
        notes.append(
            "No LLM is configured: suggestions are signature-derived skeletons. Edit them before committing."
        )
    return notes


def final_conclusion(
    report: Report, loaded: LoadedRepoConfig, budget: TokenBudget
) -> tuple[Conclusion, str]:
    """:func:`conclusion_for`, unless an installation cap stopped the run."""
    conclusion, title = conclusion_for(report, bool(loaded.errors), loaded.config)
    if isinstance(budget.refused, CapReached):
        # Not the PR's fault, and not a failure to retry: neutral, with which cap and when.
        report.notes.append(budget.refused.hit.message())
        conclusion = "failure" if loaded.errors else "neutral"
        title = f"{budget.refused.hit.title()} — {title}"
    return conclusion, title


_CONFIG_PATHS = frozenset({".github/docgen.yml", ".github/docgen.yaml"})


def config_notes(changes: list[FileChange]) -> list[str]:
    """A PR that edits the config runs under the default branch's: say so."""
    if not any(c.path in _CONFIG_PATHS for c in changes):
        return []
    return [
        "This PR changes `.github/docgen.yml`: docgen reads its settings from the default"
        " branch, so the change applies to pull requests once it is merged."
    ]
