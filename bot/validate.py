"""Prove a candidate docstring is correct and harmless before anyone sees it.

Model output is untrusted: the code under review may carry a prompt injection, and a
model may simply be wrong.  Nothing leaves this module unless

* its content agrees with the signature (parameters, returns, yields, raises) and has a
  real summary (:func:`check_parts`, :func:`check_text`);
* it is written as a string literal that cannot end early (:func:`literal_lines`);
* inserting it changes nothing but the docstring: the edited region parses as exactly
  the first statement of that definition, a string constant spanning exactly the new
  lines, and the module's AST with docstrings removed equals the head's
  (:func:`prove_edit`, :func:`prove_module`).

Findings are data (:class:`Violation`), fed back to the model for one repair round.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import docstring_parser

from bot.models import Decision, DocParts, Edit, Style, Target
from bot.parsing import parse_quietly


@dataclass(frozen=True)
class Violation:
    """One reason a candidate docstring was not accepted."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


# Codes, so that summaries and tests can refer to them.
EMPTY_SUMMARY = "DG101"
RESTATES_NAME = "DG102"
UNSAFE_TEXT = "DG103"
UNKNOWN_PARAM = "DG201"
MISSING_PARAM = "DG202"
DUPLICATE_PARAM = "DG203"
SPURIOUS_RETURNS = "DG301"
MISSING_RETURNS = "DG302"
SPURIOUS_YIELDS = "DG303"
MISSING_YIELDS = "DG304"
MISSING_RAISES = "DG305"
UNKNOWN_RAISES = "DG306"
UNPARSEABLE = "DG401"
NOT_EQUIVALENT = "DG501"

