"""The ``docgen`` command line.

``docgen review`` runs the App's pipeline on a local checkout: the same settings, the
same provider choice (an LLM when a key is set, the offline skeleton writer when not),
the same checks.  ``docgen demo`` builds a throw-away repository with a sample pull
request and reviews it, to see docgen work on a fresh machine.

Exit codes: 0 ok; 1 a check failed (``--strict`` with definitions left undocumented or
no model answering, coverage below ``--fail-under`` / ``coverage_threshold``, or an
``--apply`` that could not write a file), each with a line on stderr saying why; 2 usage
or configuration error, with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from bot import __version__, render
from bot import progress as progress_mod
from bot import usage as usage_mod
from bot.budget import TokenBudget, TokenCounter, encoding_for_model
from bot.cache import DocstringCache, MemoryCache, SqliteCache
from bot.config import (
    LoadedRepoConfig,
    RepoConfig,
    Settings,
    load_repo_config,
    read_repo_config_file,
)
from bot.generate import ConfigError, make_provider
from bot.localgit import DocstringSample, GitError, read_blob, read_changes, require_git
from bot.models import Action, Decision, Outcome, Style
from bot.pipeline import MODEL_FAILED, Context, RunResult, run

EXIT_OK, EXIT_UNDOCUMENTED, EXIT_USAGE = 0, 1, 2
EXIT_FAILED = EXIT_UNDOCUMENTED  # any check that failed: one code for CI, the reason on stderr
EXIT_CODES_HELP = """exit codes:
  0  done (suggestions printed or applied)
  1  a check failed: --strict and definitions left without a docstring, or no model
     answered; coverage below --fail-under (or coverage_threshold in .github/docgen.yml);
     --apply could not write a file it was asked to.  stderr says which.
  2  usage or configuration error (one line on stderr)"""
GLOB_CHARS = frozenset("*?[")


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docgen",
        description="Write missing Python docstrings for the functions a change touches.",
    )
    parser.add_argument("--version", action="version", version=f"docgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    review = sub.add_parser(
        "review",
        help="review a local git checkout like a pull request",
        # Raw formatting keeps the exit-code table's lines: the description is wrapped here.
        description="Document the functions changed between the merge base of --base and\n"
        "--head (default: the working tree).  .github/docgen.yml is read from --head's\n"
        "commit when given, else from the working tree.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    review.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="review only these files, directories or (quoted) globs; the repository is "
        "the one holding the first PATH (default: the whole repository at .)",
    )
    _add_review_options(review)
    review.add_argument("--base", required=True, help="the branch or commit the change is based on")
    review.add_argument(
        "--head", default=None, help="the commit to review (default: the working tree)"
    )
    review.add_argument(
        "--apply", action="store_true", help="write the docstrings into the working tree"
    )

    demo = sub.add_parser(
        "demo",
        help="review a bundled sample pull request in a new repository",
        description="Create a git repository with a sample pull request (a temporary "
        "directory, printed) and review it.",
    )
    _add_review_options(demo)
    demo.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the sample repository to try --apply on (default); --no-keep removes it",
    )

    serve = sub.add_parser(
        "serve",
        help="run the GitHub App: webhooks, in-process workers, SQLite journal",
        description="Run the GitHub App (env: GITHUB_APP_ID, GITHUB_PRIVATE_KEY or "
        "GITHUB_PRIVATE_KEY_PATH, GITHUB_WEBHOOK_SECRET, DOCGEN_DATA_DIR, ...).",
    )
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (env PORT, default 8000)")
    serve.add_argument(
        "--web-processes",
        type=int,
        default=None,
        metavar="N",
        help="web processes sharing the port (env DOCGEN_WEB_PROCESSES, default 1)",
    )

    sub.add_parser(
        "worker",
        help="run job workers only (scale-out mode: needs REDIS_URL)",
        description="Process review jobs from Redis (REDIS_URL), on any machine.",
    )

    usage = sub.add_parser(
        "usage",
        help="LLM tokens and cost per installation, repository and month",
        description="Print what docgen spent, from the journal the App writes: the SQLite "
        "file in DOCGEN_DATA_DIR, or Redis when REDIS_URL is set. Months are UTC.",
    )
    usage.add_argument("--format", choices=("table", "json"), default="table")
    usage.add_argument("--month", default=None, metavar="YYYY-MM", help="only this month")
    usage.add_argument(
        "--installation", type=int, default=None, metavar="ID", help="only this installation"
    )

    setup = sub.add_parser(
        "setup",
        help="create the GitHub App from app.yml (manifest flow) and write a .env",
        description="Serve a local page that registers the App from its manifest, receive "
        "GitHub's code, exchange it and write GITHUB_APP_ID, GITHUB_PRIVATE_KEY and "
        "GITHUB_WEBHOOK_SECRET to an .env file (mode 0600).",
    )
    setup.add_argument(
        "--org", default=None, help="register under this organization (default: your user)"
    )
    setup.add_argument(
        "--webhook-url", required=True, help="where GitHub will POST webhooks: https://HOST/webhook"
    )
    setup.add_argument("--name", default="docgen", help="the App's name on GitHub")
    setup.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    setup.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on an address other machines can reach (the page hands out the "
        "registration: use only on a network that is yours alone)",
    )
    setup.add_argument("--port", type=int, default=8765)
    setup.add_argument("--env-file", default=".env", help="where to write the credentials")
    setup.add_argument("--manifest", default=None, help="app.yml to use (default: the bundled one)")
    return parser


def _add_review_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument(
        "--style",
        choices=["auto", *(s.value for s in Style)],
        default=None,
        help="force a docstring style (auto: detect it, whatever the config says)",
    )
    p.add_argument("--model", default=None, help="LLM model or Azure deployment (env DOCGEN_MODEL)")
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="token budget for the run (env DOCGEN_TOKEN_BUDGET)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never call an LLM: write signature-derived skeletons",
    )
    p.add_argument("--no-diff", action="store_true", help="do not print the suggested changes")
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress line on stderr (shown only when stderr is a terminal)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when changed definitions are left without a docstring, or when no "
        "model answered (for CI)",
    )
    p.add_argument(
        "--fail-under",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when docstring coverage of the changed files after the suggestions is "
        "below PCT (default: coverage_threshold in .github/docgen.yml)",
    )


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a one-line UsageError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise UsageError(f"invalid environment variable {name}: {err['msg']}") from None


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
    loaded = _repo_config(local.root, local.head_sha)
    config = loaded.config
    if args.style == "auto":  # detect, even where the config forces a style
        config = config.model_copy(update={"style": "auto"})
    limit = config.budget or settings.docgen_token_budget
    if args.budget is not None:
        limit = args.budget
    # Loaded on the first count: the offline provider never counts (issue 13).
    try:
        counter = TokenCounter.lazy(encoding_for_model(provider.model, settings.docgen_encoding))
    except ValueError as exc:  # DOCGEN_ENCODING names no vendored encoding
        raise UsageError(f"DOCGEN_ENCODING: {exc}") from None
    ctx = Context(
        config=config,
        provider=provider,
        cache=_cache(settings),
        counter=counter,
        budget=TokenBudget(limit),
        repo_docstrings=DocstringSample(local.root, [c.path for c in changes]),
        style_override=Style(args.style) if args.style not in (None, "auto") else None,
        notes=list(loaded.errors),
        # Not posting to GitHub: any changed definition can be documented in place,
        # wherever its docstring lies relative to the diff's hunks.
        within_hunks=False,
    )
    if provider.offline:
        ctx.notes.append(
            "No LLM key configured (OPENAI_API_KEY or AZURE_OPENAI_*): docstrings are "
            "signature-derived skeletons from the offline provider. Edit them before committing."
        )
    # A line on stderr while it runs, when a person is watching (a terminal).
    ctx.progress = progress_mod.for_stream(sys.stderr, quiet=args.quiet)
    with ctx.progress:
        result = asyncio.run(run(changes, ctx))
    silent = _no_model_answered(result, provider.offline)
    if silent:
        result.report.notes.append(silent)
    # Files first: a reader that stops early (`| head`) must not stop --apply.
    applied: list[str] = []
    not_applied: list[str] = []
    if getattr(args, "apply", False):
        applied, not_applied = _apply(local.root, local.head_sha, result)
    _write_quietly(out, lambda: _print_all(result, args, out, [*applied, *not_applied]))
    failures = _failures(result, args, config, bool(silent), not_applied)
    for line in failures:
        print(f"docgen: {line}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


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


def _write_quietly(out: TextIO, write: Callable[[], None]) -> None:
    """Print; a reader that went away (``| head``) ends the output without a traceback."""
    try:
        write()
        out.flush()
    except BrokenPipeError:
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe: point stdout at
        # devnull so that the interpreter's last flush does not fail again at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


def _print_all(
    result: RunResult, args: argparse.Namespace, out: TextIO, apply_lines: Sequence[str]
) -> None:
    _print(result, args, out)
    # JSON output stays one parseable document: what --apply did goes to stderr there.
    where = sys.stderr if args.format == "json" else out
    for line in apply_lines:
        where.write(line + "\n")


def _print(result: RunResult, args: argparse.Namespace, out: TextIO) -> None:
    report = result.report
    if args.format == "json":
        data = render.json_report(report)
        json.dump(data, out, indent=2, sort_keys=False)
        out.write("\n")
        return
    if args.format == "markdown":
        out.write(render.markdown_report(report))
        out.write("\n")
    else:
        out.write(render.text_report(report))
        out.write("\n")
    if args.no_diff:
        return
    for path in sorted(result.new_texts):
        diff = render.unified_diff(path, result.head_texts[path], result.new_texts[path])
        out.write("\n")
        # Markdown: fenced, so that the diff's lines are not read as Markdown.
        out.write(render.fenced_diff(diff) if args.format == "markdown" else diff)


def _apply(root: Path, head_sha: str | None, result: RunResult) -> tuple[list[str], list[str]]:
    """Write the proven new texts, but only over files still equal to what was reviewed.

    Returns the lines to print: the files applied, and those not applied (with why).
    """
    applied: list[str] = []
    refused: list[str] = []
    for path, new_text in sorted(result.new_texts.items()):
        target = root / path
        try:
            current = target.read_bytes()
        except OSError as exc:
            refused.append(f"not applied to {path}: {exc.strerror}")
            continue
        reviewed = result.head_texts[path]
        bom = b"\xef\xbb\xbf" if current.startswith(b"\xef\xbb\xbf") else b""
        if current[len(bom) :] != reviewed.encode("utf-8"):
            where = "the working tree" if head_sha is None else f"{head_sha[:12]}"
            refused.append(f"not applied to {path}: the file differs from {where}")
            continue
        # newline="" keeps CRLF/CR endings exactly as they are in the text.
        with open(target, "w", encoding="utf-8", newline="") as fh:
            if bom:
                fh.write("\ufeff")
            fh.write(new_text)
        applied.append(f"applied to {path}")
    return applied, refused


def demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Create a repository with a sample PR and review it; kept unless ``--no-keep``."""
    out = out or sys.stdout
    import shutil
    import tempfile

    try:
        require_git()
    except GitError as exc:
        raise UsageError(str(exc)) from None
    from bot.sample import make_sample_repo

    tmp = Path(tempfile.mkdtemp(prefix="docgen-demo-"))
    try:
        root = make_sample_repo(tmp)
        if args.keep:
            out.write(
                f"Sample pull request in {root} (branch 'feature' against 'main'); it is kept: "
                f"try `docgen review {root} --base main --apply`, "
                f"remove it with `rm -rf {tmp}`\n\n"
            )
        else:
            out.write(
                "Sample pull request (branch 'feature' against 'main') in a temporary "
                "repository, removed after the review\n\n"
            )
        args.apply = False
        return review(root, "main", "feature", args, out)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def usage(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``docgen usage``: the ledger's totals per installation, repository and month."""
    out = out or sys.stdout
    if args.month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        raise UsageError(f"--month must look like 2025-06, not {args.month!r}")
    store = _open_ledger(load_settings())
    try:
        rows = store.usage(args.month)
    except Exception as exc:  # a broken store is one line, not a traceback
        raise UsageError(f"cannot read the ledger: {exc}") from None
    finally:
        store.close()
    if args.installation is not None:
        rows = [r for r in rows if r.installation_id == args.installation]
    if args.format == "json":
        json.dump(usage_mod.as_json(rows), out, indent=2)
        out.write("\n")
    else:
        out.write(usage_mod.table(rows) + "\n")
    return EXIT_OK


def _open_ledger(settings: Settings) -> usage_mod.UsageSource:
    """The journal ``docgen serve`` writes: Redis with REDIS_URL, else the SQLite file."""
    from bot.jobs import JOURNAL_FILENAME, Journal, JournalError
    from bot.server import DEFAULT_DATA_DIR

    if settings.redis_url is not None:
        from redis.exceptions import RedisError

        from bot.redisq import RedisJournal

        store = RedisJournal.from_url(
            settings.redis_url.get_secret_value(), prefix=settings.docgen_redis_prefix
        )
        try:
            store.client.ping()
        except (RedisError, OSError) as exc:
            store.close()
            raise UsageError(f"REDIS_URL: cannot reach Redis ({type(exc).__name__})") from None
        return store
    path = (settings.docgen_data_dir or DEFAULT_DATA_DIR) / JOURNAL_FILENAME
    if not path.is_file():
        raise UsageError(
            f"no journal at {path}: set DOCGEN_DATA_DIR to where docgen serve keeps it"
        )
    try:
        return Journal(path)
    except (JournalError, OSError) as exc:
        raise UsageError(f"cannot open {path}: {exc}") from None


def _serve(args: argparse.Namespace) -> int:
    from bot.server import StartupError, serve

    settings = load_settings()
    if args.web_processes is not None:
        if not 1 <= args.web_processes <= 64:
            raise UsageError("--web-processes must be between 1 and 64")
        settings = settings.model_copy(update={"docgen_web_processes": args.web_processes})
        os.environ["DOCGEN_WEB_PROCESSES"] = str(args.web_processes)  # for the children
    try:
        serve(settings, args.host, args.port or settings.port)
    except StartupError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):  # those log JSON lines (bot.logs.setup)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "review":
            return review(args.paths, args.base, args.head, args)
        if args.command == "demo":
            return demo(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "usage":
            return usage(args)
        if args.command == "worker":
            from bot.server import run_worker

            return run_worker(load_settings())
        if args.command == "setup":
            from bot.setup_app import run_setup

            return run_setup(args, load_settings())
    except UsageError as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
