"""Test data builders shared by the unit tests."""

from __future__ import annotations

from typing import Any

from bot.models import Target


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
