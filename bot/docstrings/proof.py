"""Prove that docstring edits change nothing but docstrings, as GitHub will apply them.

The suggestion replaces git's lines (split at ``\\n`` only, :mod:`bot.docstrings.lines`) of the head
file, alone and together with the file's other suggestions.  Each edited region must
parse as exactly the first statement of its definition, a string constant spanning
exactly the new lines (:func:`prove_edit`); the module's AST with docstrings removed
must equal the head's, and its token stream outside docstring literals — comments
included — the head's (:func:`prove_module`).  This is invariant 1.
"""

from __future__ import annotations

import ast
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from bot.docstrings.edits import apply_edits, apply_suggestions, git_span
from bot.docstrings.lines import LineMap, python_lines
from bot.docstrings.models import Decision, Edit, Target
from bot.docstrings.parsing import docstring_of, documented, parse_quietly


class NotEquivalent(Exception):
    """The edited module is not the head module plus docstrings."""


def _defs_by_line(tree: ast.AST) -> dict[int, ast.AST]:
    out: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out[node.lineno] = node
    return out


def prove_edit(
    target: Target,
    edit: Edit,
    new_tree: ast.Module,
    shift: int,
    defs: dict[int, ast.AST] | None = None,
) -> None:
    """Check in the parsed edited module that ``edit`` is exactly a docstring.

    ``shift`` is how many lines edits above this one added.  The definition must be
    found at its shifted line, and its first statement must be a string constant that
    spans exactly the inserted docstring lines.  Together with :func:`prove_module`
    (or the unchanged-bytes construction of :func:`bot.docstrings.edits.apply_edits`) this proves
    invariant 1 for the edit.  Raises :class:`NotEquivalent`.  ``defs`` is the tree's
    line → definition map; pass it when proving many edits of one tree (one walk).
    """
    if defs is None:
        defs = _defs_by_line(new_tree)
    node = defs.get(target.def_line + shift)
    if node is None:
        raise NotEquivalent(f"{target.qualname}: definition not found after the edit")
    first = docstring_of(node)
    if first is None:
        raise NotEquivalent(f"{target.qualname}: the docstring is not the first statement")
    if target.decision == Decision.STALE:
        doc_start = edit.start + shift
    else:
        doc_start = edit.start + 1 + shift
    doc_end = edit.start + shift + len(edit.lines) - 1 - _trailing_blank(target, edit)
    if (first.lineno, first.end_lineno) != (doc_start, doc_end):
        raise NotEquivalent(
            f"{target.qualname}: the docstring spans lines {first.lineno}-{first.end_lineno}, "
            f"expected {doc_start}-{doc_end}"
        )
    second = node.body[1] if len(node.body) > 1 else None
    if target.decision != Decision.STALE and second is None:
        raise NotEquivalent(f"{target.qualname}: the body lost its statements")


