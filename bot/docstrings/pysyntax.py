"""Which newer Python a file's syntax needs, when the running one cannot parse it.

docgen parses the code under review with the ``ast`` of the Python it runs on.  A file
written for a newer Python fails there with a bare "invalid syntax"; this module finds
the constructs the running Python lacks, so that the skip says "uses Python 3.12 syntax;
this docgen runs on 3.11" instead.  What each release added to the grammar:

* 3.12 (https://docs.python.org/3/whatsnew/3.12.html): type parameter lists and
  ``type`` statements (PEP 695); f-strings whose replacement fields reuse the string's
  quotes, or hold backslashes, comments or line breaks (PEP 701);
* 3.13 (https://docs.python.org/3/whatsnew/3.13.html): type parameter defaults (PEP 696);
* 3.14 (https://docs.python.org/3/whatsnew/3.14.html): template strings ``t"..."``
  (PEP 750); ``except A, B:`` without parentheses (PEP 758).

How: a small lexer (:class:`_Lexer`) walks the text once, reads every string literal
the way Python 3.14 does (f- and t-strings with nested replacement fields), and blanks
strings and comments out; the statement-level constructs are regular expressions over
that blanked text, so a docstring that shows ``def f[T]()`` matches nothing.  A
construct explains a SyntaxError only when the error's line falls within it: a file
with a real mistake elsewhere keeps Python's own message.

Pure and total: text in, constructs out, never raises.
"""

from __future__ import annotations

import bisect
import re
import sys
from dataclasses import dataclass

__all__ = ["RUNNING", "Construct", "explain_syntax_error", "newer_constructs"]

Version = tuple[int, int]
RUNNING: Version = sys.version_info[:2]

PEP695_PARAMS = ((3, 12), "type parameters, PEP 695")
PEP695_ALIAS = ((3, 12), "a type statement, PEP 695")
PEP696 = ((3, 13), "a type parameter default, PEP 696")
PEP701_QUOTES = ((3, 12), "an f-string that reuses its quotes inside {…}, PEP 701")
PEP701_BACKSLASH = ((3, 12), "a backslash inside an f-string's {…}, PEP 701")
PEP701_COMMENT = ((3, 12), "a comment inside an f-string's {…}, PEP 701")
PEP701_LINE_BREAK = ((3, 12), "a line break inside a one-line f-string's {…}, PEP 701")
PEP750 = ((3, 14), "a template string, PEP 750")
PEP758 = ((3, 14), "except without parentheses, PEP 758")


@dataclass(frozen=True)
class Construct:
    """One use of syntax that needs Python ``version``, on ``line``..``end_line``."""

    version: Version
    what: str
    line: int  # 1-based, Python's numbering (\r\n, \r and \n end a line)
    end_line: int


def newer_constructs(text: str, running: Version = RUNNING) -> list[Construct]:
    """Every construct in ``text`` that needs a newer Python than ``running``, in order."""
    try:
        lexer = _Lexer(text)
        lexer.run()
    except RecursionError:  # f-strings nested hundreds deep: no verdict
        return []
    lines = _LineIndex(text)
    found = lexer.found + _statements(lexer.masked())
    constructs = [
        Construct(version, what, lines.line(start), lines.line(max(start, end - 1)))
        for (version, what), start, end in found
        if version > running
    ]
    return sorted(constructs, key=lambda c: (c.line, c.end_line))


def explain_syntax_error(
    text: str, lineno: int | None, running: Version = RUNNING
) -> Construct | None:
    """The newest construct that needs a newer Python and covers line ``lineno``.

    None when nothing newer is on that line: the SyntaxError is a real one.
    """
    if not lineno:
        return None
    covering = [c for c in newer_constructs(text, running) if c.line <= lineno <= c.end_line]
    return max(covering, key=lambda c: c.version, default=None)


# ------------------------------------------------------------------------- lexer

_WORD = re.compile(r"\w+")
# String prefixes, lower-cased (https://docs.python.org/3.14/reference/lexical_analysis.html#string-and-bytes-literals).
_PREFIXES = frozenset({"", "r", "u", "b", "br", "rb", "f", "fr", "rf", "t", "tr", "rt"})
_QUOTES = "\"'"
_LINE_BREAKS = "\r\n"


