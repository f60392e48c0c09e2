"""Update a stale docstring in place: keep what is still true, byte for byte.

A docstring whose parameters disagree with the signature is not rewritten.  Its raw
source lines (the literal exactly as in the file) are located into sections and
entries; then only what has to change changes:

- the entry of a parameter that no longer exists is removed, except a rename (one
  entry gone and one parameter new at the same position): the entry keeps its
  description under the new name;
- a new parameter or a missing Raises entry gets lines written in the surrounding
  entries' indentation, wrapped at the file's own width;
- a Returns/Yields section the code contradicts is removed, and a Raises entry when
  the PR deleted that ``raise`` (one for a callee's exception stays).  A Returns the
  maintainer never wrote is not added: that was their choice.

Everything else — summary, description, examples, the other entries and their order,
the quotes — stays as it was.  The merge is docgen's, not the model's: a model (or the
offline skeleton) only supplies the text of the new entries.  When the structure
cannot be located safely, :func:`plan` says why and the caller regenerates instead.

Layouts: Google https://google.github.io/styleguide/pyguide.html#383-functions-and-methods ,
NumPy https://numpydoc.readthedocs.io/en/latest/format.html , Sphinx
https://www.sphinx-doc.org/en/master/usage/domains/python.html#info-field-lists .
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from bot import style as style_mod
from bot.models import DocParts, Param, Style, Target

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
_GOOGLE_PARAM = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}\w+)[ \t]*(?:\([^)\n]*\))?[ \t]*:")
_GOOGLE_RAISE = re.compile(r"^(?P<indent>[ \t]*)(?P<name>[\w.]+)[ \t]*:")
_NUMPY_UNDERLINE = re.compile(r"^[ \t]*-{3,}[ \t]*$")
_NUMPY_KIND = {"parameters": "params", "returns": "returns", "yields": "yields", "raises": "raises"}
_NUMPY_PARAM = re.compile(r"^(?P<indent>[ \t]*)(?P<name>\*{0,2}\w+)[ \t]*(?::.*)?$")
_NUMPY_RAISE = re.compile(r"^(?P<indent>[ \t]*)(?P<name>[\w.]+)[ \t]*$")
_SPHINX_FIELD = re.compile(r"^(?P<indent>[ \t]*):(?P<key>\w+)(?P<args>[^:\n]*):")
_SPHINX_PARAM_KEYS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword"})
_SPHINX_TYPE_KEYS = frozenset({"type"})
_SPHINX_RAISE_KEYS = frozenset({"raises", "raise", "except", "exception"})
_SPHINX_RETURN_KEYS = frozenset({"returns", "return", "rtype"})
_SPHINX_YIELD_KEYS = frozenset({"yields", "yield", "ytype"})

DEFAULT_WIDTH = 88
CLASS_WITHOUT_INIT = "a class documents its __init__'s parameters, not among the PR's changes"
MIN_WIDTH = 72


class Unlocatable(Exception):
    """The docstring's structure cannot be located safely: regenerate instead."""


class MissingText(Unlocatable):
    """The answer has no text for an entry the update must add."""


def _indent(line: str) -> int:
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


def _content_end(lines: list[str]) -> int:
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
    indent = _indent(lines[body[0]])
    entries: list[Entry] = []
    for i in body:
        if _indent(lines[i]) > indent:
            if not entries:
                raise Unlocatable(f"line {i + 1} of the docstring is indented before any entry")
            continue
        if _indent(lines[i]) < indent:
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
    end = _content_end(lines)
    base = min((_indent(lines[i]) for i in range(1, end) if lines[i].strip()), default=0)
    headers = []
    for i in range(1, end):
        m = _GOOGLE_TITLE.match(lines[i])
        if m and len(m["indent"]) != base:
            continue
        nxt = next((j for j in range(i + 1, end) if lines[j].strip()), None)
        if m and nxt is not None and _indent(lines[nxt]) > len(m["indent"]):
            headers.append((i, m["title"].lower(), len(m["indent"])))
    sections = []
    for i, title, indent in headers:
        stop = next(
            (j for j in range(i + 1, end) if lines[j].strip() and _indent(lines[j]) <= indent),
            end,
        )
        kind = _GOOGLE_KIND.get(title, "other")
        section = Section(kind, i, _trim(lines, i, stop))
        if kind in ("params", "raises"):
            pattern = _GOOGLE_PARAM if kind == "params" else _GOOGLE_RAISE
            section.entries = _entries_in(lines, i + 1, section.end, kind, pattern)
        sections.append(section)
    return sections


