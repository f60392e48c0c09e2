"""The ``docgen`` argument parser: one function per sub-command."""

from __future__ import annotations

import argparse

from bot import __version__
from bot.docstrings.models import Style

EXIT_CODES_HELP = """exit codes:
  0  done (suggestions printed or applied)
  1  a check failed: --strict and definitions left without a docstring, or no model
     answered; coverage below --fail-under (or coverage_threshold in .github/docgen.yml);
     --apply could not write a file it was asked to.  stderr says which.
  2  usage or configuration error (one line on stderr)"""



def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``docgen`` command."""
    parser = argparse.ArgumentParser(
        prog="docgen",
        description="Write missing Python docstrings for the functions a change touches.",
    )
    parser.add_argument("--version", action="version", version=f"docgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_review, _add_demo, _add_serve, _add_worker, _add_usage, _add_setup):
        add(sub)
    return parser


def _add_review(sub: argparse._SubParsersAction) -> None:
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


def _add_demo(sub: argparse._SubParsersAction) -> None:
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


def _add_serve(sub: argparse._SubParsersAction) -> None:
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


def _add_worker(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "worker",
        help="run job workers only (scale-out mode: needs REDIS_URL)",
        description="Process review jobs from Redis (REDIS_URL), on any machine.",
    )


def _add_usage(sub: argparse._SubParsersAction) -> None:
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


def _add_setup(sub: argparse._SubParsersAction) -> None:
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