def _trailing_blank(target: Target, edit: Edit) -> int:
    """How many empty lines a new docstring's edit ends with: one at most, exactly
    empty (:func:`bot.docstrings.edits.blank_after`); anything else stays part of the literal's span, where
    the span check rejects it."""
    if target.decision != Decision.STALE and len(edit.lines) > 2 and edit.lines[-1] == "":
        return 1
    return 0


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove module, class and function docstrings in place (for comparison)."""
    for node, _ in list(documented(tree)):  # collected first: bodies change below
        node.body = node.body[1:] or [ast.Pass()]
    return tree


def parse(text: str) -> ast.Module:
    """``ast.parse`` without the SyntaxWarnings that code under review may trigger."""
    return parse_quietly(text)


def same_code(old_text: str, new_text: str) -> bool:
    """True when both modules have equal ASTs once docstrings are removed (invariant 1)."""
    try:
        old = strip_docstrings(parse(old_text))
        new = strip_docstrings(parse(new_text))
    except (SyntaxError, ValueError):
        return False
    return ast.dump(old) == ast.dump(new)


# --------------------------------------------------------------- comments kept

# Layout tokens: where a block's INDENT falls moves when a docstring goes in above a
# comment line; line endings are invariant 8's business (and Python 3.11's tokenizer
# gives a lone \r as an ERRORTOKEN, not a NEWLINE).  The AST proof covers the block
# structure and statement boundaries.
_LAYOUT = frozenset(
    {tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.NEWLINE}
)
_Pos = tuple[int, int]


def _strip_with_ranges(tree: ast.Module, lines: Sequence[str]) -> list[tuple[_Pos, _Pos]]:
    """:func:`strip_docstrings` that also returns where each docstring statement was.

    Positions are token positions (line, character), sorted; one walk for both jobs.
    """

    def char(line: int, byte_col: int) -> int:
        text = lines[line - 1]
        if text.isascii():
            return byte_col
        return len(text.encode()[:byte_col].decode("utf-8", "replace"))

    out = []
    for node, first in documented(tree):
        end_line = first.end_lineno or first.lineno
        start = (first.lineno, char(first.lineno, first.col_offset))
        out.append((start, (end_line, char(end_line, first.end_col_offset or 0))))
        node.body = node.body[1:] or [ast.Pass()]
    return sorted(out)


def code_tokens(text: str) -> list[tuple[int, str]] | None:
    """The module's tokens outside docstring literals, comments included (None: untokenizable).

    A docstring statement's string and parenthesis tokens are left out, and so are
    layout tokens (:data:`_LAYOUT`).  Lines are Python's (``ast``'s), so the positions
    of ``ast`` and ``tokenize`` agree.
    """
    lines = python_lines(text)
    return _tokens(lines, _strip_with_ranges(parse(text), lines))


def _tokens(
    lines: Sequence[str], ranges: Sequence[tuple[_Pos, _Pos]]
) -> list[tuple[int, str]] | None:
    feed = iter(lines)
    out: list[tuple[int, str]] = []
    index = 0
    try:
        for tok in tokenize.generate_tokens(lambda: next(feed, "")):
            if tok.type in _LAYOUT or (tok.type == tokenize.ERRORTOKEN and tok.string.isspace()):
                continue
            while index < len(ranges) and ranges[index][1] < tok.start:
                index += 1
            if (
                tok.type in (tokenize.STRING, tokenize.OP)
                and index < len(ranges)
                and ranges[index][0] <= tok.start
                and tok.end <= ranges[index][1]
            ):
                continue  # part of a docstring statement
            out.append((tok.type, tok.string))
    except (tokenize.TokenError, SyntaxError):
        return None
    return out


def comments_kept(old_text: str, new_text: str) -> bool:
    """True when both token streams outside docstrings (comments included) are equal."""
    old = code_tokens(old_text)
    if old is None:  # the head does not tokenize (parse-only syntax): nothing to compare
        return True
    try:
        return code_tokens(new_text) == old
    except (SyntaxError, ValueError):
        return False


@dataclass(frozen=True)
class Accepted:
    """An edit that passed every check, with its target."""

    target: Target
    edit: Edit


@dataclass(frozen=True)
class _View:
    """What the proof compares of a module: its AST without docstrings, and its tokens."""

    dump: str
    tokens: list[tuple[int, str]] | None


def _view(text: str, tree: ast.Module | None = None) -> _View:
    """The view of ``text`` (``tree``, its parse, if at hand: it is stripped in place)."""
    tree = parse(text) if tree is None else tree
    lines = python_lines(text)
    ranges = _strip_with_ranges(tree, lines)
    return _View(ast.dump(tree), _tokens(lines, ranges))


def _differs(head: _View, new: _View) -> str:
    """Why ``new`` is not ``head`` plus docstrings ("" when it is)."""
    if new.dump != head.dump:
        return "the edit changes the code, not only the docstring"
    if head.tokens is not None and new.tokens != head.tokens:
        return "the edit loses or changes a comment or code outside the docstring"
    return ""


def prove_module(
    head_text: str, accepted: Sequence[Accepted]
) -> tuple[str, list[tuple[Accepted, str]]]:
    """Apply the accepted edits of one file and prove each is only a docstring.

    The proof runs on the file as GitHub will commit the suggestions (git's lines,
    :func:`bot.docstrings.edits.apply_suggestions`): one parse of all of them together checks every edit
    (:func:`prove_edit`), then the whole module — its AST without docstrings and its
    tokens outside them — is compared with the head's; each edit is also proven
    applied alone (:func:`_prove_alone`, on its definition's lines).  Rejected edits
    are dropped and the rest re-proved.  Returns the file with the edits applied the
    local way (:func:`bot.docstrings.edits.apply_edits`, line endings kept; proven too when it differs) and
    the rejected edits with a reason.
    """
    lines = LineMap(head_text)
    pending: list[Accepted] = []
    rejected: list[tuple[Accepted, str]] = []
    for a in sorted(accepted, key=lambda a: a.edit.start):
        why = _not_placeable(a.edit, lines)
        if why:
            rejected.append((a, why))
        else:
            pending.append(a)
    head_view: _View | None = None
    while pending:
        github_text = apply_suggestions(
            head_text, [(*git_span(a.edit, lines), a.edit.lines) for a in pending]
        )
        try:
            tree = parse(github_text)
        except (SyntaxError, ValueError) as exc:
            failures = [
                (
                    _first_failing_alone(head_text, pending, lines),
                    f"the edited file does not parse: {exc}",
                )
            ]
        else:
            failures = _failing_edits(head_text, pending, lines, tree)
        if not failures:
            head_view = head_view or _view(head_text)
            local_text, why = _whole_module(head_text, head_view, pending, github_text, tree)
            if not why:
                return local_text, rejected
            # Should be unreachable after the proofs above; keep the gate, find the culprit.
            failures = [(_first_failing_alone(head_text, pending, lines), why)]
        for a, why in failures:
            if a in pending:
                rejected.append((a, why))
                pending.remove(a)
    return head_text, rejected


def _failing_edits(
    head_text: str, pending: Sequence[Accepted], lines: LineMap, tree: ast.Module
) -> list[tuple[Accepted, str]]:
    """The edits that fail in ``tree`` (all of ``pending`` committed) or alone, with why."""
    failures = []
    shift = 0
    defs = _defs_by_line(tree)  # one walk per parse, not one per edit
    for a in pending:
        try:
            prove_edit(a.target, a.edit, tree, shift, defs)
        except NotEquivalent as exc:
            failures.append((a, str(exc)))
        shift += len(a.edit.lines) - (a.edit.end - a.edit.start + 1)
    return failures + [(a, why) for a in pending if (why := _prove_alone(head_text, a, lines))]


def _whole_module(
    head_text: str,
    head_view: _View,
    pending: Sequence[Accepted],
    github_text: str,
    tree: ast.Module,
) -> tuple[str, str]:
    """The file with ``pending`` applied the local way, and why the module (as GitHub
    commits it, and as applied locally when that differs) is not the head plus
    docstrings ("" when it is)."""
    why = _differs(head_view, _view(github_text, tree))
    local_text = apply_edits(head_text, [a.edit for a in pending])
    if not why and local_text != github_text:  # line endings differ: prove it too
        try:
            why = _differs(head_view, _view(local_text))
        except (SyntaxError, ValueError) as exc:
            why = f"the edited file does not parse: {exc}"
    return local_text, why


def _not_placeable(edit: Edit, lines: LineMap) -> str:
    """Why an edit cannot become a GitHub suggestion ("" when it can).

    GitHub replaces whole git lines; when one of them holds a lone ``\\r``, it holds
    more than one Python line, and the suggestion would replace code the edit keeps.
    """
    start, end = git_span(edit, lines)
    cr = lines.lone_cr(start, end)
    if cr is None:
        return ""
    return (
        f"line {cr} holds a lone carriage return (\\r): Python counts two lines there, "
        "GitHub one, so a suggestion cannot replace only the docstring's lines"
    )


_WINDOW_PREFIX = "if 1:\n"  # makes an indented definition's lines a valid module


def _prove_alone(head_text: str, a: Accepted, lines: LineMap) -> str:
    """Why the edit, committed alone on GitHub, would not be only a docstring ("" if it is).

    Only the definition's own lines change, so its lines are proven as a module of their
    own (under ``if 1:`` when indented): linear in the file, where re-parsing the whole
    file per edit would be quadratic.  When those lines do not parse on their own, the
    whole file is proven instead.
    """
    target, edit = a.target, a.edit
    first, last = lines.git(target.start), lines.git(target.end)
    start, end = git_span(edit, lines)
    git_lines = head_text.split("\n")
    if not (first <= start <= end <= last) or lines.py_first(first) != target.start:
        return _prove_alone_in_file(head_text, a, lines)
    window = git_lines[first - 1 : last]
    prefix = _WINDOW_PREFIX if target.indent else ""
    head_window = prefix + "\n".join(window) + "\n"
    new_window = (
        prefix
        + "\n".join(window[: start - first] + list(edit.lines) + window[end - first + 1 :])
        + "\n"
    )
    try:
        head_view = _view(head_window)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _prove_alone_in_file(head_text, a, lines)
    # Python line p of the file is line p - target.start + 1 (+1 under ``if 1:``) here.
    shift = (2 if prefix else 1) - target.start
    return _prove_text(head_view, new_window, a, shift)


def _prove_alone_in_file(head_text: str, a: Accepted, lines: LineMap) -> str:
    new_text = apply_suggestions(head_text, [(*git_span(a.edit, lines), a.edit.lines)])
    return _prove_text(_view(head_text), new_text, a, 0)


def _prove_text(head_view: _View, new_text: str, a: Accepted, shift: int) -> str:
    try:
        tree = parse(new_text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"the edited file does not parse: {exc}"
    try:
        prove_edit(a.target, a.edit, tree, shift)
    except NotEquivalent as exc:
        return str(exc)
    try:
        return _differs(head_view, _view(new_text, tree))
    except (SyntaxError, ValueError) as exc:  # pragma: no cover - parsed above
        return f"the edited file does not parse: {exc}"


def _first_failing_alone(
    head_text: str, pending: Sequence[Accepted], lines: LineMap | None = None
) -> Accepted:
    lines = lines or LineMap(head_text)
    for a in pending:
        if _prove_alone_in_file(head_text, a, lines):
            return a
    return pending[0]
