"""``docgen demo``: review a bundled sample pull request in a new repository."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from bot.cli.errors import UsageError
from bot.cli.review import review
from bot.docstrings.localgit import GitError, require_git


def demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Create a repository with a sample PR and review it; kept unless ``--no-keep``."""
    out = out or sys.stdout
    try:
        require_git()
    except GitError as exc:
        raise UsageError(str(exc)) from None
    from bot.cli.sample import make_sample_repo  # imports GitPython

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