MAX_SUMMARY_CHARS = 120
_STOPWORDS = frozenset(
    "a an the this that of for to and or in on is are be by from with as it its get set "
    "return returns function method class object value values helper".split()
)
# Text that could close the literal, fence the suggestion, or hide content.
_UNSAFE = (
    ('"""', "contains a triple quote"),
    ("'''", "contains a triple quote"),
    ("```", "contains a code fence"),
    ("\x00", "contains a NUL character"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _words(text: str) -> list[str]:
    # Split snake_case, CamelCase and punctuation into lower-case words.
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]


def restates_name(summary: str, name: str) -> bool:
    """True when the summary says nothing beyond the definition's own name.

    ``get_user_name`` → "Get user name." restates; "Look up the display name of a
    user." does not.
    """
    said = [w for w in _words(summary) if w not in _STOPWORDS]
    named = {w for w in _words(name) if w not in _STOPWORDS}
    if not said:
        return True
    return set(said) <= named


def _unsafe(text: str) -> str | None:
    for needle, why in _UNSAFE:
        if needle in text:
            return why
    if _CONTROL.search(text):
        return "contains control or bidirectional-override characters"
    return None


def _strip_stars(name: str) -> str:
    return name.lstrip("*")


def check_parts(
    parts: DocParts, target: Target, *, allow_restated: bool = False
) -> list[Violation]:
    """Check a structured candidate against the facts of the definition."""
    out: list[Violation] = []
    summary = parts.summary.strip()
    if not summary:
        out.append(Violation(EMPTY_SUMMARY, "the summary line is empty"))
    elif "\n" in summary or len(summary) > MAX_SUMMARY_CHARS:
        out.append(
            Violation(
                EMPTY_SUMMARY,
                f"the summary must be one line of at most {MAX_SUMMARY_CHARS} characters",
            )
        )
    elif not allow_restated and restates_name(summary, target.qualname.rsplit(".", 1)[-1]):
        out.append(Violation(RESTATES_NAME, f"the summary {summary!r} only restates the name"))

    texts = [parts.summary, parts.description, parts.returns, parts.yields]
    texts += [d for _, d in parts.params] + [n for n, _ in parts.params]
    texts += [d for _, d in parts.raises] + [n for n, _ in parts.raises]
    for text in texts:
        why = _unsafe(text)
        if why:
            out.append(Violation(UNSAFE_TEXT, f"the text {why}"))
            break

    out += _check_params([n for n, _ in parts.params], target)

    if target.kind != "class":
        out += _check_sections(
            has_returns=bool(parts.returns.strip()),
            has_yields=bool(parts.yields.strip()),
            raises=[n for n, _ in parts.raises],
            target=target,
        )
    return out


def _check_params(documented: Sequence[str], target: Target) -> list[Violation]:
    out: list[Violation] = []
    if target.kind == "class":
        # A class docstring may document __init__'s parameters or none at all; it may
        # never name parameters that do not exist.
        allowed = {p.name for p in target.documentable_params}
        extra = [n for n in documented if _strip_stars(n) not in allowed]
        if extra:
            out.append(
                Violation(UNKNOWN_PARAM, f"documents unknown parameters: {', '.join(extra)}")
            )
        return out
    expected = [p.name for p in target.documentable_params]
    names = [_strip_stars(n) for n in documented]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            out.append(Violation(DUPLICATE_PARAM, f"documents `{n}` twice"))
        seen.add(n)
    extra = [n for n in names if n not in expected]
    missing = [n for n in expected if n not in seen]
    if extra:
        out.append(
            Violation(
                UNKNOWN_PARAM,
                f"documents parameters the signature does not have: {', '.join(extra)} "
                f"(the parameters are: {', '.join(expected) or 'none'})",
            )
        )
    if missing:
        out.append(Violation(MISSING_PARAM, f"does not document parameters: {', '.join(missing)}"))
    return out


def _check_sections(
    *, has_returns: bool, has_yields: bool, raises: Iterable[str], target: Target
) -> list[Violation]:
    out: list[Violation] = []
    returns_none = target.returns in ("None", "NoReturn", "typing.NoReturn", "Never")
    if (
        has_returns
        and not target.returns_value
        and not target.yields
        and (target.returns is None or returns_none)
    ):
        out.append(
            Violation(SPURIOUS_RETURNS, "documents a return value but the function returns nothing")
        )
    if target.returns_value and not has_returns and not target.is_property and not target.yields:
        out.append(
            Violation(MISSING_RETURNS, "the function returns a value but has no Returns section")
        )
    if has_yields and not target.yields:
        out.append(
            Violation(SPURIOUS_YIELDS, "documents yields but the function is not a generator")
        )
    if target.yields and not has_yields:
        out.append(
            Violation(MISSING_YIELDS, "the function is a generator but has no Yields section")
        )
    documented = {n.strip() for n in raises}
    short = {n.rsplit(".", 1)[-1] for n in documented}
    missing = [
        r for r in target.raises if r not in documented and r.rsplit(".", 1)[-1] not in short
    ]
    if missing:
        out.append(
            Violation(MISSING_RAISES, f"does not document raised exceptions: {', '.join(missing)}")
        )
    known = {r.rsplit(".", 1)[-1] for r in target.raises}
    unknown = [n for n in documented if n and n.rsplit(".", 1)[-1] not in known]
    if unknown:
        out.append(
            Violation(
                UNKNOWN_RAISES,
                f"documents exceptions the code does not raise: {', '.join(sorted(unknown))}",
            )
        )
    return out


_PARSER_STYLE = {
    Style.GOOGLE: docstring_parser.DocstringStyle.GOOGLE,
    Style.NUMPY: docstring_parser.DocstringStyle.NUMPYDOC,
    Style.SPHINX: docstring_parser.DocstringStyle.REST,
}


def check_text(text: str, target: Target, style: Style) -> list[Violation]:
    """Check the composed docstring text itself: safe, parseable, params as the signature.

    This is the second line of defence after :func:`check_parts`: whatever ``compose``
    wrote must read back, in the target style, with the same parameters.
    """
    why = _unsafe(text)
    if why:
        return [Violation(UNSAFE_TEXT, f"the docstring {why}")]
    if not text.strip():
        return [Violation(EMPTY_SUMMARY, "the docstring is empty")]
    if style not in _PARSER_STYLE:
        return []
    try:
        parsed = docstring_parser.parse(text, style=_PARSER_STYLE[style])
    except docstring_parser.ParseError as exc:
        return [Violation(UNPARSEABLE, f"does not parse as a {style} docstring: {exc}")]
    documented = [
        p.arg_name
        for p in parsed.params
        if p.args and p.args[0] in ("param", "parameter", "arg", "argument", "key", "keyword")
    ]
    if not documented:
        documented = [p.arg_name for p in parsed.params]
    if target.kind == "class":
        return _check_params(documented, target)
    return _check_params(documented, target)


# ----------------------------------------------------------------- the literal


def literal_lines(text: str, indent: str) -> list[str]:
    """The docstring as source lines, indented, with safe quoting.

    ``text`` is the cleaned content (first line = summary).  A raw string is used when
    the text has backslashes, so ``\\n`` in prose stays two characters.  The closing
    quotes go on their own line whenever the text spans lines or ends with a quote
    or backslash, so the literal can never end early.
    """
    if _unsafe(text):
        raise ValueError("unsafe docstring text")
    prefix = "r" if "\\" in text else ""
    lines = text.strip("\n").split("\n")
    lines = [line.rstrip() for line in lines]
    if len(lines) == 1 and not lines[0].endswith(('"', "\\")):
        return [f'{indent}{prefix}"""{lines[0]}"""']
    out = [f'{indent}{prefix}"""{lines[0]}']
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f'{indent}"""')
    return out


def edit_region(target: Target) -> tuple[int, int] | str:
    """The head lines a suggestion for ``target`` must replace, or why it can't.

    A missing docstring goes after the header's last line, so the suggestion replaces
    that line with itself plus the docstring.  A stale one replaces its own lines.
    """
    if target.decision == Decision.STALE and target.docstring_span is not None:
        start, end = target.docstring_span
        if start <= target.header_end:
            return "docstring shares a line with the definition header"
        return (start, end)
    if target.docstring_span is not None:
        return "already has a docstring"
    if target.body_start <= target.header_end:
        return "body on the same line as the header"
    return (target.header_end, target.header_end)


