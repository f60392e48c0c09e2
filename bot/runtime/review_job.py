"""A job: review one pull request on GitHub, end to end.

``fetch (github) → pipeline → publish (github)``.  The handler is what
:class:`bot.runtime.queue.pool.WorkerPool` runs for each ``review`` or ``reply`` job.  It keeps the
check run it started in the job's data, so a job resumed after a crash finishes that
check run instead of opening a second one (invariant 6); it never posts a suggestion
that is already on the PR (invariant 4); and whatever goes wrong ends as a line in the
check run, or as a retry later — never as a silently dropped PR (invariant 7).
What the check run concludes and says is decided by the pure :mod:`bot.runtime.conclusion`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot import logs
from bot.config import LoadedRepoConfig, RepoConfig, Settings, load_repo_config
from bot.docstrings.budget import InstallationQuota, TokenBudget
from bot.docstrings.cache import DocstringCache
from bot.docstrings.deadline import Deadline, DeadlineExceeded
from bot.docstrings.deadline import check as check_deadline
from bot.docstrings.extract import collect_docstrings
from bot.docstrings.llm.provider import Provider
from bot.docstrings.models import Action, FileChange, Outcome, Report, Style
from bot.docstrings.pipeline import RunResult, run
from bot.docstrings.quota import Caps, pr_token_budget
from bot.docstrings.render import checkrun, review_comment
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter
from bot.runtime import sentry
from bot.runtime.conclusion import (
    budget_notes,
    config_notes,
    failure_summary,
    final_conclusion,
    retry_note,
    why_not_run,
)
from bot.runtime.events import HELP
from bot.runtime.github.client import InstallationClients, PullRequestAPI
from bot.runtime.github.errors import GitHubError, GitHubUnavailable, NotFound
from bot.runtime.github.heads import FetchLimits
from bot.runtime.github.payloads import ReviewComment
from bot.runtime.github.pulls import PullInfo
from bot.runtime.metrics import Metrics
from bot.runtime.queue.runner import JobContext
from bot.runtime.queue.store import Job, PermanentJobError, RetryLater, RunSpend, Store

log = logging.getLogger(__name__)


@dataclass
class ReviewDeps:
    """Everything a job needs, built once per process."""

    settings: Settings
    clients: InstallationClients
    provider: Provider
    cache: DocstringCache
    counter: TokenCounter
    store: Store
    metrics: Metrics
    clock: Callable[[], float] = time.time


class TimedProvider:
    """A provider whose calls are timed into ``docgen_llm_call_seconds``."""

    def __init__(self, inner: Provider, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name
        self.model = inner.model
        self.offline = inner.offline

    # The pipeline sizes its calls by these (bot.docstrings.model_calls): read through to the inner
    # provider each time, since it learns its response mode on the first answer.
    @property
    def concurrency(self) -> int:
        """Calls the pipeline may have in flight (the inner provider's limit, else 4)."""
        return getattr(self.inner, "concurrency", 4)

    @property
    def known_mode(self) -> str | None:
        """The inner provider's confirmed response mode (None until a server answered)."""
        return getattr(self.inner, "known_mode", None)

    async def generate(self, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.generate(request)
        finally:
            self.metrics.llm_seconds.observe(time.perf_counter() - started)


def _wanted(config: RepoConfig, paths: tuple[str, ...]) -> Callable[[str], bool]:
    def wanted(path: str) -> bool:
        if not path.endswith(".py") or not config.wants(path):
            return False
        return not paths or any(fnmatch.fnmatchcase(path, p) for p in paths)

    return wanted


async def handle(job: Job, ctx: JobContext, deps: ReviewDeps) -> None:
    """Run one job (the WorkerPool handler, with ``deps`` bound by ``make_handler``)."""
    p = job.payload
    fields = {
        "delivery_id": p.get("delivery_id"),
        "repo": f"{p.get('owner')}/{p.get('repo')}",
        "pr": p.get("number"),
        "job_key": job.key,
        "installation_id": p.get("installation_id"),
    }
    with logs.bind(**fields), sentry.job_scope(name=f"docgen.{job.kind}", **fields):
        try:
            api = deps.clients.api(int(p["installation_id"]), p["owner"], p["repo"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentJobError(f"job payload is incomplete: {exc}") from None
        async with api:  # one HTTP client (pool, TLS) for every request of the job
            await _run(job, ctx, deps, api)


def job_deadline(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Deadline:
    """The run's own deadline, ahead of the job runner's timeout (``DOCGEN_JOB_TIMEOUT``).

    The runner's timeout cancels the job silently; stopping a little earlier leaves
    the run time to say on its check run why it stopped.
    """
    timeout = settings.docgen_job_timeout
    seconds = timeout - min(60.0, timeout / 4)
    return Deadline(
        seconds, clock=clock, label=f"its {seconds:g} s time limit (from DOCGEN_JOB_TIMEOUT)"
    )


async def _review_within(
    job: Job, ctx: JobContext, deps: ReviewDeps, api: PullRequestAPI, deadline: Deadline
) -> None:
    """:func:`review` until ``deadline``: awaits are cancelled, threads stop at their
    next check (``deadline`` is cancelled on the way out, whatever ended the run)."""
    limit = asyncio.timeout(deadline.remaining())
    try:
        async with limit:
            await review(job, ctx, deps, api, deadline)
    except TimeoutError:
        if not limit.expired():
            raise  # a timeout of its own (a network read): not the run's deadline
        raise deadline.exceeded() from None
    finally:
        deadline.cancel()


async def _run(job: Job, ctx: JobContext, deps: ReviewDeps, api: PullRequestAPI) -> None:
    """The job's work, and what to tell GitHub and the store when it fails."""
    p = job.payload
    try:
        if p.get("type") == "reply":
            await api.post_issue_comment(int(p["number"]), p.get("body") or HELP)
            return
        await _review_within(job, ctx, deps, api, job_deadline(deps.settings))
    except DeadlineExceeded as exc:
        # Not retried: the same PR would run out of time again.  Re-running the check
        # (or /docgen on fewer paths) starts a new job.
        await _fail_check_run(
            ctx,
            api,
            f"docgen {exc}. Re-run the check to try again, or narrow the run with "
            "`/docgen path/or/glob.py`.",
        )
        raise PermanentJobError(f"run {exc}") from None
    except GitHubUnavailable as exc:
        retry_at = getattr(exc, "retry_at", None) or deps.clock() + 60
        when = time.strftime("%H:%M UTC", time.gmtime(retry_at))
        log.warning("GitHub unavailable; retrying at %s: %s", when, exc)
        note = retry_note("GitHub did not answer", f"docgen tries again at {when}", job)
        await _report_retry(ctx, api, note)
        raise RetryLater(retry_at, f"GitHub unavailable: {exc}") from None
    except NotFound as exc:
        await _fail_check_run(ctx, api, f"Not found on GitHub: {exc}")
        raise PermanentJobError(f"not found on GitHub: {exc}") from None
    except Exception as exc:
        # The detail (which may name internal hosts and paths) goes to the logs only;
        # the check run, public on public repositories, says what happened.
        log.warning("attempt %d failed: %s: %s", job.attempts, type(exc).__name__, exc)
        failed = f"Attempt {job.attempts} stopped on an internal error"
        if job.attempts >= deps.store.max_attempts:
            # The store gives up after this attempt: say so where users look.
            note = retry_note(failed, f"docgen gave up after {job.attempts} attempts", job)
            await _fail_check_run(ctx, api, note)
        else:
            await _report_retry(ctx, api, retry_note(failed, "docgen will retry", job))
        raise
    finally:
        _count_api_calls(api, deps.metrics)


def _count_api_calls(api: PullRequestAPI, metrics: Metrics) -> None:
    for route, n in api.calls.items():
        metrics.github_calls.labels(route.split(" ", 1)[0]).inc(n)
    if api.last_rate_limit_remaining is not None:
        metrics.rate_limit_remaining.set(api.last_rate_limit_remaining)


async def _report_retry(ctx: JobContext, api: PullRequestAPI, reason: str) -> None:
    """Tell the PR, on its running check run, why the run is waiting (best effort)."""
    check_run_id = ctx.data.get("check_run_id")
    if not check_run_id:
        return
    try:
        await api.report_progress(
            int(check_run_id), title="Waiting to retry", summary=failure_summary(reason)
        )
    except Exception as exc:  # GitHub may well be what is failing
        log.info("could not report the retry on the check run: %s", exc)


async def _fail_check_run(ctx: JobContext, api: PullRequestAPI, reason: str) -> None:
    """Complete the job's check run as failed with ``reason`` (best effort)."""
    check_run_id = ctx.data.get("check_run_id")
    if not check_run_id:
        return
    try:
        await api.complete_check_run(
            int(check_run_id),
            conclusion="failure",
            title="docgen could not finish",
            summary=failure_summary(reason),
        )
    except Exception as exc:  # reporting the failure must not hide the failure
        log.warning("could not mark the check run as failed: %s", exc)


async def review(
    job: Job,
    ctx: JobContext,
    deps: ReviewDeps,
    api: PullRequestAPI,
    deadline: Deadline | None = None,
) -> None:
    """Review the job's pull request: one check run, one review of the new suggestions.

    Stops early, on a neutral check run that says why, when the repository runs docgen
    only on request, a fork's PR waits for a maintainer, or the installation has
    nothing left to spend.
    """
    p = job.payload
    options = p.get("options") or {}
    started = time.perf_counter()
    await _acknowledge_command(api, p.get("comment_id"))
    pull = await api.get_pull(int(p["number"]))
    if pull.state != "open":
        log.info("pull request is %s: nothing to do", pull.state)
        return
    loaded = await _repo_config(api, p["owner"], options)
    check_run_id = await _check_run_for(ctx, api, pull.head_sha, job)
    pool = _installation_quota(deps, int(p["installation_id"]))
    stop = why_not_run(deps.settings, loaded.config, options, fork=pull.is_fork, pool=pool)
    if stop is not None:
        await api.complete_check_run(check_run_id, conclusion="neutral", **stop)
        return
    done = await _run_pipeline(job, deps, api, pull, loaded, pool, deadline)
    if ctx.is_superseded():
        await _close_superseded(api, check_run_id)
        return
    check_deadline(deadline, "publishing the review")
    await _publish(deps, api, pull, check_run_id, done, started)


async def _acknowledge_command(api: PullRequestAPI, comment_id: Any) -> None:
    """React with 👀 to the ``/docgen`` comment that asked for this run, if any."""
    if not comment_id:
        return
    try:
        await api.add_reaction(int(comment_id), "eyes")
    except GitHubError as exc:  # a missing reaction must not stop the run
        log.warning("could not react to the command: %s", exc)


async def _repo_config(
    api: PullRequestAPI, owner: str, options: dict[str, Any]
) -> LoadedRepoConfig:
    """The repository's config, with the style a ``/docgen style`` command asked for."""
    # The default branch's config (then the org's): never one the PR author can pick.
    raw_config, source = await api.get_config(owner)
    loaded = load_repo_config(raw_config, source)
    if not options.get("style"):
        return loaded
    return replace(loaded, config=loaded.config.model_copy(update={"style": options["style"]}))


@dataclass(frozen=True)
class _Done:
    """A finished pipeline run, with what its check run's conclusion depends on."""

    result: RunResult
    loaded: LoadedRepoConfig
    budget: TokenBudget


async def _run_pipeline(
    job: Job,
    deps: ReviewDeps,
    api: PullRequestAPI,
    pull: PullInfo,
    loaded: LoadedRepoConfig,
    pool: InstallationQuota | None,
    deadline: Deadline | None,
) -> _Done:
    """Read the PR's files, run the pipeline on them and record what it spent."""
    config = loaded.config
    options = job.payload.get("options") or {}
    paths = tuple(options.get("paths") or ())
    # Contents at the head read above (not re-read: a push meanwhile sends its own
    # synchronize event, whose job supersedes this one).
    check_deadline(deadline, "reading the pull request's files from GitHub")
    fetched = await api.fetch_changes(
        pull,
        wanted=_wanted(config, paths),
        limits=FetchLimits(config.max_file_bytes, deps.settings.docgen_max_run_bytes),
    )
    changes = _only_wanted(fetched.changes, config, paths)
    spent = deps.store.spent(job.key)
    limit = pr_token_budget(deps.settings, config, fork=pull.is_fork)
    budget = TokenBudget(limit, spent=min(limit, spent.tokens), pool=pool)
    # A parse of the changed files, up to a byte cap: in a thread, off the loop that
    # answers webhooks, stopping at the deadline.
    sample = await asyncio.to_thread(
        style_sample, changes, deps.settings.docgen_style_sample_bytes, deadline
    )
    notes = [*loaded.errors, *fetched.notes, *sample.notes(), *config_notes(fetched.changes)]
    notes += budget_notes(spent, limit, fork=pull.is_fork, offline=deps.provider.offline)
    context = Context(
        config=config,
        provider=deps.provider,
        cache=deps.cache,
        counter=deps.counter,
        budget=budget,
        repo_docstrings=sample.docstrings,
        style_override=Style(options["style"]) if options.get("style") else None,
        notes=notes,
        deadline=deadline,
    )
    result = await run(changes, context)
    _record_spend(job, deps, result.report, pull.head_sha)
    return _Done(result, loaded, budget)


def _record_spend(job: Job, deps: ReviewDeps, report: Report, head_sha: str) -> None:
    """Add the run's tokens and cost to the PR's ledger and the metrics."""
    if not report.usage.total:
        return
    p = job.payload
    deps.store.add_spend(
        job.key,
        RunSpend(
            model=report.model,
            prompt_tokens=report.usage.prompt_tokens,
            completion_tokens=report.usage.completion_tokens,
            cost_usd=report.cost_usd,
            job_id=job.id,
            head_sha=head_sha,
            installation_id=int(p["installation_id"]),
            repo=f"{p['owner']}/{p['repo']}",
        ),
    )
    deps.metrics.record_usage(report.usage, report.cost_usd)


async def _publish(
    deps: ReviewDeps,
    api: PullRequestAPI,
    pull: PullInfo,
    check_run_id: int,
    done: _Done,
    started: float,
) -> None:
    """Post the review, then complete the check run with the report."""
    report = done.result.report
    rejected = await _publish_review(api, pull.number, pull.head_sha, done.result)
    _mark_rejected(report, rejected)
    for o in report.outcomes:
        deps.metrics.suggestions.labels(o.action.value).inc()
    report.elapsed_s = time.perf_counter() - started
    report.notes.append(
        f"GitHub API calls for this run: {sum(api.calls.values())} (before publishing the summary)."
    )
    conclusion, title = final_conclusion(report, done.loaded, done.budget)
    await api.complete_check_run(
        check_run_id,
        conclusion=conclusion,
        title=title,
        summary=checkrun.markdown_report(report),
        annotations=checkrun.annotations(report),
        text=checkrun.offered_text(report),
    )
    log.info(
        "reviewed: %s",
        title,
        extra={"conclusion": conclusion, "tokens": report.usage.total, "cost_usd": report.cost_usd},
    )


def _installation_quota(deps: ReviewDeps, installation_id: int) -> InstallationQuota | None:
    """The installation's caps as the budget's pool; None when no cap is set."""
    caps = Caps.from_settings(deps.settings)
    if not caps.active:
        return None
    return InstallationQuota(deps.store, installation_id, caps, deps.store.clock)


async def _check_run_for(ctx: JobContext, api: PullRequestAPI, head_sha: str, job: Job) -> int:
    """The check run of this job: the one it already started (after a crash), or a new one."""
    data = ctx.data
    if data.get("check_run_id") and data.get("check_run_sha") == head_sha:
        return int(data["check_run_id"])
    # Runs opened by older jobs for this PR that were superseded before finishing.
    for old in ctx.superseded_data():
        if old.get("check_run_id") and old.get("check_run_sha") != head_sha:
            try:
                await _close_superseded(api, int(old["check_run_id"]))
            except GitHubError as exc:
                log.warning("could not close a superseded check run: %s", exc)
    check_run_id = await api.create_check_run(head_sha, external_id=job.key)
    ctx.save_data(check_run_id=check_run_id, check_run_sha=head_sha)
    return check_run_id


async def _close_superseded(api: PullRequestAPI, check_run_id: int) -> None:
    await api.complete_check_run(
        check_run_id,
        conclusion="cancelled",
        title="Superseded by a newer push",
        summary="A newer commit was pushed while this run was going; its own check run has the results.",
    )


def _only_wanted(
    changes: list[FileChange], config: RepoConfig, paths: tuple[str, ...]
) -> list[FileChange]:
    """Python files in scope (other files are not ours to report on)."""
    wanted = _wanted(config, paths)
    out = []
    for c in changes:
        if not c.path.endswith(".py"):
            continue
        if paths and not wanted(c.path):
            continue  # /docgen path … narrowed the run: others are not "skipped"
        out.append(c)
    return out


@dataclass(frozen=True)
class StyleSample:
    """Docstrings of the fetched files, as the repository's style sample (no clone)."""

    docstrings: list[str]
    read_bytes: int
    cap: int
    left_out: tuple[str, ...] = ()

    def notes(self) -> list[str]:
        if not self.left_out:
            return []
        names = ", ".join(f"`{p}`" for p in self.left_out)
        return [
            f"The style sample read {self.read_bytes:,} bytes of files, up to its "
            f"{self.cap:,}-byte cap (DOCGEN_STYLE_SAMPLE_BYTES); left out of it: {names}"
        ]


def style_sample(
    changes: list[FileChange], max_bytes: int, deadline: Deadline | None = None
) -> StyleSample:
    """Parse the fetched files for their docstrings, at most ``max_bytes`` of them.

    Parsing costs about a second per MB: a file that would take the sample past the
    cap is left out (and named); smaller ones after it may still fit.
    """
    out: list[str] = []
    left: list[str] = []
    used = 0
    for c in changes:
        if c.head is None:
            continue
        if used + len(c.head) > max_bytes:
            left.append(c.path)
            continue
        check_deadline(deadline, f"reading {c.path} for the style sample")
        used += len(c.head)
        out += collect_docstrings(c.head)
    return StyleSample(out, used, max_bytes, tuple(left))


async def _publish_review(
    api: PullRequestAPI, number: int, head_sha: str, result: RunResult
) -> list[tuple[Outcome, str]]:
    """Post new suggestions as one review; return the outcomes GitHub refused, with why."""
    outcomes = [o for o in result.report.outcomes if o.suggestion is not None]
    if not outcomes:
        return []
    existing = await api.existing_markers(number)
    fresh: list[tuple[Outcome, ReviewComment]] = []
    for o in outcomes:
        s = o.suggestion
        assert s is not None
        if (s.target_id, s.docstring_hash) in existing:
            continue  # already on the PR (same function, same text): post nothing new
        body = review_comment.comment_for(o)
        if body is None:
            continue
        fresh.append((o, ReviewComment.from_suggestion(s, body)))
    if not fresh:
        return []
    posted = await api.create_review(number, head_sha, [c for _, c in fresh])
    by_comment = {id(c): o for o, c in fresh}
    return [(by_comment[id(c)], reason) for c, reason in posted.rejected]


def _mark_rejected(report: Report, rejected: list[tuple[Outcome, str]]) -> None:
    if not rejected:
        return
    bad = {id(o): why for o, why in rejected}
    report.outcomes = [
        replace(
            o,
            action=Action.SKIPPED,
            reason=f"GitHub refused the comment: {bad[id(o)]}",
            suggestion=None,
        )
        if id(o) in bad
        else o
        for o in report.outcomes
    ]


def make_handler(deps: ReviewDeps) -> Callable[[Job, JobContext], Any]:
    async def handler(job: Job, ctx: JobContext) -> None:
        started = time.perf_counter()
        try:
            await handle(job, ctx, deps)
            deps.metrics.job_results.labels("done").inc()
        except Exception:
            deps.metrics.job_results.labels("error").inc()
            raise
        finally:
            deps.metrics.job_seconds.observe(time.perf_counter() - started)

    return handler
