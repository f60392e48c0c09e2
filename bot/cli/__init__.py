"""The ``docgen`` command line.

``docgen review`` runs the App's pipeline on a local checkout: the same settings, the
same provider choice (an LLM when a key is set, the offline skeleton writer when not),
the same checks.  ``docgen demo`` builds a throw-away repository with a sample pull
request and reviews it, to see docgen work on a fresh machine.  ``serve``, ``worker``,
``usage`` and ``setup`` run and look after the GitHub App (:mod:`bot.cli.admin`).

Each command's module is imported when it runs: ``docgen review`` loads none of the
App's server, Redis or GitHub code (``bench/startup.py``).  Exit codes are in
:mod:`bot.cli.errors`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bot.cli.errors import EXIT_USAGE, UsageError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``docgen`` command; its exit code."""
    from bot.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    if args.command not in ("serve", "worker"):  # those log JSON lines (bot.logs.setup)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except UsageError as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "review":
        from bot.cli.review import review

        return review(args.paths, args.base, args.head, args)
    if args.command == "demo":
        from bot.cli.demo import demo

        return demo(args)
    from bot.cli.admin import run_admin  # serve, worker, usage, setup

    return run_admin(args)
