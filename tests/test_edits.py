"""edits: safe literals, the edit that places a docstring, byte-preserving application."""

from __future__ import annotations

import ast

import pytest

from bot.docstrings.edits import apply_edits, literal_lines, make_edit
from bot.docstrings.models import Decision, Edit, Param
from bot.docstrings.proof import Accepted, prove_module, same_code
from tests.factories import BOX_SOURCE, scale_target, t_open, t_scale


class TestLiteral:
    def test_one_line(self):
        assert literal_lines("Do it.", "    ") == ['    """Do it."""']

    def test_multi_line_keeps_blank_lines_empty(self):
        assert literal_lines("Do it.\n\nArgs:\n    x: A.", "\t") == [
            '\t"""Do it.',
            "",
            "\tArgs:",
            "\t    x: A.",
            '\t"""',
        ]

    def test_backslashes_make_a_raw_string(self):
        lines = literal_lines("Split on \\n and \\t.", "")
        assert lines == ['r"""Split on \\n and \\t."""']
        assert ast.literal_eval("".join(lines)) == "Split on \\n and \\t."

    @pytest.mark.parametrize(
        "text", ['Say "hi"', "Ends in a backslash \\"], ids=["quote", "backslash"]
    )
    def test_awkward_endings_close_on_their_own_line(self, text):
        lines = literal_lines(text, "")
        assert lines[-1] == '"""'
        assert ast.literal_eval("\n".join(lines)).strip() == text

    def test_unsafe_text_is_refused(self):
        with pytest.raises(ValueError):
            literal_lines('x"""; import os', "")


class TestEdits:
    def test_insertion_keeps_every_other_byte(self):
        lines = BOX_SOURCE.splitlines()
        e1 = make_edit(t_scale(), "Multiply values.", lines)
        e2 = make_edit(t_open(), "Open the box.\n\nArgs:\n    force: Rip the lid off.", lines)
        assert e1 == Edit(4, 4, ("def scale(values, factor=2.0):", '    """Multiply values."""'))
        new = apply_edits(BOX_SOURCE, [e1, e2])
        assert (
            new.replace('    """Multiply values."""\n', "", 1).count("\n")
            == BOX_SOURCE.count("\n") + 5
        )
        assert same_code(BOX_SOURCE, new)
        assert ast.get_docstring(ast.parse(new).body[1]) == "Multiply values."

    def test_crlf_and_missing_final_newline_are_preserved(self):
        src = "def f(a):\r\n    return a"
        t = scale_target(qualname="f", params=(Param("a", "positional"),))
        new = apply_edits(src, [make_edit(t, "Give a back.", src.splitlines())])
        assert new == 'def f(a):\r\n    """Give a back."""\r\n    return a'

    def test_stale_docstring_is_replaced_in_place(self):
        src = 'def f(a):\n    """Old.\n\n    Args:\n        b: Gone.\n    """\n    return a\n'
        t = scale_target(
            qualname="f",
            params=(Param("a", "positional"),),
            docstring="Old.",
            docstring_span=(2, 6),
            decision=Decision.STALE,
            end=7,
            body_start=2,
        )
        edit = make_edit(t, "New.\n\nArgs:\n    a: Here.", src.splitlines())
        assert (edit.start, edit.end) == (2, 6)
        new, rejected = prove_module(src, [Accepted(t, edit)])
        assert rejected == []
        assert (
            new == 'def f(a):\n    """New.\n\n    Args:\n        a: Here.\n    """\n    return a\n'
        )

    def test_one_line_definitions_have_no_slot(self):
        t = scale_target(body_start=1)
        with pytest.raises(ValueError, match="same line"):
            make_edit(t, "Doc.", ["def scale(values, factor=2.0): return values"])

    def test_overlapping_edits_are_refused(self):
        with pytest.raises(ValueError, match="overlapping"):
            apply_edits("a\nb\nc\n", [Edit(1, 2, ("x",)), Edit(2, 3, ("y",))])
