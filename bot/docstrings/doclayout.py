"""Where the sections and entries of a docstring are, in its raw source lines.

:func:`locate` reads a Google, NumPy or Sphinx docstring's lines as the file has them
into a :class:`Layout` of sections and entries, or raises :class:`Unlocatable` when
its structure cannot be edited without touching lines that must stay.

Layouts: Google https://google.github.io/styleguide/pyguide.html#383-functions-and-methods ,
NumPy https://numpydoc.readthedocs.io/en/latest/format.html , Sphinx
https://www.sphinx-doc.org/en/master/usage/domains/python.html#info-field-lists .
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.docstrings.models import Style

# Google section titles (Napoleon's list); a line "Title:" at a section's indent.
_GOOGLE_TITLE = re.compile(r"^(?P<indent>[ \t]*)(?P<title>[A-Z][A-Za-z ]*?)[ \t]*:[ \t]*$")
_GOOGLE_KIND = {
    "args": "params",
    "arguments": "params",
    "parameters": "params",
    "params": "params",
    "returns": "returns",
    "return": "returns",
    "yields": "yields",
    "yield": "yields",
    "raises": "raises",
}
GOOGLE_PARAM = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}\w+)[ \t]*(?:\([^)\n]*\))?[ \t]*:")
_GOOGLE_RAISE = re.compile(r"^(?P<indent>[ \t]*)(?P<name>[\w.]+)[ \t]*:")
_NUMPY_UNDERLINE = re.compile(r"^[ \t]*-{3,}[ \t]*$")
_NUMPY_KIND = {"parameters": "params", "returns": "returns", "yields": "yields", "raises": "raises"}
_NUMPY_PARAM = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}\w+)[ \t]*(?::.*)?$")
_NUMPY_RAISE = re.compile(r"^(?P<indent>[ \t]*)(?P<name>[\w.]+)[ \t]*$")
SPHINX_FIELD = re.compile(r"^(?P<indent>[ \t]*):(?P<key>\w+)(?P<args>[^:\n]*):")
_SPHINX_PARAM_KEYS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword"})
_SPHINX_TYPE_KEYS = frozenset({"type"})
_SPHINX_RAISE_KEYS = frozenset({"raises", "raise", "except", "exception"})
_SPHINX_RETURN_KEYS = frozenset({"returns", "return", "rtype"})
_SPHINX_YIELD_KEYS = frozenset({"yields", "yield", "ytype"})


class Unlocatable(Exception):
    """The docstring's structure cannot be located safely: regenerate instead."""


class MissingText(Unlocatable):
    """The answer has no text for an entry the update must add."""


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass
class Entry:
    """One entry (a parameter, an exception, a Sphinx ``:type``/``:rtype`` field):
    ``lines[start:end]`` of the literal, ``name`` as written (without stars)."""

    kind: str  # "params" | "type" | "raises" | "returns" | "yields"
    name: str
    start: int
    end: int


@dataclass
class Section:
    """A section (Google/NumPy) or, in Sphinx, the field list: header lines (none in
    Sphinx) from ``start``, entries up to ``end`` (exclusive, trailing blanks out)."""

    kind: str
    start: int
    end: int
    entries: list[Entry] = field(default_factory=list)


@dataclass
class Layout:
    """Where things are in a docstring's raw lines."""

    style: Style
    lines: list[str]
    sections: list[Section]

    def section(self, kind: str) -> Section | None:
        return next((s for s in self.sections if s.kind == kind), None)

    def entries(self, kind: str) -> list[Entry]:
        return [e for s in self.sections for e in s.entries if e.kind == kind]


# ---------------------------------------------------------------------- locating


def content_end(lines: list[str]) -> int:
    """Index after the last line that may hold entries: the closing quotes' line is
    excluded when it holds nothing else."""
    last = lines[-1].strip()
    return len(lines) - 1 if last in ('"""', "'''") else len(lines)


def _trim(lines: list[str], start: int, end: int) -> int:
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _entries_in(
    lines: list[str], start: int, end: int, kind: str, head: re.Pattern[str]
) -> list[Entry]:
    """Entries of one section body: heads at the body's indent, deeper lines follow."""
    body = [i for i in range(start, end) if lines[i].strip()]
    if not body:
        return []
    indent = indent_of(lines[body[0]])
    entries: list[Entry] = []
    for i in body:
        if indent_of(lines[i]) > indent:
            if not entries:
                raise Unlocatable(f"line {i + 1} of the docstring is indented before any entry")
            continue
        if indent_of(lines[i]) < indent:
            raise Unlocatable(f"line {i + 1} of the docstring breaks the section's indentation")
        m = head.match(lines[i])
        if m is None:
            raise Unlocatable(f"cannot read {lines[i].strip()!r} as a {kind} entry")
        if entries:
            entries[-1].end = _trim(lines, entries[-1].start, i)
        entries.append(Entry(kind, m["name"].lstrip("*"), i, i + 1))
    entries[-1].end = _trim(lines, entries[-1].start, end)
    return entries


