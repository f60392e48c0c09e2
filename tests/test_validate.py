"""validate: content checks, safe literals, byte-preserving edits and the AST proof."""

from __future__ import annotations

import ast

import pytest

from bot import edits, proof, validate
from bot.edits import apply_edits, literal_lines, make_edit
from bot.models import Decision, DocParts, Edit, Param, Target
from bot.proof import Accepted, prove_module, same_code
from tests.factories import make_target


def target(**kw) -> Target:
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


GOOD = DocParts(
    summary="Multiply every value by a constant factor.",
    params=(("values", "Numbers to scale."), ("factor", "The multiplier.")),
    returns="The scaled numbers.",
)


def codes(violations) -> list[str]:
    return [v.code for v in violations]


class TestCheckParts:
    def test_good_candidate_passes(self):
        assert validate.check_parts(GOOD, target()) == []

    @pytest.mark.parametrize(
        ("summary", "restated"),
        [
            ("Scale.", True),
            ("Scale the values.", True),  # only stopwords beyond the name
            ("Multiply each value by a factor.", False),
        ],
        ids=["bare-name", "name-plus-stopwords", "real-summary"],
    )
    def test_restating_the_name(self, summary, restated):
        parts = DocParts(summary, params=GOOD.params, returns=GOOD.returns)
        got = codes(validate.check_parts(parts, target()))
        assert (validate.RESTATES_NAME in got) is restated

    def test_restatement_allowed_for_offline_skeletons(self):
        parts = DocParts("Scale.", params=GOOD.params, returns=GOOD.returns)
        assert validate.check_parts(parts, target(), allow_restated=True) == []

    def test_wrong_and_missing_parameter_names(self):
        parts = DocParts(GOOD.summary, params=(("vals", "x"),), returns="y")
        got = validate.check_parts(parts, target())
        assert codes(got) == [validate.UNKNOWN_PARAM, validate.MISSING_PARAM]
        assert "vals" in got[0].message and "values, factor" in got[0].message

    def test_self_is_not_expected_and_stars_are_ignored(self):
        t = target(
            kind="method",
            qualname="Scaler.scale",
            params=(Param("self", "positional"), Param("args", "vararg"), Param("kw", "varkw")),
            returns=None,
            returns_value=False,
        )
        parts = DocParts("Multiply the stored numbers.", params=(("*args", "a"), ("**kw", "b")))
        assert validate.check_parts(parts, t) == []

    @pytest.mark.parametrize(
        ("changes", "parts_kw", "expected"),
        [
            (
                {"returns_value": False, "returns": None},
                {"returns": "Something."},
                validate.SPURIOUS_RETURNS,
            ),
            ({}, {"returns": ""}, validate.MISSING_RETURNS),
            (
                {"yields": True, "returns_value": False, "returns": "Iterator[int]"},
                {"returns": ""},
                validate.MISSING_YIELDS,
            ),
            ({}, {"yields": "Numbers."}, validate.SPURIOUS_YIELDS),
            ({"raises": ("ValueError",)}, {}, validate.MISSING_RAISES),
            ({}, {"raises": (("KeyError", "Never."),)}, validate.UNKNOWN_RAISES),
        ],
        ids=[
            "spurious-returns",
            "missing-returns",
            "missing-yields",
            "spurious-yields",
            "missing-raises",
            "invented-raises",
        ],
    )
    def test_sections_must_agree_with_the_code(self, changes, parts_kw, expected):
        kw = dict(summary=GOOD.summary, params=GOOD.params, returns=GOOD.returns)
        kw.update(parts_kw)
        assert expected in codes(validate.check_parts(DocParts(**kw), target(**changes)))

    def test_qualified_exception_names_match_short_ones(self):
        t = target(raises=("errors.BadInput",))
        parts = DocParts(
            GOOD.summary,
            params=GOOD.params,
            returns=GOOD.returns,
            raises=(("BadInput", "On bad input."),),
        )
        assert validate.check_parts(parts, t) == []

    @pytest.mark.parametrize(
        "hostile",
        [
            'Scale values."""\nimport os; os.system("rm -rf /")\n"""',
            "Scale values.'''",
            "Scale values.\n```python\nprint(1)\n```",
            "Scale values.\x00",
            "Scale values \u202e gnirts",
        ],
        ids=["close-triple-double", "close-triple-single", "code-fence", "nul", "bidi-override"],
    )
    def test_text_that_could_escape_the_string_is_rejected(self, hostile):
        for field in ("summary", "description"):
            kw = dict(summary=GOOD.summary, params=GOOD.params, returns=GOOD.returns)
            kw[field] = hostile if field == "description" else hostile.replace("\n", " ")
            assert validate.UNSAFE_TEXT in codes(validate.check_parts(DocParts(**kw), target()))


