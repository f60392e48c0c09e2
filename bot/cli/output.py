"""What ``docgen review`` prints, and the files ``--apply`` writes."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from bot.docstrings.pipeline import RunResult
from bot.docstrings.render import checkrun, reports


def write_quietly(out: TextIO, write: Callable[[], None]) -> None:
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


def print_all(
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
        data = reports.json_report(report)
        json.dump(data, out, indent=2, sort_keys=False)
        out.write("\n")
        return
    if args.format == "markdown":
        out.write(checkrun.markdown_report(report))
        out.write("\n")
    else:
        out.write(reports.text_report(report))
        out.write("\n")
    if args.no_diff:
        return
    for path in sorted(result.new_texts):
        diff = reports.unified_diff(path, result.head_texts[path], result.new_texts[path])
        out.write("\n")
        # Markdown: fenced, so that the diff's lines are not read as Markdown.
        out.write(reports.fenced_diff(diff) if args.format == "markdown" else diff)


def apply(root: Path, head_sha: str | None, result: RunResult) -> tuple[list[str], list[str]]:
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