def make_edit(target: Target, text: str, head_lines: Sequence[str]) -> Edit:
    """The :class:`Edit` that puts ``text`` in as ``target``'s docstring.

    ``head_lines`` are the head file's lines without line endings.  Raises ValueError
    when the definition has no place a suggestion can safely target.
    """
    region = edit_region(target)
    if isinstance(region, str):
        raise ValueError(region)
    start, end = region
    new = literal_lines(text, target.body_indent)
    if target.decision == Decision.STALE and target.docstring_span is not None:
        return Edit(start, end, tuple(new))
    return Edit(start, end, (head_lines[start - 1], *new))


# --------------------------------------------------------------- applying edits


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept, split only on \\n, \\r\\n and \\r (as Python does)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def newline_of(text: str) -> str:
    """The file's line ending: that of its first line (CRLF stays CRLF)."""
    m = re.search(r"\r\n|\r|\n", text)
    return m.group(0) if m else "\n"


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping line edits; every byte outside them is kept as it was.

    New lines take the ending of the last line they replace (or the file's), so a CRLF
    file stays CRLF and a file without a final newline keeps that.
    """
    lines = split_lines(text)
    nl = newline_of(text)
    ordered = sorted(edits, key=lambda e: e.start, reverse=True)
    last_start = None
    for edit in ordered:
        if last_start is not None and edit.end >= last_start:
            raise ValueError("overlapping edits")
        if not 1 <= edit.start <= edit.end <= len(lines):
            raise ValueError(f"edit {edit.start}-{edit.end} outside the file ({len(lines)} lines)")
        old_last = lines[edit.end - 1]
        ending = old_last[len(old_last.rstrip("\r\n")) :]
        replacement = [line + nl for line in edit.lines[:-1]] + [edit.lines[-1] + ending]
        lines[edit.start - 1 : edit.end] = replacement
        last_start = edit.start
    return "".join(lines)


# ------------------------------------------------------------------------ proof


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
    (or the unchanged-bytes construction of :func:`apply_edits`) this proves
    invariant 1 for the edit.  Raises :class:`NotEquivalent`.  ``defs`` is the tree's
    line → definition map; pass it when proving many edits of one tree (one walk).
    """
    if defs is None:
        defs = _defs_by_line(new_tree)
    node = defs.get(target.def_line + shift)
    if node is None:
        raise NotEquivalent(f"{target.qualname}: definition not found after the edit")
    first = node.body[0] if node.body else None
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        raise NotEquivalent(f"{target.qualname}: the docstring is not the first statement")
    if target.decision == Decision.STALE:
        doc_start = edit.start + shift
    else:
        doc_start = edit.start + 1 + shift
    doc_end = edit.start + shift + len(edit.lines) - 1
    if (first.lineno, first.end_lineno) != (doc_start, doc_end):
        raise NotEquivalent(
            f"{target.qualname}: the docstring spans lines {first.lineno}-{first.end_lineno}, "
            f"expected {doc_start}-{doc_end}"
        )
    second = node.body[1] if len(node.body) > 1 else None
    if target.decision != Decision.STALE and second is None:
        raise NotEquivalent(f"{target.qualname}: the body lost its statements")


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove module, class and function docstrings in place (for comparison)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
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


@dataclass(frozen=True)
class Accepted:
    """An edit that passed every check, with its target."""

    target: Target
    edit: Edit


def prove_module(
    head_text: str, accepted: Sequence[Accepted]
) -> tuple[str, list[tuple[Accepted, str]]]:
    """Apply the accepted edits of one file and prove each is only a docstring.

    Returns the new text and the edits rejected with a reason.  One parse of the edited
    module checks every edit (:func:`prove_edit`); rejected edits are dropped and the
    rest re-proved.  Last, the whole-module AST comparison runs once as a final gate.
    """
    pending = sorted(accepted, key=lambda a: a.edit.start)
    rejected: list[tuple[Accepted, str]] = []
    while pending:
        new_text = apply_edits(head_text, [a.edit for a in pending])
        try:
            tree = parse(new_text)
        except (SyntaxError, ValueError) as exc:
            bad = _first_failing_alone(head_text, pending)
            rejected.append((bad, f"the edited file does not parse: {exc}"))
            pending.remove(bad)
            continue
        failures = []
        shift = 0
        defs = _defs_by_line(tree)  # one walk per parse, not one per edit
        for a in pending:
            try:
                prove_edit(a.target, a.edit, tree, shift, defs)
            except NotEquivalent as exc:
                failures.append((a, str(exc)))
            shift += len(a.edit.lines) - (a.edit.end - a.edit.start + 1)
        if failures:
            for a, why in failures:
                rejected.append((a, why))
                pending.remove(a)
            continue
        if not same_code(head_text, new_text):
            # Should be unreachable after prove_edit; keep the gate and find the culprit.
            bad = _first_failing_alone(head_text, pending)
            rejected.append((bad, "the edit changes the code, not only the docstring"))
            pending.remove(bad)
            continue
        return new_text, rejected
    return head_text, rejected


def _first_failing_alone(head_text: str, pending: Sequence[Accepted]) -> Accepted:
    for a in pending:
        if not same_code(head_text, apply_edits(head_text, [a.edit])):
            return a
    return pending[0]