def _locate_numpy(lines: list[str]) -> list[Section]:
    end = _content_end(lines)
    headers = [
        i
        for i in range(1, end - 1)
        if lines[i].strip()
        and _NUMPY_UNDERLINE.match(lines[i + 1])
        and _indent(lines[i]) == _indent(lines[i + 1])
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
    end = _content_end(lines)
    starts = [i for i in range(1, end) if _SPHINX_FIELD.match(lines[i])]
    if not starts:
        return []
    indent = min(_indent(lines[i]) for i in starts)
    entries: list[Entry] = []
    for i in starts:
        m = _SPHINX_FIELD.match(lines[i])
        if m is None or len(m["indent"]) != indent or (entries and i < entries[-1].end):
            continue
        # A field body runs on while lines are deeper or blank-then-deeper.
        j = i + 1
        while j < end and (not lines[j].strip() or _indent(lines[j]) > indent):
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


# -------------------------------------------------------------------- the width


def file_width(text: str) -> int:
    """The column the file wraps its docstrings at (else its code), as it is written.

    The longest line of the module's docstrings; without docstrings, of its code;
    at least :data:`MIN_WIDTH`.
    """
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return DEFAULT_WIDTH
    spans: list[int] = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body or not isinstance(body[0], ast.Expr):
            continue
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            spans.extend(range(value.lineno, (value.end_lineno or value.lineno) + 1))
    pool = [lines[n - 1] for n in spans if n - 1 < len(lines)] or lines
    widths = [len(line.rstrip().expandtabs(4)) for line in pool]
    # Short docstrings show no wrap column at all: never narrower than PEP 8's limit
    # for docstrings, https://peps.python.org/pep-0008/#maximum-line-length
    return max(max(widths, default=DEFAULT_WIDTH), MIN_WIDTH)


# --------------------------------------------------------------------- merging


@dataclass
class Merged:
    """The new raw lines of the literal and what changed, in words."""

    lines: list[str]
    changes: list[str]
    written: list[str] = field(default_factory=list)  # the lines docgen wrote

    @property
    def summary(self) -> str:
        return "updated: " + "; ".join(self.changes) if self.changes else "updated"


def _text_column(layout: Layout, e: Entry) -> int | None:
    """Where the description starts on an entry's first line (Google, Sphinx)."""
    line = layout.lines[e.start]
    m = _SPHINX_FIELD.match(line) if layout.style == Style.SPHINX else _GOOGLE_PARAM.match(line)
    if m is None or not line[m.end() :].strip():
        return None
    return m.end() + _indent(line[m.end() :])


def _aligned(layout: Layout, entries: list[Entry]) -> bool:
    """Whether the siblings align continuation lines under their description's start
    (click's ``:param name: text`` / ``                 more text``)."""
    votes = []
    for e in entries:
        rest = [k for k in range(e.start + 1, e.end) if layout.lines[k].strip()]
        column = _text_column(layout, e) if layout.style != Style.NUMPY else None
        if rest and column is not None:
            votes.append(_indent(layout.lines[rest[0]]) == column)
    return bool(votes) and all(votes)


def _continuation(layout: Layout, entries: list[Entry], head_indent: int) -> str:
    """The indentation of an entry's continuation lines, as the siblings write it."""
    for e in entries:
        for k in range(e.start + 1, e.end):
            if layout.lines[k].strip():
                return layout.lines[k][: _indent(layout.lines[k])]
    return " " * (head_indent + 4)


def _head_indent(layout: Layout, entries: list[Entry]) -> str:
    line = layout.lines[entries[0].start]
    return line[: _indent(line)]


def _typed(layout: Layout, entries: list[Entry]) -> bool:
    """Whether the sibling parameter entries write types."""
    heads = [layout.lines[e.start] for e in entries if e.kind == "params"]
    if layout.style == Style.GOOGLE:
        return any(re.match(r"^\s*\*{0,2}\w+\s*\(", h) for h in heads)
    if layout.style == Style.NUMPY:
        return any(":" in h for h in heads)
    return bool(layout.entries("type"))


def _fill(text: str, width: int, first: str, rest: str, aligned: bool = False) -> list[str]:
    if aligned:
        rest = " " * len(first)
    return style_mod.fill(text, width, first, rest)


class _Writer:
    """New entries' lines, in the file's layout."""

    def __init__(self, layout: Layout, width: int) -> None:
        self.layout = layout
        self.width = width

    def param(self, param: Param, desc: str, siblings: list[Entry]) -> list[str]:
        lay = self.layout
        head = _head_indent(lay, siblings)
        cont = _continuation(lay, siblings, len(head))
        typed = _typed(lay, siblings)
        name = param.display_name
        if lay.style == Style.GOOGLE:
            ann = style_mod.google_type(param.annotation) if typed else None
            label = f"{name} ({ann})" if ann else name
            return _fill(desc, self.width, f"{head}{label}: ", cont, _aligned(lay, siblings))
        if lay.style == Style.NUMPY:
            ann = style_mod.clean_annotation(param.annotation) if typed else None
            out = [f"{head}{name} : {ann}" if ann else f"{head}{name}"]
            return out + (_fill(desc, self.width, cont, cont) if desc.strip() else [])
        out = _fill(desc, self.width, f"{head}:param {name}: ", cont, _aligned(lay, siblings))
        ann = style_mod.clean_annotation(param.annotation) if typed else None
        return out + ([f"{head}:type {name}: {ann}"] if ann else [])

    def raises(self, exc: str, desc: str, siblings: list[Entry], head: str) -> list[str]:
        lay = self.layout
        cont = _continuation(lay, siblings, len(head)) if siblings else head + "    "
        if lay.style == Style.GOOGLE:
            return _fill(desc, self.width, f"{head}{exc}: ", cont)
        if lay.style == Style.NUMPY:
            return [f"{head}{exc}", *(_fill(desc, self.width, cont, cont) if desc else [])]
        return _fill(desc, self.width, f"{head}:raises {exc}: ", cont)


def _rename(line: str, old: str, new: str, after: int = 0) -> str:
    """``line`` with the first whole-word ``old`` (from column ``after``) named ``new``."""
    m = re.compile(rf"(?<![\w]){re.escape(old)}(?![\w])").search(line, after)
    if m is None:
        raise Unlocatable(f"cannot find {old!r} in its entry")
    return line[: m.start()] + new + line[m.end() :]


_WRITTEN_TYPE = {
    Style.GOOGLE: re.compile(r"^[ \t]*\*{0,2}\w+[ \t]*\((?P<type>[^)\n]*)\)"),
    Style.NUMPY: re.compile(r"^[ \t]*\*{0,2}\w+[ \t]*:[ \t]*(?P<type>.*\S)"),
    Style.SPHINX: re.compile(r"^[ \t]*:type[ \t]+\*{0,2}\w+:[ \t]*(?P<type>.*\S)"),
}


def _retype(line: str, style: Style, annotation: str | None) -> str:
    """A renamed entry's written type, replaced when the new parameter's annotation
    says otherwise (``ratio (float)`` → ``factor (int)``); kept when it agrees or
    adds to it (``float, optional`` for ``float``), or when there is no annotation."""
    m = _WRITTEN_TYPE[style].match(line) if style in _WRITTEN_TYPE else None
    if style == Style.GOOGLE:
        cleaned = style_mod.google_type(annotation)
    else:
        cleaned = style_mod.clean_annotation(annotation)
    if m is None or cleaned is None or cleaned in m["type"]:
        return line
    return line[: m.start("type")] + cleaned + line[m.end("type") :]


def _field_key_end(line: str) -> int:
    m = _SPHINX_FIELD.match(line)
    return m.end("key") if m else 0


def _renames(entries: list[Entry], params: Sequence[Param]) -> dict[str, str]:
    """old name → new name: an entry whose parameter is gone, where a new parameter
    stands at the same position of the signature."""
    if any(p.kind == "varkw" for p in params):
        return {}  # documented names it lacks may be keyword arguments **kwargs takes
    names = [p.name if p.kind not in ("vararg", "varkw") else "" for p in params]
    documented = [e.name for e in entries]
    gone = [(i, n) for i, n in enumerate(documented) if n not in names]
    new = {i: n for i, n in enumerate(names) if n and n not in documented}
    return {n: new[i] for i, n in gone if i in new}


def _parts_text(pairs: Sequence[tuple[str, str]], name: str) -> str:
    short = name.lstrip("*").rsplit(".", 1)[-1]
    for key, desc in pairs:
        if key.lstrip("*").strip().rsplit(".", 1)[-1] == short:
            return desc
    return ""


def _needs(target: Target) -> list[str]:
    """The exceptions the code calls for documenting."""
    return [] if target.kind == "class" else list(target.raises)


def merge(
    layout: Layout,
    target: Target,
    parts: DocParts,
    width: int,
    gone_raises: Collection[str] = (),
) -> Merged:
    """The docstring's raw lines with only the entries that had to change changed.

    ``parts`` supplies the text of new entries (new parameters, missing Raises
    entries); nothing else of it is used.  ``gone_raises`` are the exceptions whose
    ``raise`` the PR deleted: only their entries go (one for an exception a callee
    raises is the maintainer's knowledge, not the code's).  Raises
    :class:`MissingText` when a needed text is missing, :class:`Unlocatable` when an
    edit cannot be placed safely.
    """
    m = _Merge(layout, target, parts, width, {_short(n) for n in gone_raises})
    m.params()
    m.returns()
    m.raises()
    return m.result()


class _Merge:
    """One merge: edits are collected by line index, then applied in one pass."""

    def __init__(
        self, layout: Layout, target: Target, parts: DocParts, width: int, gone: set[str]
    ) -> None:
        self.gone_raises = gone
        self.layout = layout
        self.lines = layout.lines
        self.target = target
        self.parts = parts
        self.writer = _Writer(layout, width)
        self.changes: list[str] = []
        self.replace: dict[int, list[str]] = {}  # line index → its new lines
        self.insert: dict[int, list[str]] = {}  # lines to insert before a line index

    def _closing_shared(self) -> bool:
        return _content_end(self.lines) == len(self.lines)

    def drop(self, e: Entry) -> None:
        if e.end >= len(self.lines) and self._closing_shared():
            raise Unlocatable("the closing quotes share a line with an entry to remove")
        for k in range(e.start, e.end):
            self.replace[k] = []

    def add(self, at: int, new: list[str]) -> None:
        if at >= len(self.lines) or (at == len(self.lines) - 1 and self._closing_shared()):
            raise Unlocatable("the closing quotes share a line with the last entry")
        self.insert.setdefault(at, []).extend(new)

    def _types_of(self, name: str) -> list[Entry]:
        return [t for t in self.layout.entries("type") if t.name == name]

    def _rename(self, e: Entry, param: Param) -> None:
        lines, new = self.lines, param.name
        skip = _field_key_end(lines[e.start]) if self.layout.style == Style.SPHINX else 0
        head = _rename(lines[e.start], e.name, new, skip)
        self.replace[e.start] = [_retype(head, self.layout.style, param.annotation)]
        for t in self._types_of(e.name):
            line = _rename(lines[t.start], e.name, new, _field_key_end(lines[t.start]))
            self.replace[t.start] = [_retype(line, Style.SPHINX, param.annotation)]
        self.changes.append(f"renamed {e.name} to {new}")

    def params(self) -> None:
        """Keep, rename or remove each entry; add the new parameters in signature order."""
        params = self.target.documentable_params
        names = {p.name for p in params}
        entries = self.layout.entries("params")
        renames = _renames(entries, params)
        # With **kwargs, other documented names may be keyword arguments it takes.
        has_varkw = any(p.kind == "varkw" for p in params)
        kept: dict[str, Entry] = {}
        for e in entries:
            if e.name in names:
                kept[e.name] = e
            elif e.name in renames:
                self._rename(e, next(p for p in params if p.name == renames[e.name]))
                kept[renames[e.name]] = e
            elif not has_varkw:
                for t in [e, *self._types_of(e.name)]:
                    self.drop(t)
                self.changes.append(f"removed {e.name}")
        after = entries[0].start
        added = False
        for p in params:
            if p.name in kept:
                after = _after_entry(self.layout, kept[p.name].end)
                continue
            if p.kind in ("vararg", "varkw"):
                continue  # the validator allows these undocumented
            desc = _parts_text(self.parts.params, p.name)
            if not desc.strip():
                raise MissingText(f"does not document parameters: {p.name}")
            self.add(after, self.writer.param(p, desc, entries))
            self.changes.append(f"added parameter {p.name}")
            added = True
        section = self.layout.section("params")
        if not kept and not added and section is not None:
            self.drop(_whole(self.layout, section))  # no parameter left, no empty "Args:"

    def returns(self) -> None:
        """Drop a Returns/Yields the code contradicts.

        One the maintainer never wrote is not added: many projects (click) say what
        comes back in the prose, and a skeleton "The result." is noise there.
        """
        if self.target.kind == "class":
            return  # a class's sections are about its instances, not a call
        lay = self.layout
        for kind, title in (("returns", "Returns"), ("yields", "Yields")):
            if not _spurious(kind, self.target):
                continue
            if lay.style == Style.SPHINX:
                spans = lay.entries(kind)
            else:
                spans = [_whole(lay, s) for s in lay.sections if s.kind == kind]
            for span in spans:
                self.drop(span)
            if spans:
                self.changes.append(f"removed {title}")

    def raises(self) -> None:
        """Drop entries of exceptions the PR stopped raising; add the missing ones."""
        lay = self.layout
        raised = _needs(self.target)
        entries = lay.entries("raises")
        kept = [
            e
            for e in entries
            if _short(e.name) not in self.gone_raises - {_short(r) for r in raised}
        ]
        for e in entries:
            if e not in kept:
                self.drop(e)
                self.changes.append(f"removed raises {e.name}")
        have = {e.name.rsplit(".", 1)[-1] for e in kept}
        missing = [r for r in raised if r.rsplit(".", 1)[-1] not in have]
        section = lay.section("raises")
        if not missing:
            if entries and not kept and section is not None:
                self.drop(_whole(lay, section))
            return
        new: list[str] = []
        head = self._raises_indent(entries)
        for exc in missing:
            desc = _parts_text(self.parts.raises, exc)
            if not desc.strip():
                raise MissingText(f"does not document raised exceptions: {exc}")
            new += self.writer.raises(exc, desc, entries, head)
            self.changes.append(f"added raises {exc}")
        if entries:
            self.add(entries[-1].end, new)
        elif lay.style == Style.SPHINX:
            self.add(lay.sections[0].end, new)
        else:
            self.add(self._after_sections(), self._raises_title() + new)

    def _section_indent(self) -> str:
        section = self.layout.section("params")
        assert section is not None  # locate() found parameter entries
        line = self.lines[section.start]
        return line[: _indent(line)]

    def _raises_indent(self, entries: list[Entry]) -> str:
        if entries:
            return _head_indent(self.layout, entries)
        if self.layout.style == Style.SPHINX:
            return _head_indent(self.layout, self.layout.entries("params"))
        # NumPy entries sit at the section's indent; Google's one level deeper.
        deeper = "    " if self.layout.style == Style.GOOGLE else ""
        return self._section_indent() + deeper

    def _raises_title(self) -> list[str]:
        head = self._section_indent()
        if self.layout.style == Style.GOOGLE:
            return ["", f"{head}Raises:"]
        return ["", f"{head}Raises", f"{head}------"]

    def _after_sections(self) -> int:
        """Where a new Raises section goes: after Args/Returns/Yields (the guides' order)."""
        kinds = ("params", "returns", "yields")
        return max(s.end for s in self.layout.sections if s.kind in kinds)

    def result(self) -> Merged:
        out: list[str] = []
        for i, line in enumerate(self.lines):
            out.extend(self.insert.get(i, []))
            out.extend(self.replace.get(i, [line]))
        written = [ln for new in (*self.insert.values(), *self.replace.values()) for ln in new]
        return Merged(out, self.changes, written)


def _short(name: str) -> str:
    return name.strip().rsplit(".", 1)[-1]


def _after_entry(layout: Layout, index: int) -> int:
    """Insertion point after the entry ending at ``index``, past its Sphinx ``:type``."""
    for t in layout.entries("type"):
        if t.start == index:
            return t.end
    return index


_RETURNS_NONE = ("None", "NoReturn", "typing.NoReturn", "Never")


def _spurious(kind: str, target: Target) -> bool:
    """Whether a Returns/Yields section contradicts the code (validate's rule)."""
    if kind == "yields":
        return not target.yields
    if target.returns_value or target.yields:
        return False
    return target.returns is None or target.returns in _RETURNS_NONE


def _whole(layout: Layout, section: Section) -> Entry:
    """A section as one droppable span, with the blank line before it."""
    start = section.start
    if start > 0 and not layout.lines[start - 1].strip():
        start -= 1
    return Entry(section.kind, "", start, section.end)


# ------------------------------------------------------------------ the literal

_OPENING = re.compile(r"(?P<prefix>[rRuU]{0,2})(?P<quote>\"\"\"|'''|\"|')")


@dataclass
class Update:
    """An updated docstring: the edit's lines, the new docstring text, what changed,
    and the lines docgen wrote (the rest were the maintainer's, already in the file)."""

    start: int
    end: int
    lines: list[str]
    text: str
    summary: str
    written: str = ""


def literal_lines(target: Target, head_lines: Sequence[str]) -> tuple[list[str], int, str]:
    """The docstring literal's raw lines as in the file, the column its quotes open
    at, and what follows its closing quotes on the last line (a comment, say)."""
    if target.docstring_span is None or target.docstring_cols is None:
        raise Unlocatable("the docstring's place in the file is unknown")
    start, end = target.docstring_span
    begin, finish = target.docstring_cols
    raw = list(head_lines[start - 1 : end])
    tail = raw[-1][finish:]
    raw[-1] = raw[-1][:finish]
    return raw, begin, tail


def update_docstring(
    target: Target,
    head_lines: Sequence[str],
    style: Style,
    parts: DocParts,
    width: int,
    gone_raises: Collection[str] = (),
) -> Update:
    """Merge what ``target``'s stale docstring lacks into its own lines.

    Raises :class:`Unlocatable` (regenerate instead) or :class:`MissingText` (the
    answer lacks an entry's text).
    """
    if target.kind == "class" and not target.params:
        # A class is merged against its __init__'s parameters (the caller puts them
        # in), known only when the PR touched __init__.
        raise Unlocatable(CLASS_WITHOUT_INIT)
    raw, begin, tail = literal_lines(target, head_lines)
    opening = _OPENING.match(raw[0], begin)
    if opening is None or len(opening["quote"]) != 3:
        raise Unlocatable("the docstring is not a triple-quoted string")
    merged = merge(locate(raw, style), target, parts, width, gone_raises)
    if not merged.changes:
        # The stale judgement (docstring_parser's reading) saw more than the entries
        # located here: do not suggest the same lines back.
        raise Unlocatable("no entry found that disagrees with the signature")
    if any("\\" in line for line in merged.written) and "r" not in opening["prefix"].lower():
        raise Unlocatable("new text has a backslash and the docstring is not a raw string")
    source = "\n".join(merged.lines)[begin:]
    try:
        value = ast.literal_eval(source)
    except (SyntaxError, ValueError) as exc:
        raise Unlocatable(f"the updated literal does not read back: {exc}") from None
    if not isinstance(value, str):
        raise Unlocatable("the updated literal is not a string")
    start, end = target.docstring_span or (0, 0)
    out = list(merged.lines)
    out[-1] += tail
    written = "\n".join(merged.written)
    return Update(start, end, out, inspect.cleandoc(value), merged.summary, written)


# ------------------------------------------------------------------ the prompt


@dataclass(frozen=True)
class Ask:
    """What a model is asked for when a stale docstring is updated: the docstring
    as it stands (shown, kept) and only the entries it lacks."""

    docstring: str
    params: tuple[str, ...] = ()
    raises: tuple[str, ...] = ()


def needed(target: Target, head_lines: Sequence[str], style: Style) -> Ask | None:
    """The entries :func:`merge` will need text for, or None when the docstring
    cannot be located (it is regenerated whole, and the model asked for all of it)."""
    if target.kind == "class" and not target.params:
        return None
    try:
        raw, _, _ = literal_lines(target, head_lines)
        layout = locate(raw, style)
    except Unlocatable:
        return None
    entries = layout.entries("params")
    documented = {e.name for e in entries} | set(
        _renames(entries, target.documentable_params).values()
    )
    params = tuple(
        p.name
        for p in target.documentable_params
        if p.name not in documented and p.kind not in ("vararg", "varkw")
    )
    have = {e.name.rsplit(".", 1)[-1] for e in layout.entries("raises")}
    raises = tuple(r for r in _needs(target) if r.rsplit(".", 1)[-1] not in have)
    # A dry run: an update that cannot be placed is regenerated whole, and then the
    # model must be asked for everything.
    probe = DocParts(
        "-", params=tuple((n, "-") for n in params), raises=tuple((r, "-") for r in raises)
    )
    try:
        if not merge(layout, target, probe, DEFAULT_WIDTH).changes:
            return None
    except Unlocatable:
        return None
    return Ask(target.docstring or "", params, raises)
