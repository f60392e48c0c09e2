"""Merge what a stale docstring lacks into its own lines, changing only what must change.

- the entry of a parameter that no longer exists is removed, except a rename (one
  entry gone and one parameter new at the same position): the entry keeps its
  description under the new name;
- a new parameter or a missing Raises entry gets lines written in the surrounding
  entries' indentation, wrapped at the file's own width (:class:`_Writer`);
- a Returns/Yields section the code contradicts is removed, and a Raises entry when
  the PR deleted that ``raise`` (one for a callee's exception stays).  A Returns the
  maintainer never wrote is not added: that was their choice.

Everything else — summary, description, examples, the other entries and their order,
the quotes — stays as it was.  The merge is docgen's, not the model's: a model (or the
offline skeleton) only supplies the text of the new entries.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from bot.docstrings import style as style_mod
from bot.docstrings.doclayout import (
    GOOGLE_PARAM,
    SPHINX_FIELD,
    Entry,
    Layout,
    MissingText,
    Section,
    Unlocatable,
    content_end,
    indent_of,
)
from bot.docstrings.models import DocParts, Param, Style, Target


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
    m = SPHINX_FIELD.match(line) if layout.style == Style.SPHINX else GOOGLE_PARAM.match(line)
    if m is None or not line[m.end() :].strip():
        return None
    return m.end() + indent_of(line[m.end() :])


def _aligned(layout: Layout, entries: list[Entry]) -> bool:
    """Whether the siblings align continuation lines under their description's start
    (click's ``:param name: text`` / ``                 more text``)."""
    votes = []
    for e in entries:
        rest = [k for k in range(e.start + 1, e.end) if layout.lines[k].strip()]
        column = _text_column(layout, e) if layout.style != Style.NUMPY else None
        if rest and column is not None:
            votes.append(indent_of(layout.lines[rest[0]]) == column)
    return bool(votes) and all(votes)


def _continuation(layout: Layout, entries: list[Entry], head_indent: int) -> str:
    """The indentation of an entry's continuation lines, as the siblings write it."""
    for e in entries:
        for k in range(e.start + 1, e.end):
            if layout.lines[k].strip():
                return layout.lines[k][: indent_of(layout.lines[k])]
    return " " * (head_indent + 4)


def _head_indent(layout: Layout, entries: list[Entry]) -> str:
    line = layout.lines[entries[0].start]
    return line[: indent_of(line)]


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
    m = SPHINX_FIELD.match(line)
    return m.end("key") if m else 0


def renamed_params(entries: list[Entry], params: Sequence[Param]) -> dict[str, str]:
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


def needed_raises(target: Target) -> list[str]:
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
        return content_end(self.lines) == len(self.lines)

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
        renames = renamed_params(entries, params)
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
        raised = needed_raises(self.target)
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
        return line[: indent_of(line)]

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
