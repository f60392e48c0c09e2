"""``docgen review``: the App's pipeline on a local checkout, printed or applied.

The same settings, the same provider choice (an LLM when a key is set, the offline
skeleton writer when not) and the same checks as the App; the exit code says whether
the checks passed (:mod:`bot.cli.errors`).
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from bot.cli.errors import EXIT_FAILED, EXIT_OK, UsageError, load_settings
from bot.cli.output import apply, print_all, write_quietly
from bot.config import (
    LoadedRepoConfig,
    RepoConfig,
    Settings,
    load_repo_config,
    read_repo_config_file,
)
from bot.docstrings import progress as progress_mod
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import DocstringCache, MemoryCache, SqliteCache
from bot.docstrings.llm.factory import make_provider
from bot.docstrings.llm.provider import ConfigError, Provider
from bot.docstrings.localgit import DocstringSample, GitError, LocalChanges, read_blob, read_changes
from bot.docstrings.model_calls import MODEL_FAILED
from bot.docstrings.models import Action, Decision, Outcome, Style
from bot.docstrings.pipeline import RunResult, run
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, encoding_for_model

GLOB_CHARS = frozenset("*?[")
OFFLINE_NOTE = (
    "No LLM key configured (OPENAI_API_KEY or AZURE_OPENAI_*): docstrings are "
    "signature-derived skeletons from the offline provider. Edit them before committing."
)


def review(
    path: Path | Sequence[str],
    base: str,
    head: str | None,
    args: argparse.Namespace,
    out: TextIO | None = None,
) -> int:
    """Run the pipeline on a checkout and print (and maybe apply) the result.

    ``path`` is the repository (a Path) or the PATH arguments limiting the review.
    """
    out = out or sys.stdout
    paths = [str(path)] if isinstance(path, Path) else list(path)
    repo_dir = _repo_dir(paths)
    settings = _settings(args)
    try:
        provider = make_provider(settings)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        local = read_changes(repo_dir, base, head)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    in_scope = _scope_filter(local.root, paths)
    changes = [c for c in local.changes if in_scope(c.path)]
    ctx = _context(args, settings, provider, local, [c.path for c in changes])
    # A line on stderr while it runs, when a person is watching (a terminal).
    ctx.progress = progress_mod.for_stream(sys.stderr, quiet=args.quiet)
    with ctx.progress:
        result = asyncio.run(run(changes, ctx))
    return _report(result, args, ctx.config, local, provider.offline, out)


def _context(
    args: argparse.Namespace,
    settings: Settings,
    provider: Provider,
    local: LocalChanges,
    paths: list[str],
) -> Context:
    """The pipeline's context for a local review: config at --head, budget, counter."""
    loaded = _repo_config(local.root, local.head_sha)
    config = loaded.config
    if args.style == "auto":  # detect, even where the config forces a style
        config = config.model_copy(update={"style": "auto"})
    # --budget (checked positive by _settings), else the repository's, else the process's.
    limit = args.budget or config.budget or settings.docgen_token_budget
    # Loaded on the first count: the offline provider never counts (issue 13).
    try:
        counter = TokenCounter.lazy(encoding_for_model(provider.model, settings.docgen_encoding))
    except ValueError as exc:  # DOCGEN_ENCODING names no vendored encoding
        raise UsageError(f"DOCGEN_ENCODING: {exc}") from None
    return Context(
        config=config,
        provider=provider,
        cache=_cache(settings),
        counter=counter,
        budget=TokenBudget(limit),
        repo_docstrings=DocstringSample(local.root, paths),
        style_override=Style(args.style) if args.style not in (None, "auto") else None,
        notes=[*loaded.errors, *([OFFLINE_NOTE] if provider.offline else [])],
        # Not posting to GitHub: any changed definition can be documented in place,
        # wherever its docstring lies relative to the diff's hunks.
        within_hunks=False,
    )


