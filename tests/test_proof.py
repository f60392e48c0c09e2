"""proof: an edit is only a docstring, as GitHub commits it (AST, tokens, comments)."""

from __future__ import annotations

import ast

from bot.docstrings import edits, proof
from bot.docstrings.edits import apply_edits, make_edit
from bot.docstrings.lines import python_lines
from bot.docstrings.models import Decision, Edit, Target
from bot.docstrings.proof import Accepted, prove_module, same_code
from tests.factories import BOX_SOURCE, make_target, t_open, t_scale


class TestProof:
    def test_good_edits_are_proven(self):
        lines = BOX_SOURCE.splitlines()
        accepted = [
            Accepted(t_scale(), make_edit(t_scale(), "Multiply values.", lines)),
            Accepted(t_open(), make_edit(t_open(), "Open the box.", lines)),
        ]
        new, rejected = prove_module(BOX_SOURCE, accepted)
        assert rejected == []
        assert same_code(BOX_SOURCE, new)

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
            BOX_SOURCE, [Accepted(t_scale(), hostile), Accepted(t_open(), good)]
        )
        assert [a.edit for a, _ in rejected] == [hostile]
        assert "os.system" not in new
        assert '"""Open it."""' in new and same_code(BOX_SOURCE, new)

    def test_an_edit_that_breaks_the_syntax_is_rejected(self):
        broken = Edit(4, 4, ("def scale(values, factor=2.0):", '    """Doc.'))
        new, rejected = prove_module(BOX_SOURCE, [Accepted(t_scale(), broken)])
        assert new == BOX_SOURCE
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
        from bot.docstrings.extract import extract

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
            t, "Give a back.", [line.rstrip("\r\n") for line in python_lines(src)]
        )
        new, rejected = prove_module(src, [Accepted(t, edit)])
        assert new == src and "lone carriage return" in rejected[0][1]

    def test_github_applies_suggestions_at_git_lines(self):
        # Python line 3 is git line 2 here: the suggestion must name git's line.
        src = "x = 1  # a\rb = 2\ndef f(a):\n    return a\n"
        t = make_target(qualname="f", def_line=3, header_end=3, body_start=4, end=4, start=3)
        edit = make_edit(
            t, "Give a back.", [line.rstrip("\r\n") for line in python_lines(src)]
        )
        new, rejected = prove_module(src, [Accepted(t, edit)])
        assert rejected == []
        github = edits.apply_suggestions(src, [(2, 2, edit.lines)])
        assert github == new and ast.get_docstring(ast.parse(github).body[2]) == "Give a back."