class _Lexer:
    """Reads strings and comments as Python 3.14 does; records what newer Pythons added.

    ``found`` holds ``(feature, start, end)`` offsets; ``blanked`` the top-level string
    and comment spans, for :meth:`masked`.  Every step moves forward, so bad input ends.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: list[tuple[tuple[Version, str], int, int]] = []
        self.blanked: list[tuple[int, int]] = []

    def run(self) -> None:
        pos = 0
        while pos < len(self.text):
            pos = self._code(pos, quote=None) + 1  # past a stray "}" / ":" / "!"

    def masked(self) -> str:
        """The text with strings and comments as spaces (line breaks kept)."""
        parts, pos = [], 0
        for start, end in self.blanked:
            parts.append(self.text[pos:start])
            parts.append(re.sub(r"[^\r\n]", " ", self.text[start:end]))
            pos = end
        parts.append(self.text[pos:])
        return "".join(parts)

    def _code(self, pos: int, quote: str | None) -> int:
        """Code from ``pos``; in a replacement field (``quote`` is the f-string's quote)
        stop at the ``}``, ``!`` or ``:`` that ends its expression.  Returns that offset."""
        text, depth = self.text, 0
        while pos < len(text):
            char = text[pos]
            if char == "#":
                end = _line_end(text, pos)
                if quote is None:
                    self.blanked.append((pos, end))
                else:
                    self.found.append((PEP701_COMMENT, pos, end))
                pos = end
            elif char in _QUOTES:
                pos = self._string(pos, pos, top=quote is None)
            elif char.isalnum() or char == "_":
                word = _WORD.match(text, pos)
                end = word.end() if word else pos + 1
                if end < len(text) and text[end] in _QUOTES and text[pos:end].lower() in _PREFIXES:
                    pos = self._string(pos, end, top=quote is None)
                else:
                    pos = end
            elif quote is not None and char in "([{":
                depth, pos = depth + 1, pos + 1
            elif quote is not None and char in ")]}":
                if depth == 0:
                    return pos
                depth, pos = depth - 1, pos + 1
            elif quote is not None and depth == 0 and _ends_expression(text, pos):
                return pos
            else:
                pos += 1
        return pos

    def _string(self, start: int, quote_at: int, *, top: bool) -> int:
        """The literal whose prefix starts at ``start`` and quote at ``quote_at``; its end."""
        text = self.text
        prefix = text[start:quote_at].lower()
        quote = text[quote_at]
        if text.startswith(quote * 3, quote_at):
            quote *= 3
        body = quote_at + len(quote)
        before = len(self.found)
        if "f" in prefix or "t" in prefix:
            end = self._template(body, quote, raw="r" in prefix, in_spec=False)
            if "t" in prefix:
                self.found.append((PEP750, start, end))
        else:
            end = _plain_end(text, body, quote)
        if top:
            self.blanked.append((start, end))
            # What a replacement field holds is reported on the whole string's lines:
            # that is where Python 3.11 stops, wherever the field is.
            self.found[before:] = [(feature, start, end) for feature, _, _ in self.found[before:]]
        return end

    def _template(self, pos: int, quote: str, *, raw: bool, in_spec: bool) -> int:
        """The literal part of an f/t-string (or a format spec, ending before ``}``)."""
        text = self.text
        while pos < len(text):
            if text.startswith(quote, pos):
                return pos if in_spec else pos + len(quote)
            char = text[pos]
            if char == "\\":
                if not raw and text.startswith("N{", pos + 1):  # \N{NAME} is no field
                    close = text.find("}", pos)
                    pos = close + 1 if close != -1 else len(text)
                else:  # "\{" still opens a field
                    pos += 1 if text[pos + 1 : pos + 2] in ("{", "}") else 2
            elif char == "{" and not in_spec and text.startswith("{{", pos):
                pos += 2
            elif char == "{":
                pos = self._field(pos, quote, raw=raw)
            elif char == "}":
                if in_spec:
                    return pos
                pos += 2 if text.startswith("}}", pos) else 1
            elif char in _LINE_BREAKS and len(quote) == 1:
                return pos  # unterminated: the line ends it
            else:
                pos += 1
        return pos

    def _field(self, brace: int, quote: str, *, raw: bool) -> int:
        """A replacement field ``{expression!conversion:spec}``; the offset after it."""
        text = self.text
        stop = self._code(brace + 1, quote)
        expression = text[brace + 1 : stop]
        # Python 3.11 read an f-string as one string token, then its fields as text:
        # no closing quote, no backslash, no line break in a one-line string.
        # https://peps.python.org/pep-0701/#rationale
        if quote in expression:
            self.found.append((PEP701_QUOTES, brace, stop))
        if "\\" in expression:
            self.found.append((PEP701_BACKSLASH, brace, stop))
        if len(quote) == 1 and any(c in expression for c in _LINE_BREAKS):
            self.found.append((PEP701_LINE_BREAK, brace, stop))
        pos = stop
        if text[pos : pos + 1] == "!":
            word = _WORD.match(text, pos + 1)
            pos = word.end() if word else pos + 1
        if text[pos : pos + 1] == ":":
            pos = self._template(pos + 1, quote, raw=raw, in_spec=True)
        return pos + 1 if text[pos : pos + 1] == "}" else pos


def _ends_expression(text: str, pos: int) -> bool:
    """A field's ``:`` (format spec) or ``!`` (conversion, not ``!=``) at bracket depth 0."""
    return text[pos] == ":" or (text[pos] == "!" and text[pos + 1 : pos + 2] != "=")


