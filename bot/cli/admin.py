"""The App's commands: ``docgen serve``, ``worker``, ``usage`` and ``setup``.

Each imports the App's runtime (server, Redis, GitHub) only when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import TextIO

from bot.cli.errors import EXIT_OK, UsageError, load_settings
from bot.config import Settings
from bot.runtime import usage as usage_mod


def run_admin(args: argparse.Namespace) -> int:
    """Run the App command ``args.command`` names; its exit code."""
    commands = {"serve": _serve, "worker": _worker, "usage": usage, "setup": _setup}
    return commands[args.command](args)


def _worker(args: argparse.Namespace) -> int:
    from bot.runtime.processes import run_worker

    return run_worker(load_settings())


def _setup(args: argparse.Namespace) -> int:
    from bot.cli.setup import run_setup

    return run_setup(args, load_settings())


def _serve(args: argparse.Namespace) -> int:
    from bot.config import StartupError
    from bot.runtime.processes import serve

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
    """The store ``docgen serve`` writes: Redis with REDIS_URL, else the SQLite file."""
    from bot.config import StartupError
    from bot.runtime.compose import open_ledger

    try:
        return open_ledger(settings)
    except StartupError as exc:
        raise UsageError(str(exc)) from None
