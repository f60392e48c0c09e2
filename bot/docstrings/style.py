"""Docstring conventions: detect the one a repository uses, and write docstrings in it.

Detection is a cheap vote over the section markup of existing docstrings (regexes, no
parsing).  Writing (:func:`compose`) turns the structured :class:`~bot.docstrings.models.DocParts`
a model answered with into docstring *content* in Google, NumPy, Sphinx or plain style,
so the model never controls layout or quoting.

The layouts follow the references the tools parse:
Google — https://sphinxcontrib-napoleon.readthedocs.io/en/latest/example_google.html ,
NumPy — https://numpydoc.readthedocs.io/en/latest/format.html ,
Sphinx — https://www.sphinx-doc.org/en/master/usage/domains/python.html#info-field-lists .
Everything :func:`compose` writes parses back with ``docstring_parser`` in the matching
style to the same parameter names, returns and raises (tested in ``tests/test_style.py``).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence

from bot.docstrings.models import DocParts, Param, Style, Target

# Ties are broken in this order (the brief's: google > numpy > sphinx).
_PRIORITY = (Style.GOOGLE, Style.NUMPY, Style.SPHINX)

# With this many docstrings and not one section among them, the repo writes prose only.
PLAIN_MIN_DOCSTRINGS = 5

# Narrowest text column compose wraps to, however deeply the target is nested.
_MIN_TEXT_WIDTH = 40

# --------------------------------------------------------------------- detection

_GOOGLE_HEADER = re.compile(
    r"^(?P<indent>[ \t]*)(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments"
    r"|Other Parameters|Returns|Return|Raises|Yields|Yield|Attributes|Examples?|Warns)"
    r":[ \t]*$"
)
_NUMPY_HEADER = re.compile(
    r"^[ \t]*(?:Parameters|Other Parameters|Returns|Yields|Receives|Raises|Warns|Warnings"
    r"|See Also|Notes|References|Examples|Attributes|Methods)[ \t]*$"
)
_NUMPY_UNDERLINE = re.compile(r"^[ \t]*-{3,}[ \t]*$")
_SPHINX_FIELD = re.compile(
    r"^[ \t]*:(?:param|parameter|arg|argument|key|keyword|type|returns?|rtype|raises?"
    r"|except|exception|yields?|ytype|var|ivar|cvar|vartype)(?:[ \t]+[^:\n]*)?:",
    re.MULTILINE,
)


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _section_hits(docstring: str) -> Counter[Style]:
    """How many section markers of each convention ``docstring`` contains."""
    hits: Counter[Style] = Counter()
    lines = inspect.cleandoc(docstring).splitlines()
    for i, line in enumerate(lines):
        google = _GOOGLE_HEADER.match(line)
        if google:
            # A header counts only when indented entries follow it ("Returns:" alone
            # at the end of a sentence-like line is prose).
            following = next((nxt for nxt in lines[i + 1 :] if nxt.strip()), None)
            if following is not None and _indent_width(following) > len(google["indent"]):
                hits[Style.GOOGLE] += 1
        elif (
            _NUMPY_HEADER.match(line)
            and i + 1 < len(lines)
            and _NUMPY_UNDERLINE.match(lines[i + 1])
        ):
            hits[Style.NUMPY] += 1
    hits[Style.SPHINX] += len(_SPHINX_FIELD.findall(docstring))
    return hits


def _winner(counts: Counter[Style]) -> Style | None:
    best = max((counts[s] for s in _PRIORITY), default=0)
    if best == 0:
        return None
    return next(s for s in _PRIORITY if counts[s] == best)


def classify(docstring: str) -> Style | None:
    """The convention one docstring is written in, judged by its section markup.

    None when the docstring has no sections: a one-liner or plain prose says nothing
    about the style.  Never returns ``Style.PLAIN`` (that is a property of a set of
    docstrings, see :func:`detect_style`).
    """
    return _winner(_section_hits(docstring))


def _evidence(docstrings: Iterable[str]) -> Style | None:
    """The style ``docstrings`` vote for, or None when they say nothing."""
    votes: Counter[Style] = Counter()
    seen = 0
    for doc in docstrings:
        if not doc or not doc.strip():
            continue
        seen += 1
        style = classify(doc)
        if style is not None:
            votes[style] += 1
    winner = _winner(votes)
    if winner is None and seen >= PLAIN_MIN_DOCSTRINGS:
        return Style.PLAIN
    return winner


def detect_style(docstrings: Iterable[str], default: Style = Style.GOOGLE) -> Style:
    """The convention most of ``docstrings`` use.

    Majority vote over the docstrings that have sections; ties go to google, then
    numpy, then sphinx.  ``Style.PLAIN`` when there are at least
    ``PLAIN_MIN_DOCSTRINGS`` docstrings and none has sections; ``default`` when there
    is no evidence at all.
    """
    return _evidence(docstrings) or default


def detect_for_file(
    file_docstrings: Iterable[str],
    repo_docstrings: Iterable[str],
    forced: Style | None = None,
    default: Style = Style.GOOGLE,
) -> Style:
    """The style to write in one file.

    ``forced`` (from ``.github/docgen.yml``) wins; else the file's own docstrings if
    they show a style; else the repository's; else ``default``.
    """
    if forced is not None:
        return forced
    return _evidence(file_docstrings) or _evidence(repo_docstrings) or default


_GOOGLE_TYPED_ENTRY = re.compile(r"^[ \t]+\*{0,2}\w+ \([^)\n]+\)\s*:", re.MULTILINE)
_GOOGLE_BARE_ENTRY = re.compile(r"^[ \t]+\*{0,2}\w+\s*:(?:\s|$)", re.MULTILINE)
_GOOGLE_ARGS = re.compile(r"^[ \t]*(?:Args|Arguments|Parameters|Params)\s*:\s*$", re.MULTILINE)
_SPHINX_PARAM = re.compile(r"^[ \t]*:param\b", re.MULTILINE)
_SPHINX_TYPE = re.compile(r"^[ \t]*:(?:type|rtype)\b", re.MULTILINE)
_NUMPY_PARAMS = re.compile(
    r"^[ \t]*Parameters\s*\n[ \t]*-{3,}\s*\n((?:.*\n?)*?)(?:\n\s*\n|\Z)", re.MULTILINE
)
_NUMPY_TYPED = re.compile(r"^\*{0,2}\w+\s+:\s*\S", re.MULTILINE)


def _types_vote(doc: str, style: Style) -> bool | None:
    """Whether one docstring writes parameter types (None: it does not say)."""
    doc = inspect.cleandoc(doc)
    if style == Style.GOOGLE:
        m = _GOOGLE_ARGS.search(doc)
        if m is None:
            return None
        block = doc[m.end() :]
        typed = len(_GOOGLE_TYPED_ENTRY.findall(block))
        bare = len(_GOOGLE_BARE_ENTRY.findall(block))
        if typed == bare == 0:
            return None
        return typed >= bare
    if style == Style.SPHINX:
        if not _SPHINX_PARAM.search(doc):
            return None
        return bool(_SPHINX_TYPE.search(doc))
    if style == Style.NUMPY:
        m = _NUMPY_PARAMS.search(doc + "\n")
        if m is None:
            return None
        entries = [ln for ln in m.group(1).splitlines() if ln and not ln[0].isspace()]
        if not entries:
            return None
        return sum(bool(_NUMPY_TYPED.match(e)) for e in entries) * 2 >= len(entries)
    return None


def detect_types(docstrings: Iterable[str], style: Style) -> bool:
    """Whether docstrings in ``style`` repeat parameter types (``x (int): …``).

    Majority of the docstrings that show parameters.  Without evidence: NumPy writes
    types (numpydoc's convention); Google and Sphinx do not, since the annotations
    already carry them (Google's style guide asks for types only where the code has
    no annotation).
    """
    votes = _types_votes(docstrings, style)
    if not votes:
        return style == Style.NUMPY
    return sum(votes) * 2 >= len(votes)


def _types_votes(docstrings: Iterable[str], style: Style) -> list[bool]:
    return [v for v in (_types_vote(d, style) for d in docstrings if d) if v is not None]


def detect_types_for_file(
    file_docstrings: Sequence[str], repo_docstrings: Sequence[str], style: Style
) -> bool:
    """:func:`detect_types` on the file's own docstrings if they say, else the repo's."""
    if style == Style.PLAIN:
        return False  # no parameter sections to put types in: the repo has nothing to say
    if _types_votes(file_docstrings, style):
        return detect_types(file_docstrings, style)
    return detect_types(repo_docstrings, style)


# ----------------------------------------------------------------------- compose

_ITERATOR_TYPES = {
    "Iterator",
    "Iterable",
    "Generator",
    "AsyncIterator",
    "AsyncIterable",
    "AsyncGenerator",
}
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)]|>>>|\.\.)(?:\s|$)")


def clean_annotation(text: str | None) -> str | None:
    """Annotation source as one line, without the quotes of a forward reference."""
    if not text or not text.strip():
        return None
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return " ".join(text.split())
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return " ".join(node.value.split())
    if "\n" in text:
        # Spread over lines in the source: let ast lay it out on one line.
        return ast.unparse(node)
    return text.strip()


def _generator_args(annotation: str | None) -> list[str] | None:
    """The subscript arguments of ``Iterator[...]``/``Generator[...]``-like annotations."""
    if not annotation:
        return None
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Subscript):
        return None
    base = node.value
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
    if name not in _ITERATOR_TYPES:
        return None
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return [ast.get_source_segment(annotation, item) or ast.unparse(item) for item in items]


def _yield_type(target: Target) -> str | None:
    args = _generator_args(clean_annotation(target.returns))
    return clean_annotation(args[0]) if args else None


def _return_type(target: Target) -> str | None:
    annotation = clean_annotation(target.returns)
    if not target.yields:
        return annotation
    # A generator's own return value is Generator's third argument, if spelled out.
    args = _generator_args(annotation)
    if args and len(args) == 3:
        return clean_annotation(args[2])
    return None


def _summary(text: str) -> str:
    summary = " ".join(text.split())
    if summary and summary[-1] not in ".!?":
        summary += "."
    return summary


def _paragraphs(text: str) -> list[list[str]]:
    """``text`` dedented and split at blank lines."""
    paras: list[list[str]] = []
    current: list[str] = []
    # dedent, not cleandoc: cleandoc would strip a literal block's indentation when
    # the only unindented line is the first ("Example::").
    for line in textwrap.dedent(text.expandtabs(4)).splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paras.append(current)
            current = []
    if current:
        paras.append(current)
    return paras


def _is_verbatim(para: list[str], after_literal_marker: bool) -> bool:
    """Paragraphs whose line breaks matter: code, lists, literal blocks, tables."""
    return (
        after_literal_marker
        or any(line[:1].isspace() or _LIST_ITEM.match(line) for line in para)
        or any(line.lstrip().startswith(("```", "|", "+-")) for line in para)
    )


def _starts_markup(line: str) -> bool:
    """Whether a wrapped prose line would read as markup (a field, a section title)."""
    stripped = line.strip()
    return stripped.startswith((":", ">>>")) or bool(_GOOGLE_HEADER.match(stripped))


def _no_markup_starts(lines: list[str], indent: str) -> list[str]:
    """Pull words up so no continuation line starts like markup.

    Wrapping prose such as "see :class:`Foo`" could start a line with ``:class:``,
    which Sphinx parsers take for a field; the line then runs a word long instead.
    """
    out = lines[:1]
    for line in lines[1:]:
        words = line.split()
        while words and _starts_markup(" ".join(words)):
            out[-1] += " " + words.pop(0)
        if words:
            out.append(indent + " ".join(words))
    return out


def fill(text: str, width: int, first: str, indent: str) -> list[str]:
    """Wrap ``text`` to ``width`` columns: first line after ``first``, the rest at ``indent``.

    Prose paragraphs are re-wrapped; paragraphs whose line breaks matter are kept
    line by line.  Paragraphs are separated by one blank line.
    """
    out: list[str] = []
    prefix = first
    literal_next = False
    for para in _paragraphs(text):
        if out:
            out.append("")
        if _is_verbatim(para, literal_next):
            out.append(prefix + para[0])
            out.extend(indent + line for line in para[1:])
        else:
            wrapped = textwrap.wrap(
                " ".join(" ".join(para).split()),
                width=width,
                initial_indent=prefix,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            out.extend(_no_markup_starts(wrapped, indent))
        literal_next = para[-1].endswith("::")
        prefix = indent
    if not out:
        out.append(first)
    return [line.rstrip() for line in out]


def _described_params(parts: DocParts, target: Target) -> list[tuple[Param, str]]:
    """``parts.params`` in signature order, limited to the target's parameters.

    Names match with or without leading stars (``args`` / ``*args``); the first
    description given for a name wins.  Parameters the model described but the target
    does not have are dropped (validation reports them).
    """
    given: dict[str, str] = {}
    for name, desc in parts.params:
        given.setdefault(name.lstrip("*").strip(), desc)
    return [(p, given[p.name]) for p in target.documentable_params if p.name in given]


def google_type(annotation: str | None) -> str | None:
    """The annotation for a Google entry, or None when a ':' in it would split the entry.

    Google parsers (Napoleon, docstring_parser) cut ``name (type): desc`` at the first
    colon, so ``Literal['a:b']`` or a ``lambda`` default in a type cannot be written
    there; the signature still carries it.
    """
    cleaned = clean_annotation(annotation)
    return None if cleaned is None or ":" in cleaned else cleaned


def _compose_google(parts: DocParts, target: Target, width: int, types: bool) -> list[str]:
    lines: list[str] = []
    params = _described_params(parts, target)
    if params:
        lines += ["", "Args:"]
        for param, desc in params:
            annotation = google_type(param.annotation) if types else None
            head = f"{param.display_name} ({annotation})" if annotation else param.display_name
            lines += fill(desc, width, f"    {head}: ", " " * 8)
    for title, desc, annotation in (
        ("Returns", parts.returns, google_type(_return_type(target)) if types else None),
        ("Yields", parts.yields, google_type(_yield_type(target)) if types else None),
    ):
        if desc.strip():
            # One block, not a list of entries: continuation lines align with the
            # first (Napoleon would read deeper-indented lines as a nested block).
            first = f"    {annotation}: " if annotation else "    "
            lines += ["", f"{title}:", *fill(desc, width, first, "    ")]
    if parts.raises:
        lines += ["", "Raises:"]
        for exc, desc in parts.raises:
            lines += fill(desc, width, f"    {exc.strip()}: ", " " * 8)
    return lines


def _numpy_section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def _numpy_entry(head: str, desc: str, width: int) -> list[str]:
    lines = [head]
    if desc.strip():
        lines += fill(desc, width, "    ", "    ")
    return lines


def _compose_numpy(parts: DocParts, target: Target, width: int, types: bool) -> list[str]:
    lines: list[str] = []
    params = _described_params(parts, target)
    if params:
        lines += _numpy_section("Parameters")
        for param, desc in params:
            annotation = clean_annotation(param.annotation) if types else None
            head = f"{param.display_name} : {annotation}" if annotation else param.display_name
            lines += _numpy_entry(head, desc, width)
    for title, desc, annotation in (
        ("Returns", parts.returns, _return_type(target)),
        ("Yields", parts.yields, _yield_type(target)),
    ):
        if desc.strip():
            # numpydoc requires a type line; "object" when the code does not say.
            lines += _numpy_section(title) + _numpy_entry(annotation or "object", desc, width)
    if parts.raises:
        lines += _numpy_section("Raises")
        for exc, desc in parts.raises:
            lines += _numpy_entry(exc.strip(), desc, width)
    return lines


def _compose_sphinx(parts: DocParts, target: Target, width: int, types: bool) -> list[str]:
    fields: list[str] = []
    for param, desc in _described_params(parts, target):
        fields += fill(desc, width, f":param {param.display_name}: ", "    ")
        annotation = clean_annotation(param.annotation) if types else None
        if annotation:
            fields.append(f":type {param.display_name}: {annotation}")
    if parts.returns.strip():
        fields += fill(parts.returns, width, ":returns: ", "    ")
        annotation = _return_type(target) if types else None
        if annotation:
            fields.append(f":rtype: {annotation}")
    if parts.yields.strip():
        fields += fill(parts.yields, width, ":yields: ", "    ")
    for exc, desc in parts.raises:
        fields += fill(desc, width, f":raises {exc.strip()}: ", "    ")
    return ["", *fields] if fields else []


def _compose_plain(parts: DocParts, target: Target, width: int, types: bool) -> list[str]:
    lines: list[str] = []
    for param, desc in _described_params(parts, target):
        if desc.strip():
            lines += ["", *fill(desc, width, f"``{param.display_name}``: ", "")]
    if parts.returns.strip():
        lines += ["", *fill(parts.returns, width, "Returns: ", "")]
    if parts.yields.strip():
        lines += ["", *fill(parts.yields, width, "Yields: ", "")]
    for exc, desc in parts.raises:
        if desc.strip():
            lines += ["", *fill(desc, width, f"Raises ``{exc.strip()}``: ", "")]
        else:
            lines += ["", f"Raises ``{exc.strip()}``."]
    return lines


_COMPOSERS = {
    Style.GOOGLE: _compose_google,
    Style.NUMPY: _compose_numpy,
    Style.SPHINX: _compose_sphinx,
    Style.PLAIN: _compose_plain,
}


def text_width(target: Target, width: int = 88) -> int:
    """Columns available to docstring text inside ``target`` for a ``width`` line limit."""
    return max(width - len(target.body_indent.expandtabs(4)), _MIN_TEXT_WIDTH)


def compose(
    parts: DocParts, target: Target, style: Style, width: int = 88, *, types: bool = True
) -> str:
    """Write ``parts`` as the content of a docstring for ``target`` in ``style``.

    The result has no quotes and no indentation; lines are joined with ``"\\n"`` and
    the first line is the summary, always ending in ``.``, ``!`` or ``?``.  Parameters
    appear in signature order; those the target does not have are dropped and those
    not described get no entry.  Prose is wrapped so that, once indented to
    ``target.body_indent``, lines fit in ``width`` columns (continuation lines are
    indented as the style wants); words are never broken.  ``types`` writes the
    annotations into the docstring (``x (int): …``) for repositories that do so
    (:func:`detect_types`); NumPy's Returns/Yields keep their type line regardless.

    compose does not sanitize: text containing ``\"\"\"`` or backslashes is written
    as given — the inserter decides on raw strings and the validator rejects what
    cannot be quoted.
    """
    columns = text_width(target, width)
    lines = [_summary(parts.summary)]
    if parts.description.strip():
        lines += ["", *fill(parts.description, columns, "", "")]
    lines += _COMPOSERS[style](parts, target, columns, types)
    return "\n".join(lines)