def _report(
    result: RunResult,
    args: argparse.Namespace,
    config: RepoConfig,
    local: LocalChanges,
    offline: bool,
    out: TextIO,
) -> int:
    """Apply (with --apply), print, and say on stderr which checks failed: the exit code."""
    silent = _no_model_answered(result, offline)
    if silent:
        result.report.notes.append(silent)
    # Files first: a reader that stops early (`| head`) must not stop --apply.
    applied: list[str] = []
    not_applied: list[str] = []
    if getattr(args, "apply", False):
        applied, not_applied = apply(local.root, local.head_sha, result)
    write_quietly(out, lambda: print_all(result, args, out, [*applied, *not_applied]))
    failures = _failures(result, args, config, bool(silent), not_applied)
    for line in failures:
        print(f"docgen: {line}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    update: dict[str, object] = {}
    if args.model:
        update["docgen_model"] = args.model
    if args.budget is not None:
        if args.budget <= 0:
            raise UsageError("--budget must be a positive number of tokens")
        update["docgen_token_budget"] = args.budget
    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        raise UsageError("--fail-under must be a percentage between 0 and 100")
    if args.offline:
        update["docgen_provider"] = "offline"
    return settings.model_copy(update=update)


def _cache(settings: Settings) -> DocstringCache:
    if settings.docgen_data_dir is None:
        return MemoryCache()
    try:
        settings.docgen_data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteCache(settings.docgen_data_dir / "cache.sqlite3")
    except OSError as exc:
        raise UsageError(f"DOCGEN_DATA_DIR is not writable: {exc.strerror}") from None


def _repo_dir(paths: Sequence[str]) -> Path:
    """Where to look for the repository: the first existing PATH (or its directory).

    A PATH that does not exist is an error, unless it is a glob (matched later).
    """
    found: Path | None = None
    for raw in paths:
        p = Path(raw)
        if p.exists():
            found = found or (p if p.is_dir() else p.parent)
        elif not GLOB_CHARS.intersection(raw):
            raise UsageError(f"{raw} does not exist")
    return found or Path(".")


def _scope_filter(root: Path, paths: Sequence[str]) -> Callable[[str], bool]:
    """Which repository paths the PATH arguments select (all of them without any).

    Like ``/docgen path`` in the App: a file, everything under a directory, or a glob
    (relative to the current directory; ``*`` matches across ``/`` as in the App).
    """
    top = root.resolve()
    exact: set[str] = set()
    prefixes: list[str] = []
    globs: list[str] = []
    for raw in paths:
        full = Path(raw).absolute()
        is_glob = not full.exists()
        try:
            rel = (full if is_glob else full.resolve()).relative_to(top).as_posix()
        except ValueError:
            raise UsageError(f"{raw} is outside the repository {root}") from None
        if is_glob:
            globs.append(rel)
        elif rel == ".":
            return lambda _path: True
        elif full.is_dir():
            prefixes.append(rel + "/")
        else:
            exact.add(rel)
    if not paths:
        return lambda _path: True

    def wanted(path: str) -> bool:
        return (
            path in exact
            or any(path.startswith(d) for d in prefixes)
            or any(fnmatch.fnmatchcase(path, g) for g in globs)
        )

    return wanted


def _repo_config(root: Path, head_sha: str | None) -> LoadedRepoConfig:
    """``.github/docgen.yml`` as the reviewed change has it: at --head, else on disk."""
    if head_sha is None:
        return read_repo_config_file(root)
    for name in ("docgen.yml", "docgen.yaml"):
        text = read_blob(root, head_sha, f".github/{name}")
        if text is not None:
            return load_repo_config(text, f".github/{name}")
    return LoadedRepoConfig(RepoConfig())


def _no_model_answered(result: RunResult, offline: bool) -> str:
    """A note when every call to the model failed (unreachable server, bad key), else ""."""
    if offline:
        return ""
    outcomes = result.report.outcomes
    failed = [o for o in outcomes if o.reason.startswith(MODEL_FAILED)]
    done = (Action.ADDED, Action.UPDATED, Action.OFFERED)
    if not failed or any(o.action in done for o in outcomes):
        return ""
    first = failed[0].reason.removeprefix(MODEL_FAILED).strip(" :")
    return (
        f"no model answered ({len(failed)} definitions left undocumented; first error: "
        f"{first}). Check OPENAI_BASE_URL and the key, or run offline with --offline "
        "(signature-derived skeletons)."
    )


def _failures(
    result: RunResult,
    args: argparse.Namespace,
    config: RepoConfig,
    silent: bool,
    not_applied: Sequence[str],
) -> list[str]:
    """Why the run fails (exit 1), one line each; empty when it passes."""
    out: list[str] = []
    if not_applied:
        out.append(f"--apply: {len(not_applied)} file(s) not applied (see above)")
    if args.strict:
        left = _undocumented(result)
        if left:
            out.append(f"--strict: {len(left)} changed definition(s) left without a docstring:")
            out += [
                f"  {o.target.path}:{o.target.def_line} {o.target.qualname} ({o.reason})"
                for o in left
            ]
        if silent:
            out.append("--strict: no model answered (see the note above)")
    threshold = args.fail_under if args.fail_under is not None else config.coverage_threshold
    after = result.report.coverage_after
    if threshold is not None and after.percent < threshold:
        source = "--fail-under" if args.fail_under is not None else "coverage_threshold"
        out.append(
            f"{source}: docstring coverage of the changed files after the suggestions is "
            f"{after.percent:.1f}% ({after.documented}/{after.total}), below {threshold:g}%"
        )
    return out


def _undocumented(result: RunResult) -> list[Outcome]:
    # Out-of-scope definitions (private, tests, ...) carry Decision.SKIP; anything that
    # needed a docstring and did not get one is what --strict reports.
    return [
        o
        for o in result.report.outcomes
        if o.action == Action.SKIPPED and o.target.decision in (Decision.MISSING, Decision.STALE)
    ]