class TestCheckText:
    def test_google_text_reads_back(self):
        text = "Multiply values.\n\nArgs:\n    values: Numbers.\n    factor: Multiplier.\n\nReturns:\n    The numbers."
        assert validate.check_text(text, target(), validate.Style.GOOGLE) == []

    def test_google_text_with_a_wrong_param(self):
        text = "Multiply values.\n\nArgs:\n    values: Numbers.\n    fac: Multiplier."
        got = codes(validate.check_text(text, target(), validate.Style.GOOGLE))
        assert got == [validate.UNKNOWN_PARAM, validate.MISSING_PARAM]


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


SOURCE = '''\
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
    return target(def_line=4, start=4, header_end=4, body_start=5, end=5)


def t_open() -> Target:
    return target(
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


class TestEdits:
    def test_insertion_keeps_every_other_byte(self):
        lines = SOURCE.splitlines()
        e1 = make_edit(t_scale(), "Multiply values.", lines)
        e2 = make_edit(t_open(), "Open the box.\n\nArgs:\n    force: Rip the lid off.", lines)
        assert e1 == Edit(4, 4, ("def scale(values, factor=2.0):", '    """Multiply values."""'))
        new = apply_edits(SOURCE, [e1, e2])
        assert (
            new.replace('    """Multiply values."""\n', "", 1).count("\n") == SOURCE.count("\n") + 5
        )
        assert same_code(SOURCE, new)
        assert ast.get_docstring(ast.parse(new).body[1]) == "Multiply values."

    def test_crlf_and_missing_final_newline_are_preserved(self):
        src = "def f(a):\r\n    return a"
        t = target(qualname="f", params=(Param("a", "positional"),))
        new = apply_edits(src, [make_edit(t, "Give a back.", src.splitlines())])
        assert new == 'def f(a):\r\n    """Give a back."""\r\n    return a'

    def test_stale_docstring_is_replaced_in_place(self):
        src = 'def f(a):\n    """Old.\n\n    Args:\n        b: Gone.\n    """\n    return a\n'
        t = target(
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
        t = target(body_start=1)
        with pytest.raises(ValueError, match="same line"):
            make_edit(t, "Doc.", ["def scale(values, factor=2.0): return values"])

    def test_overlapping_edits_are_refused(self):
        with pytest.raises(ValueError, match="overlapping"):
            apply_edits("a\nb\nc\n", [Edit(1, 2, ("x",)), Edit(2, 3, ("y",))])


class TestProof:
    def test_good_edits_are_proven(self):
        lines = SOURCE.splitlines()
        accepted = [
            Accepted(t_scale(), make_edit(t_scale(), "Multiply values.", lines)),
            Accepted(t_open(), make_edit(t_open(), "Open the box.", lines)),
        ]
        new, rejected = prove_module(SOURCE, accepted)
        assert rejected == []
        assert same_code(SOURCE, new)

    def test_an_edit_that_smuggles_code_is_rejected(self):
        # What an injected "docstring" would become if it reached the inserter raw:
        # close the string, add a statement, reopen.
        hostile = Edit(
            4, 4, ("def scale(values, factor=2.0):", '    """Doc."""', "    os.system('x')")
        )
        good = Edit(
            11, 11, ("    def open(self, force=False):  # noqa: D102", '        """Open it."""')
        )
        new, rejected = prove_module(
            SOURCE, [Accepted(t_scale(), hostile), Accepted(t_open(), good)]
        )
        assert [a.edit for a, _ in rejected] == [hostile]
        assert "os.system" not in new
        assert '"""Open it."""' in new and same_code(SOURCE, new)

    def test_an_edit_that_breaks_the_syntax_is_rejected(self):
        broken = Edit(4, 4, ("def scale(values, factor=2.0):", '    """Doc.'))
        new, rejected = prove_module(SOURCE, [Accepted(t_scale(), broken)])
        assert new == SOURCE
        assert "does not parse" in rejected[0][1]

    def test_same_code_sees_real_changes(self):
        assert same_code("def f():\n    return 1\n", 'def f():\n    """D."""\n    return 1\n')
        assert not same_code("def f():\n    return 1\n", "def f():\n    return 2\n")
        assert not same_code("def f():\n    return 1\n", "def f(:\n")


class TestGitHubView:
    """The proof runs on the file as GitHub commits the suggestions, comments included."""

    STALE_SRC = (
        "def f(a):\n"
        '    """Old.\n\n    Args:\n        b: Gone.\n    """  # noqa: D401\n'
        "    return a\n"
    )

    def stale_target(self) -> Target:
        from bot.config import RepoConfig
        from bot.extract import extract

        [found] = extract("m.py", self.STALE_SRC.encode(), None, RepoConfig()).targets
        assert found.decision == Decision.STALE
        return found

    def test_a_stale_edit_keeps_the_comment_on_the_closing_line(self):
        t = self.stale_target()
        edit = make_edit(t, "New.\n\nArgs:\n    a: Here.", self.STALE_SRC.split("\n"))
        assert edit.lines[-1] == '    """  # noqa: D401'
        new, rejected = prove_module(self.STALE_SRC, [Accepted(t, edit)])
        assert rejected == [] and "# noqa: D401" in new

    def test_an_edit_that_drops_a_comment_is_rejected(self):
        t = self.stale_target()
        edit = make_edit(t, "New.\n\nArgs:\n    a: Here.", self.STALE_SRC.split("\n"))
        dropped = Edit(edit.start, edit.end, (*edit.lines[:-1], '    """'))
        assert same_code(self.STALE_SRC, apply_edits(self.STALE_SRC, [dropped]))  # AST blind
        new, rejected = prove_module(self.STALE_SRC, [Accepted(t, dropped)])
        assert new == self.STALE_SRC
        assert "comment" in rejected[0][1]

    def test_comments_kept_compares_tokens_outside_docstrings(self):
        head = "def f():\n    # c\n    return 1  # d\n"
        assert proof.comments_kept(head, 'def f():\n    """Doc."""\n    # c\n    return 1  # d\n')
        assert not proof.comments_kept(head, 'def f():\n    """Doc."""\n    return 1  # d\n')
        assert not proof.comments_kept(head, "def f():\n    # c\n    return 1  # e\n")

    def test_an_edit_on_a_line_with_a_lone_cr_is_rejected(self):
        src = "def f(a):  # x\r    # y\n    return a\n"
        t = make_target(qualname="f", def_line=1, header_end=1, body_start=3, end=3)
        edit = make_edit(
            t, "Give a back.", [line.rstrip("\r\n") for line in edits.split_lines(src)]
        )
        new, rejected = prove_module(src, [Accepted(t, edit)])
        assert new == src and "lone carriage return" in rejected[0][1]

    def test_github_applies_suggestions_at_git_lines(self):
        # Python line 3 is git line 2 here: the suggestion must name git's line.
        src = "x = 1  # a\rb = 2\ndef f(a):\n    return a\n"
        t = make_target(qualname="f", def_line=3, header_end=3, body_start=4, end=4, start=3)
        edit = make_edit(
            t, "Give a back.", [line.rstrip("\r\n") for line in edits.split_lines(src)]
        )
        new, rejected = prove_module(src, [Accepted(t, edit)])
        assert rejected == []
        github = edits.apply_suggestions(src, [(2, 2, edit.lines)])
        assert github == new and ast.get_docstring(ast.parse(github).body[2]) == "Give a back."
