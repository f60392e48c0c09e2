"""Prove a candidate docstring is correct and harmless before anyone sees it.

Model output is untrusted: the code under review may carry a prompt injection, and a
model may simply be wrong.  Nothing leaves this module unless

* its content agrees with the signature (parameters, returns, yields, raises) and has a
  real summary (:func:`check_parts`, :func:`check_text`);
* it is written as a string literal that cannot end early (:func:`literal_lines`);
* inserting it changes nothing but the docstring, *as GitHub will apply it*: the
  suggestion replaces git's lines (split at ``\\n`` only, :mod:`bot.lines`) of the head
  file, alone and together with the file's other suggestions; the edited region parses
  as exactly the first statement of that definition, a string constant spanning
  exactly the new lines; the module's AST with docstrings removed equals the head's;
  and its token stream outside docstring literals — comments included — is the
  head's (:func:`prove_edit`, :func:`prove_module`).

Findings are data (:class:`Violation`), fed back to the model for one repair round.
"""

from __future__ import annotations

import ast
import functools
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import docstring_parser

from bot import voice
from bot.lines import LineMap, python_lines
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
WRONG_MOOD = "DG104"
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
    parts: DocParts,
    target: Target,
    *,
    allow_restated: bool = False,
    mood: str | None = None,
) -> list[Violation]:
    """Check a structured candidate against the facts of the definition.

    With ``mood`` (the repository's, ``bot.voice.detect_mood``) a new summary must
    start in it: "Return …" and "Returns …" are each right in the repository that
    writes them.  A summary kept from the maintainer's docstring is not judged.
    """
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
    elif mood is not None and (wrong := _wrong_mood(summary, target, mood)):
        out.append(wrong)

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


def _wrong_mood(summary: str, target: Target, mood: str) -> Violation | None:
    found = voice.mood_of(summary)
    if found is None or found == mood or voice.authored(summary, target):
        return None
    word = summary.split(None, 1)[0]
    want = voice.in_mood(word, mood)
    return Violation(
        WRONG_MOOD,
        f'the summary must start "{want}", not "{word}": this repository writes '
        f"{mood} summaries",
    )


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


def _parse_styled(text: str, style: Style) -> docstring_parser.Docstring | list[Violation]:
    """``text`` parsed in ``style``; ``[]`` for a style with no parser (plain), or the
    violation that says it does not parse."""
    if style not in _PARSER_STYLE:
        return []
    try:
        return docstring_parser.parse(text, style=_PARSER_STYLE[style])
    except docstring_parser.ParseError as exc:
        return [Violation(UNPARSEABLE, f"does not parse as a {style} docstring: {exc}")]


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
    parsed = _parse_styled(text, style)
    if not isinstance(parsed, docstring_parser.Docstring):
        return parsed
    documented = [
        p.arg_name
        for p in parsed.params
        if p.args and p.args[0] in ("param", "parameter", "arg", "argument", "key", "keyword")
    ]
    if not documented:
        documented = [p.arg_name for p in parsed.params]
    return _check_params(documented, target)


def check_updated_text(
    text: str, target: Target, style: Style, written: str | None = None
) -> list[Violation]:
    """Check a stale docstring docgen updated in place (``bot.update``).

    ``written`` is what docgen wrote into it: only that must be safe text (a
    maintainer's code fence is already in the file, and the suggestion's fence is
    longer than any backtick run in it).
    As :func:`check_text` and :func:`check_parts`, with the leniency the staleness
    rule has (``extract._stale_reason``) for what the maintainer chose: ``*args`` and
    ``**kwargs`` may stay undocumented, with ``**kwargs`` other documented names may
    be keywords it takes, a Returns/Yields they never wrote is not required, and a
    Raises entry they kept is theirs.
    """
    why = _unsafe(text if written is None else written)
    if why:
        return [Violation(UNSAFE_TEXT, f"the docstring {why}")]
    parsed = _parse_styled(text, style)
    if not isinstance(parsed, docstring_parser.Docstring):
        return parsed
    documented = [
        _strip_stars(p.arg_name) for p in parsed.params if p.args and p.args[0] in _PARAM_KEYS
    ]
    # No duplicate check: docgen only adds names that are not documented, so any
    # duplicate is the maintainer's and already in the file (pydantic has one).
    out: list[Violation] = []
    params = target.documentable_params
    missing = [p.name for p in params if p.name not in documented and p.kind not in _VAR]
    if missing:
        out.append(Violation(MISSING_PARAM, f"does not document parameters: {', '.join(missing)}"))
    if not any(p.kind == "varkw" for p in params):
        extra = [n for n in documented if n not in {p.name for p in params}]
        if extra:
            out.append(
                Violation(
                    UNKNOWN_PARAM,
                    f"documents parameters the signature does not have: {', '.join(extra)}",
                )
            )
    if target.kind == "class":
        return out
    found = _check_sections(
        has_returns=any(not r.is_generator for r in parsed.many_returns),
        has_yields=any(r.is_generator for r in parsed.many_returns),
        raises=[r.type_name or "" for r in parsed.raises],
        target=target,
    )
    # An exception documented but not raised here may come from a callee: the
    # maintainer's entry (docgen only adds exceptions the code raises).
    waived = (MISSING_RETURNS, MISSING_YIELDS, UNKNOWN_RAISES)
    return out + [v for v in found if v.code not in waived]


