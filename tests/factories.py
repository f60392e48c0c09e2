"""Test data builders shared by the unit tests."""

from __future__ import annotations

import io
import sys
from typing import Any

from bot import cli
from bot.docstrings.models import Decision, Param, Target
from bot.runtime.queue.store import RunSpend


def make_target(**overrides: Any) -> Target:
    """A module-level function ``f`` on lines 1-2 of ``m.py``; override any field."""
    fields: dict[str, Any] = dict(
        path="m.py",
        qualname="f",
        kind="function",
        is_async=False,
        start=1,
        def_line=1,
        header_end=1,
        body_start=2,
        end=2,
        indent="",
        body_indent="    ",
    )
    fields.update(overrides)
    return Target(**fields)


def on_lines(start: int, end: int) -> dict[str, int]:
    """The line fields of a definition on lines ``start``-``end`` with a one-line header,
    for :func:`make_target`."""
    return dict(start=start, def_line=start, header_end=start, body_start=start + 1, end=end)


# A function whose stale docstring (lines 2-15) spans two hunks of git's diff: the
# renamed parameter on line 1 and its use on line 16 are more than 6 lines apart.
GREET_DOC = '''\
    """Greet someone by name.

    The greeting is built from the two parts given, in that order,
    with a comma between them. Nothing is printed: the caller decides
    what to do with the text, which keeps this function easy to test
    and lets it serve web pages, logs and terminals alike.

    Args:
        name: Who to greet.
        greeting: How to greet them.

    Returns:
        The greeting.
    """
'''
GREET_BASE = f'def greet(name, greeting):\n{GREET_DOC}    return f"{{greeting}}, {{name}}"\n'
GREET_HEAD = GREET_BASE.replace("greeting)", "salutation)").replace("{greeting}", "{salutation}")


def target_at(
    path: str,
    qualname: str,
    line: int,
    *,
    header_end: int | None = None,
    body_lines: int = 5,
    decision: Decision = Decision.MISSING,
) -> Target:
    """``qualname`` defined at ``line`` of ``path``: a method when the name is dotted."""
    header_end = header_end or line
    return make_target(
        path=path,
        qualname=qualname,
        kind="method" if "." in qualname else "function",
        start=line,
        def_line=line,
        header_end=header_end,
        body_start=header_end + 1,
        end=header_end + body_lines,
        decision=decision,
    )


def scale_target(**kw: Any) -> Target:
    """``scale(values, factor=2.0) -> list[float]``, which returns a value."""
    base = dict(
        qualname="scale",
        params=(
            Param("values", "positional", "list[float]"),
            Param("factor", "positional", "float", "2.0"),
        ),
        returns="list[float]",
        returns_value=True,
    )
    base.update(kw)
    return make_target(**base)


# A module with a function and a method, for edits and their proof.
BOX_SOURCE = '''\
import os


def scale(values, factor=2.0):
    return [v * factor for v in values]


class Box:
    """A box."""

    def open(self, force=False):  # noqa: D102
        if force:
            os.remove("lid")
        return True
'''


def t_scale() -> Target:
    """``scale`` in :data:`BOX_SOURCE`."""
    return scale_target(def_line=4, start=4, header_end=4, body_start=5, end=5)


def t_open() -> Target:
    """``Box.open`` in :data:`BOX_SOURCE`."""
    return scale_target(
        qualname="Box.open",
        kind="method",
        def_line=11,
        start=11,
        header_end=11,
        body_start=12,
        end=14,
        indent="    ",
        body_indent="        ",
        params=(Param("self", "positional"), Param("force", "positional", None, "False")),
        returns=None,
    )


def call_cli(*argv: str) -> tuple[int, str, str]:
    """``docgen ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(list(argv))
    finally:
        sys.stdout, sys.stderr = old_out, old_err
    return code, out.getvalue(), err.getvalue()


class Clock:
    """A wall clock that moves only when told to (the stores' and the policy's ``clock``)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def record_spend(
    store: Any, key: str, inst: int | None, prompt: int, completion: int, cost: float
) -> None:
    """Add one gpt-4o-mini run's spend for ``key`` (a PR) of installation ``inst`` to ``store``."""
    store.add_spend(
        key,
        RunSpend(
            model="gpt-4o-mini",
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            installation_id=inst,
        ),
    )
