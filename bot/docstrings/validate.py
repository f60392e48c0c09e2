"""Check a candidate docstring's content before anyone sees it.

Model output is untrusted: the code under review may carry a prompt injection, and a
model may simply be wrong.  A docstring goes on only when its content agrees with the
signature (parameters, returns, yields, raises), has a real summary in the repo's mood
and holds nothing that could end the literal or hide text (:func:`check_parts`,
:func:`check_text`, :func:`check_updated_text`).  Writing it as a literal and applying
it is :mod:`bot.docstrings.edits`; proving the result is only a docstring is :mod:`bot.docstrings.proof`.

Findings are data (:class:`Violation`), fed back to the model for one repair round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import docstring_parser

from bot.docstrings import voice
from bot.docstrings.models import DocParts, Style, Target


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


def unsafe_reason(text: str) -> str | None:
    """Why ``text`` may not go into a docstring literal (None when it may)."""
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

    With ``mood`` (the repository's, ``bot.docstrings.voice.detect_mood``) a new summary must
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
        why = unsafe_reason(text)
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
        f'the summary must start "{want}", not "{word}": this repository writes {mood} summaries',
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
    why = unsafe_reason(text)
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
    """Check a stale docstring docgen updated in place (``bot.docstrings.update``).

    ``written`` is what docgen wrote into it: only that must be safe text (a
    maintainer's code fence is already in the file, and the suggestion's fence is
    longer than any backtick run in it).
    As :func:`check_text` and :func:`check_parts`, with the leniency the staleness
    rule has (``stale.stale_reason``) for what the maintainer chose: ``*args`` and
    ``**kwargs`` may stay undocumented, with ``**kwargs`` other documented names may
    be keywords it takes, a Returns/Yields they never wrote is not required, and a
    Raises entry they kept is theirs.
    """
    why = unsafe_reason(text if written is None else written)
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