_PARAM_KEYS = ("param", "parameter", "arg", "argument", "key", "keyword")
_VAR = ("vararg", "varkw")


# ----------------------------------------------------------------- the literal


DOUBLE_QUOTES = '"""'
SINGLE_QUOTES = "'''"


def literal_lines(text: str, indent: str, quote: str = DOUBLE_QUOTES) -> list[str]:
    """The docstring as source lines, indented, with safe quoting.

    ``text`` is the cleaned content (first line = summary); ``quote`` the file's triple
    quote (:func:`file_quote`).  A raw string is used when the text has backslashes, so
    ``\\n`` in prose stays two characters.  The closing quotes go on their own line
    whenever the text spans lines or ends with a quote or backslash, so the literal can
    never end early.
    """
    if _unsafe(text):
        raise ValueError("unsafe docstring text")
    if quote not in (DOUBLE_QUOTES, SINGLE_QUOTES):
        raise ValueError(f"not a triple quote: {quote!r}")
    prefix = "r" if "\\" in text else ""
    lines = text.strip("\n").split("\n")
    lines = [line.rstrip() for line in lines]
    if len(lines) == 1 and not lines[0].endswith(('"', "'", "\\")):
        return [f"{indent}{prefix}{quote}{lines[0]}{quote}"]
    out = [f"{indent}{prefix}{quote}{lines[0]}"]
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f"{indent}{quote}")
    return out