_LINE_BREAK = re.compile(r"[\r\n]")


def _line_end(text: str, pos: int) -> int:
    found = _LINE_BREAK.search(text, pos)
    return found.start() if found else len(text)


def _plain_end(text: str, pos: int, quote: str) -> int:
    """The end of a string without fields whose body starts at ``pos``."""
    while pos < len(text):
        if text.startswith(quote, pos):
            return pos + len(quote)
        char = text[pos]
        if char == "\\":
            pos += 3 if text.startswith("\r\n", pos + 1) else 2
        elif char in _LINE_BREAKS and len(quote) == 1:
            return pos  # unterminated
        else:
            pos += 1
    return pos


class _LineIndex:
    """Offsets to line numbers as Python counts them (\\r\\n, \\r and \\n end a line)."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


# -------------------------------------------------------------------- statements

_BOL = r"(?:^|(?<=\r))"  # a line start, a lone \r included (re.M knows only \n)
_SPACE = r"[ \t\f]"
_GENERIC_DEF = re.compile(
    rf"{_BOL}{_SPACE}*(?:async{_SPACE}+)?(?:def|class){_SPACE}+\w+{_SPACE}*(\[)", re.M
)
_TYPE_ALIAS = re.compile(rf"(?:{_BOL}|;){_SPACE}*type{_SPACE}+\w+{_SPACE}*([\[=])", re.M)
_EXCEPT = re.compile(rf"{_BOL}{_SPACE}*except\b{_SPACE}*\*?", re.M)


def _statements(masked: str) -> list[tuple[tuple[Version, str], int, int]]:
    """PEP 695/696/758 constructs, found in the text with strings and comments blanked."""
    found = []
    for match in _GENERIC_DEF.finditer(masked):
        found += _type_params(masked, match.start(), match.start(1), PEP695_PARAMS)
    for match in _TYPE_ALIAS.finditer(masked):
        if match[1] == "[":
            found += _type_params(masked, match.start(), match.start(1), PEP695_ALIAS)
        else:
            found.append((PEP695_ALIAS, match.start(), match.end()))
    for match in _EXCEPT.finditer(masked):
        clause = _top_level(masked, match.end(), stop=":", one_line=True)
        if "," in clause and not re.search(r"\bas\b", clause):
            found.append((PEP758, match.start(), match.end() + len(clause)))
    return found


def _type_params(
    masked: str, start: int, bracket: int, feature: tuple[Version, str]
) -> list[tuple[tuple[Version, str], int, int]]:
    """The construct for a ``[...]`` type parameter list, and PEP 696 if it has a default."""
    params = _top_level(masked, bracket + 1, stop="]", one_line=False)
    end = bracket + 1 + len(params) + 1
    found = [(feature, start, end)]
    if re.search(r"(?<![=<>!])=(?!=)", params):
        found.append((PEP696, start, end))
    return found


def _top_level(masked: str, pos: int, *, stop: str, one_line: bool) -> str:
    """From ``pos`` up to ``stop`` outside brackets (or a line break there if
    ``one_line``), the bracketed parts blanked: what is left is the list's own punctuation."""
    out, depth = [], 0
    for index in range(pos, len(masked)):
        char = masked[index]
        if depth == 0 and (char == stop or (one_line and char in _LINE_BREAKS)):
            break
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                break
        out.append(char if depth == 0 and char not in ")]}" else " ")
    return "".join(out)