def _locate_google(lines: list[str]) -> list[Section]:
    end = content_end(lines)
    base = min((indent_of(lines[i]) for i in range(1, end) if lines[i].strip()), default=0)
    headers = []
    for i in range(1, end):
        m = _GOOGLE_TITLE.match(lines[i])
        if m and len(m["indent"]) != base:
            continue
        nxt = next((j for j in range(i + 1, end) if lines[j].strip()), None)
        if m and nxt is not None and indent_of(lines[nxt]) > len(m["indent"]):
            headers.append((i, m["title"].lower(), len(m["indent"])))
    sections = []
    for i, title, indent in headers:
        stop = next(
            (j for j in range(i + 1, end) if lines[j].strip() and indent_of(lines[j]) <= indent),
            end,
        )
        kind = _GOOGLE_KIND.get(title, "other")
        section = Section(kind, i, _trim(lines, i, stop))
        if kind in ("params", "raises"):
            pattern = GOOGLE_PARAM if kind == "params" else _GOOGLE_RAISE
            section.entries = _entries_in(lines, i + 1, section.end, kind, pattern)
        sections.append(section)
    return sections


def _locate_numpy(lines: list[str]) -> list[Section]:
    end = content_end(lines)
    headers = [
        i
        for i in range(1, end - 1)
        if lines[i].strip()
        and _NUMPY_UNDERLINE.match(lines[i + 1])
        and indent_of(lines[i]) == indent_of(lines[i + 1])
    ]
    sections = []
    for n, i in enumerate(headers):
        stop = headers[n + 1] if n + 1 < len(headers) else end
        kind = _NUMPY_KIND.get(lines[i].strip().lower(), "other")
        section = Section(kind, i, _trim(lines, i, stop))
        if kind in ("params", "raises"):
            pattern = _NUMPY_PARAM if kind == "params" else _NUMPY_RAISE
            section.entries = _entries_in(lines, i + 2, section.end, kind, pattern)
            if kind == "params" and any(
                "," in lines[e.start].split(":")[0] for e in section.entries
            ):
                raise Unlocatable("an entry documents several parameters at once")
        sections.append(section)
    return sections


def _sphinx_kind(key: str) -> str | None:
    for keys, kind in (
        (_SPHINX_PARAM_KEYS, "params"),
        (_SPHINX_TYPE_KEYS, "type"),
        (_SPHINX_RAISE_KEYS, "raises"),
        (_SPHINX_RETURN_KEYS, "returns"),
        (_SPHINX_YIELD_KEYS, "yields"),
    ):
        if key in keys:
            return kind
    return None


def _locate_sphinx(lines: list[str]) -> list[Section]:
    """The field list as one section; other fields (``:meta:``…) are kept as they are.

    Fields sit at one indentation; a deeper line that starts like a field (a
    ``:class:`X``` role wrapped onto its own line) belongs to the body above it.
    """
    end = content_end(lines)
    starts = [i for i in range(1, end) if SPHINX_FIELD.match(lines[i])]
    if not starts:
        return []
    indent = min(indent_of(lines[i]) for i in starts)
    entries: list[Entry] = []
    for i in starts:
        m = SPHINX_FIELD.match(lines[i])
        if m is None or len(m["indent"]) != indent or (entries and i < entries[-1].end):
            continue
        # A field body runs on while lines are deeper or blank-then-deeper.
        j = i + 1
        while j < end and (not lines[j].strip() or indent_of(lines[j]) > indent):
            j += 1
        args = m["args"].split()
        kind = _sphinx_kind(m["key"]) or "other"
        name = args[-1].lstrip("*\\") if args else ""
        entries.append(Entry(kind, name, i, _trim(lines, i, j)))
    # Text after the fields (".. versionchanged::") stays where it is: new fields go
    # after the last field, never after that text.
    return [Section("fields", entries[0].start, entries[-1].end, entries)]


_LOCATORS = {Style.GOOGLE: _locate_google, Style.NUMPY: _locate_numpy, Style.SPHINX: _locate_sphinx}


def locate(lines: Sequence[str], style: Style) -> Layout:
    """The sections and entries of a docstring's raw ``lines`` written in ``style``.

    Raises :class:`Unlocatable` when the structure is not one this module can edit
    without touching lines it should keep.
    """
    if style not in _LOCATORS:
        raise Unlocatable(f"no {style} sections to update")
    lines = list(lines)
    layout = Layout(style, lines, _LOCATORS[style](lines))
    if not layout.entries("params"):
        raise Unlocatable(f"no {style} parameter entries found")
    return layout