def _documented(
    tree: ast.AST,
) -> Iterable[tuple[ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, ast.Expr]]:
    """``(scope, docstring expression)`` for every module, class and function with one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield node, first


@functools.lru_cache(maxsize=16)
def file_quote(text: str) -> str:
    """The triple quote the file's docstrings are written with: ``'''`` only when
    most of them use it (black and ruff write ``\"\"\"``, as PEP 257 asks)."""
    try:
        tree = parse_quietly(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return DOUBLE_QUOTES
    lines = text.splitlines()
    votes: Counter[str] = Counter()
    for _, doc in _documented(tree):
        if doc.lineno <= len(lines):
            line = lines[doc.lineno - 1].encode()[doc.col_offset :].decode("utf-8", "replace")
            votes[line.lstrip("rRuUbB")[:3]] += 1
    return SINGLE_QUOTES if votes[SINGLE_QUOTES] > votes[DOUBLE_QUOTES] else DOUBLE_QUOTES


def blank_after(target: Target, head_lines: Sequence[str]) -> bool:
    """True when a new docstring for ``target`` needs a blank line after it.

    Black and ruff's formatter put exactly one empty line after a class docstring
    (black's "blank line after class docstring", stable since 24.1.0); a file that was
    clean under them stays clean only if the suggestion adds it.  Function docstrings
    need none.
    https://black.readthedocs.io/en/stable/the_black_code_style/current_style.html#empty-lines
    """
    if target.kind != "class" or target.decision == Decision.STALE:
        return False
    after = target.header_end  # 0-based index of the line after the header
    return after < len(head_lines) and head_lines[after].strip() != ""


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


def make_edit(
    target: Target, text: str, head_lines: Sequence[str], quote: str = DOUBLE_QUOTES
) -> Edit:
    """The :class:`Edit` that puts ``text`` in as ``target``'s docstring.

    ``head_lines`` are the head file's lines (Python's) without line endings.  A stale
    docstring's lines are replaced whole, so whatever shares them with the old literal
    — the text before it, a ``; statement`` or a comment after it — is carried over
    onto the new literal's first and last line.  A new class docstring is followed by
    an empty line when the body does not start with one (:func:`blank_after`), so a
    formatter-clean file stays clean.  Raises ValueError when the definition has no
    place a suggestion can safely target.
    """
    region = edit_region(target)
    if isinstance(region, str):
        raise ValueError(region)
    start, end = region
    new = literal_lines(text, target.body_indent, quote)
    if target.decision == Decision.STALE and target.docstring_span is not None:
        first, last = head_lines[start - 1], head_lines[end - 1]
        begin, finish = target.docstring_cols or (len(first) - len(first.lstrip()), len(last))
        new[0] = first[:begin] + new[0][len(target.body_indent) :]
        new[-1] += last[finish:]
        return Edit(start, end, tuple(new))
    blank = ("",) if blank_after(target, head_lines) else ()
    return Edit(start, end, (head_lines[start - 1], *new, *blank))


# --------------------------------------------------------------- applying edits


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept, split only on \\n, \\r\\n and \\r (as Python does)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def newline_of(text: str) -> str:
    """The file's line ending: that of its first line (CRLF stays CRLF).

    A lone ``\\r`` counts only in a file without ``\\n``: in a ``\\n`` file it is a
    stray (an old Mac line ending in a comment), and new lines ending with it would
    not be lines for git or GitHub.
    """
    m = re.search(r"\r?\n", text) or re.search(r"\r", text)
    return m.group(0) if m else "\n"


def git_span(edit: Edit, lines: LineMap) -> tuple[int, int]:
    """The git lines (GitHub's ``start_line``..``line``) an edit's Python lines are."""
    return lines.git(edit.start), lines.git(edit.end)


def apply_suggestions(text: str, suggestions: Iterable[tuple[int, int, Sequence[str]]]) -> str:
    """``text`` after GitHub commits ``(start_line, line, new lines)`` suggestions.

    GitHub's lines are git's: the blob split at ``\\n`` only; a suggestion replaces
    lines ``start_line``..``line`` with the lines of its block, joined by ``\\n``.
    https://docs.github.com/en/pull-requests/collaborating-with-pull-requests/reviewing-changes-in-pull-requests/incorporating-feedback-in-your-pull-request#applying-suggested-changes
    """
    lines = text.split("\n")
    for start, end, new in sorted(suggestions, key=lambda s: s[0], reverse=True):
        lines[start - 1 : end] = new
    return "\n".join(lines)


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
    empty (:func:`blank_after`); anything else stays part of the literal's span, where
    the span check rejects it."""
    if target.decision != Decision.STALE and len(edit.lines) > 2 and edit.lines[-1] == "":
        return 1
    return 0


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove module, class and function docstrings in place (for comparison)."""
    for node, _ in list(_documented(tree)):  # collected first: bodies change below
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
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                end_line = first.end_lineno or first.lineno
                start = (first.lineno, char(first.lineno, first.col_offset))
                out.append((start, (end_line, char(end_line, first.end_col_offset or 0))))
                node.body = body[1:] or [ast.Pass()]
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
    :func:`apply_suggestions`): one parse of all of them together checks every edit
    (:func:`prove_edit`), then the whole module — its AST without docstrings and its
    tokens outside them — is compared with the head's; each edit is also proven
    applied alone (:func:`_prove_alone`, on its definition's lines).  Rejected edits
    are dropped and the rest re-proved.  Returns the file with the edits applied the
    local way (:func:`apply_edits`, line endings kept; proven too when it differs) and
    the rejected edits with a reason.
    """
    lines = LineMap(head_text)
    pending = sorted(accepted, key=lambda a: a.edit.start)
    rejected: list[tuple[Accepted, str]] = []
    for a in list(pending):
        why = _not_placeable(a.edit, lines)
        if why:
            rejected.append((a, why))
            pending.remove(a)
    head_view: _View | None = None
    while pending:
        github_text = apply_suggestions(
            head_text, [(*git_span(a.edit, lines), a.edit.lines) for a in pending]
        )
        try:
            tree = parse(github_text)
        except (SyntaxError, ValueError) as exc:
            bad = _first_failing_alone(head_text, pending, lines)
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
        failures += [(a, why) for a in pending if (why := _prove_alone(head_text, a, lines))]
        if failures:
            for a, why in failures:
                if a in pending:
                    rejected.append((a, why))
                    pending.remove(a)
            continue
        if head_view is None:
            head_view = _view(head_text)
        why = _differs(head_view, _view(github_text, tree))
        local_text = apply_edits(head_text, [a.edit for a in pending])
        if not why and local_text != github_text:  # line endings differ: prove it too
            try:
                why = _differs(head_view, _view(local_text))
            except (SyntaxError, ValueError) as exc:
                why = f"the edited file does not parse: {exc}"
        if why:
            # Should be unreachable after the proofs above; keep the gate, find the culprit.
            bad = _first_failing_alone(head_text, pending, lines)
            rejected.append((bad, why))
            pending.remove(bad)
            continue
        return local_text, rejected
    return head_text, rejected


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
