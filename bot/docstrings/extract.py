"""Definitions in one Python file: spans, signature facts, docstrings and decisions.

:func:`extract` takes the head file's bytes (and its :class:`~bot.docstrings.models.FileDiff`) and
returns the functions, methods and classes the pull request touched, each a
:class:`~bot.docstrings.models.Target` with a :class:`~bot.docstrings.models.Decision`, plus the file's
docstring coverage.  It is pure: bytes in, data out, and it never raises on bad input —
a deleted, huge, binary, generated, non-UTF-8 or unparsable file becomes a
:class:`~bot.docstrings.models.Skip` with a reason.

The shape, in three steps:

1. guards on the raw bytes (:func:`bot.docstrings.source.check_source`), then one ``ast.parse``;
2. :class:`bot.docstrings.definitions.Collector` collects every definition into
   :class:`~bot.docstrings.definitions.Definition` records;
3. small named predicates decide (skip rules in :mod:`bot.docstrings.definitions`, staleness in
   :mod:`bot.docstrings.stale`, "touched by the diff" in :mod:`bot.docstrings.touched`), and
   :class:`_Builder` turns the chosen records into ``Target`` values, slicing the text
   by ``ast`` positions with line offsets computed once per file.
"""

from __future__ import annotations

import ast
import inspect
import tokenize
from bisect import bisect_left
from dataclasses import replace

from bot.config import RepoConfig
from bot.docstrings.definitions import (
    Collector,
    Definition,
    DefNode,
    has_docstring,
    is_test_path,
    last_name,
    skip_reason,
)
from bot.docstrings.lines import LineMap
from bot.docstrings.models import Coverage, Decision, ExtractResult, FileDiff, Param, Skip, Target
from bot.docstrings.parsing import documented, parse_quietly
from bot.docstrings.pysyntax import RUNNING, explain_syntax_error
from bot.docstrings.source import Source, check_source
from bot.docstrings.stale import documented_params, stale_reason
from bot.docstrings.touched import Removed, changed_definitions, docstring_removed

__all__ = ["collect_docstrings", "extract"]

# ------------------------------------------------------------------------ targets


def _params(source: Source, args: ast.arguments) -> tuple[Param, ...]:
    segment = source.segment
    positional = args.posonlyargs + args.args
    n_posonly = len(args.posonlyargs)
    first_default = len(positional) - len(args.defaults)
    out = []
    for i, arg in enumerate(positional):
        default = args.defaults[i - first_default] if i >= first_default else None
        out.append(
            Param(
                arg.arg,
                "posonly" if i < n_posonly else "positional",
                segment(arg.annotation) if arg.annotation else None,
                segment(default) if default else None,
            )
        )
    if args.vararg is not None:
        out.append(Param(args.vararg.arg, "vararg", segment(args.vararg.annotation)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(Param(arg.arg, "kwonly", segment(arg.annotation), segment(default)))
    if args.kwarg is not None:
        out.append(Param(args.kwarg.arg, "varkw", segment(args.kwarg.annotation)))
    return tuple(out)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _yields(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``yield``/``yield from`` in the function's own body (iterative: deep trees)."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Yield | ast.YieldFrom):
            return True
        if isinstance(current, _SCOPES):
            # Their decorators and defaults are evaluated in *this* scope.
            stack.extend(getattr(current, "decorator_list", ()))
            if isinstance(current, ast.ClassDef):
                stack.extend(current.bases)
                stack.extend(keyword.value for keyword in current.keywords)
            else:
                stack.extend(current.args.defaults)
                stack.extend(d for d in current.args.kw_defaults if d is not None)
            continue
        stack.extend(ast.iter_child_nodes(current))
    return False


def _header_last_line(node: DefNode) -> int:
    """The last line of any expression in the header (name line when there are none)."""
    if isinstance(node, ast.ClassDef):
        parts: list[ast.AST | None] = [*node.bases, *(k.value for k in node.keywords)]
    else:
        args = node.args
        parts = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
        parts += [*args.defaults, *args.kw_defaults, node.returns]
    parts += getattr(node, "type_params", ())  # Python 3.12+
    return max((p.end_lineno or p.lineno for p in parts if p is not None), default=node.lineno)


def _colon_line(source: Source, def_line: int, body_line: int, body_col: int) -> int:
    """The line of the ``:`` that ends a header spanning ``def_line``..``body_line``.

    Tokenizes only those lines and takes the last ``:`` operator before the body, so
    colons in annotations (``x: dict[str, int]``, slices), lambda defaults, strings and
    comments are no trouble.  0 when tokenizing fails.
    """
    lines = iter(source.lines[def_line - 1 : body_line])
    limit = (body_line - def_line + 1, source.char_col(body_line, body_col))
    colon = 0
    try:
        for token in tokenize.generate_tokens(lambda: next(lines, "")):
            if token.start >= limit:
                break
            if token.type == tokenize.OP and token.string == ":":
                colon = token.start[0]
    except (tokenize.TokenError, SyntaxError):
        pass
    return def_line + colon - 1 if colon else 0


class _Builder:
    """Builds :class:`Target` values for one file; caches per-file facts."""

    def __init__(
        self, path: str, source: Source, defs: list[Definition], reasons: list[str | None]
    ) -> None:
        self.path = path
        self.source = source
        self.defs = defs
        self._reasons = {id(record): reason for record, reason in zip(defs, reasons, strict=True)}
        self._yield_lines: list[int] | None = None
        self._unit: str | None = None
        self._built: dict[int, Target] = {}

    def yield_lines(self) -> list[int]:
        if self._yield_lines is None:
            text = self.source.text
            self._yield_lines = (
                [n for n, line in enumerate(self.source.lines, start=1) if "yield" in line]
                if "yield" in text
                else []
            )
        return self._yield_lines

    def indent_unit(self) -> str:
        """The file's indentation step, from the first def whose body has its own line."""
        if self._unit is None:
            self._unit = "\t" if "\n\t" in self.source.text else "    "
            for record in self.defs:
                line, _, own_line = self.body_position(record.node)
                if own_line and line > record.node.lineno:
                    outer = self.source.indent(record.node.lineno)
                    inner = self.source.indent(line)
                    if len(inner) > len(outer) and inner.startswith(outer):
                        self._unit = inner[len(outer) :]
                        break
        return self._unit

    def body_position(self, node: DefNode) -> tuple[int, int, bool]:
        """(line, byte column, starts its own line) of the first body statement."""
        first = node.body[0]
        if isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and (
            first.decorator_list
        ):
            line = self.source.decorator_line(first.decorator_list[0])
            return line, self.source.indent_width(line), True
        line = first.lineno
        return line, first.col_offset, self.source.indent_width(line) == first.col_offset

    def header_end(self, node: DefNode, body_line: int, body_col: int, own_line: bool) -> int:
        """The line of the ``:`` ending the header, given where the body starts.

        A body that shares a line with other text shares it with the colon.  A body on
        its own line follows the colon's line, then only blank, comment or lone ``\\``
        lines; the colon's line is the last other one above the body.  Only when a
        skipped "comment" might be the inside of a string (the header's last element
        ends below the line found) do we tokenize.
        """
        def_line = node.lineno
        if body_line == def_line:
            return def_line
        if not own_line:
            return body_line
        line = body_line - 1
        is_filler = self.source.is_filler
        while line > def_line and is_filler(line):
            line -= 1
        if line == body_line - 1 or line >= _header_last_line(node):
            return line
        return _colon_line(self.source, def_line, body_line, body_col) or line

    def target(self, record: Definition) -> Target:
        """The :class:`Target` for ``record`` (built once, then cached)."""
        key = id(record)
        if key in self._built:
            return self._built[key]
        source = self.source
        node = record.node
        body_line, body_col, own_line = self.body_position(node)
        indent = source.indent(node.lineno)
        if own_line:
            body_indent = source.indent(body_line)
        else:
            body_indent = indent + ("\t" if "\t" in indent else self.indent_unit())
        params, returns, yields = self.signature(record, body_line)
        docstring, span, cols = self.docstring(node)
        decision, reason = _decision(self._reasons[key], docstring)
        target = Target(
            path=self.path,
            qualname=record.qualname,
            kind=record.kind,
            is_async=isinstance(node, ast.AsyncFunctionDef),
            start=record.start,
            def_line=node.lineno,
            header_end=self.header_end(node, body_line, body_col, own_line),
            body_start=body_line,
            end=record.end,
            indent=indent,
            body_indent=body_indent,
            params=params,
            returns=returns,
            returns_value=record.returns_value,
            yields=yields,
            raises=tuple(record.raises),
            decorators=tuple(source.segment(d) or "" for d in node.decorator_list),
            is_property=record.is_property,
            is_overload=record.is_overload,
            is_abstract=record.is_abstract,
            is_test=record.is_test,
            docstring=docstring,
            docstring_span=span,
            docstring_cols=cols,
            source=source.span(record.start, record.end),
            decision=decision,
            reason=reason,
        )
        if decision is Decision.OK and docstring:
            stale = self._stale(record, target, docstring)
            if stale:
                target = replace(target, decision=Decision.STALE, reason=stale)
        self._built[key] = target
        return target

    def signature(
        self, record: Definition, body_line: int
    ) -> tuple[tuple[Param, ...], str | None, bool]:
        """``(params, returns annotation, yields)`` of a function; nothing for a class."""
        node = record.node
        if isinstance(node, ast.ClassDef):
            return (), None, False
        params = _params(self.source, node.args)
        returns = self.source.segment(node.returns)
        lines = self.yield_lines()  # a cheap text filter before the walk of _yields
        index = bisect_left(lines, body_line)
        yields = index < len(lines) and lines[index] <= record.end and _yields(node)
        return params, returns, yields

    def docstring(
        self, node: DefNode
    ) -> tuple[str | None, tuple[int, int] | None, tuple[int, int] | None]:
        """``(cleaned docstring, its line span, its first and last character columns)``."""
        if not has_docstring(node):
            return None, None, None
        first = node.body[0]
        end_line = first.end_lineno or first.lineno
        # ast.get_docstring(node, clean=True), without re-checking the node type
        text = inspect.cleandoc(first.value.value)
        cols = (
            self.source.char_col(first.lineno, first.col_offset),
            self.source.char_col(end_line, first.end_col_offset or 0),
        )
        return text, (first.lineno, end_line), cols

    def _stale(self, record: Definition, target: Target, docstring: str) -> str:
        documented = documented_params(docstring)
        if not documented:  # documents no parameters, or unreadable: do not judge
            return ""
        if record.kind != "class":
            return stale_reason(documented, _implicit_dropped(record, target))
        inits = [
            child
            for child in record.children
            if child.kind == "method" and child.node.name == "__init__"
        ]
        if not inits:  # dataclass fields, __new__, inherited __init__: cannot judge
            return ""
        init = self.target(inits[-1])  # the last definition is the one that counts
        return stale_reason(documented, _implicit_dropped(inits[-1], init))


def _decision(skip_reason: str | None, docstring: str | None) -> tuple[Decision, str]:
    """The decision before staleness is judged: skipped, missing or documented."""
    if skip_reason is not None:
        return Decision.SKIP, skip_reason
    if docstring is None:
        return Decision.MISSING, ""
    return Decision.OK, ""


def _implicit_dropped(record: Definition, target: Target) -> tuple[Param, ...]:
    """``Target.documentable_params``, also without a classmethod's ``klass``-like first.

    ``documentable_params`` recognises the implicit first parameter by name (self, cls,
    ...); a method that is not a staticmethod has one whatever it is called.
    """
    params = target.documentable_params
    if (
        record.kind == "method"
        and len(params) == len(target.params)
        and params
        and params[0].kind in ("posonly", "positional")
        and not any(last_name(d) == "staticmethod" for d in record.node.decorator_list)
    ):
        return params[1:]
    return params


# ------------------------------------------------------------------------ entry point


def _parse_error(path: str, text: str, exc: BaseException) -> Skip:
    if isinstance(exc, SyntaxError):
        newer = explain_syntax_error(text, exc.lineno)
        if newer:  # not the author's mistake: this Python is older than their code
            running = ".".join(map(str, RUNNING))
            version = ".".join(map(str, newer.version))
            line = LineMap(text).git(newer.line)  # git's number
            return Skip(
                path,
                f"uses Python {version} syntax; this docgen runs on {running}"
                f" ({newer.what}, line {line})",
                line=line,
            )
        line = LineMap(text).git(exc.lineno) if exc.lineno else None  # git's number
        where = f" (line {line})" if line else ""
        return Skip(path, f"does not parse: {exc.msg}{where}", line=line)
    if isinstance(exc, RecursionError | MemoryError):
        return Skip(path, "does not parse: too deeply nested")
    return Skip(path, f"does not parse: {exc}")  # pragma: no cover - NUL bytes are caught first


def extract(
    path: str, source: bytes | None, diff: FileDiff | None, config: RepoConfig
) -> ExtractResult:
    """The definitions of one head file that the PR touched, with decisions and coverage.

    ``source`` is the file's bytes at the head commit (None: the PR deletes it).  With
    ``diff`` None every definition is returned (``docgen review --all``, benchmarks);
    otherwise those with a line added or removed (see :func:`bot.docstrings.touched.touched`).  ``coverage``
    counts every definition of the file that is not skipped, touched or not.

    ``diff`` counts lines as git does; targets carry Python's (``ast``'s) line numbers,
    skips git's (:mod:`bot.docstrings.lines`).

    Never raises on bad input: file-level problems come back as ``skips``.
    """
    checked = check_source(path, source, config)
    if isinstance(checked, Skip):
        return ExtractResult(path, skips=(checked,))
    try:
        tree = parse_quietly(checked, filename=path)  # their warnings are not ours
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return ExtractResult(path, skips=(_parse_error(path, checked, exc),))
    source_text = Source(checked)
    try:
        return _extract_tree(path, source_text, tree, diff, config)
    except RecursionError:  # pragma: no cover - ast.parse refuses such depths first
        return ExtractResult(path, skips=(Skip(path, "too deeply nested to analyse"),))


MAX_STYLE_SAMPLE = 200  # docstrings per file handed to style detection

# GitHub omits ``patch`` for binary files and diffs too large to show, and also for
# pure renames/copies (nothing changed, nothing to report).
# https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
_NO_PATCH_EXPECTED = ("removed", "renamed", "copied", "unchanged")


def _extract_tree(
    path: str, source: Source, tree: ast.Module, diff: FileDiff | None, config: RepoConfig
) -> ExtractResult:
    collector = Collector(source, is_test_path(path))
    collector.visit(tree)
    defs = collector.defs
    reasons = [skip_reason(record, config) for record in defs]

    documented = total = 0
    for record, reason in zip(defs, reasons, strict=True):
        if reason is None:
            total += 1
            documented += has_docstring(record.node)
    coverage = Coverage(documented, total)

    skips: tuple[Skip, ...] = ()
    removed = Removed({})
    if diff is None:
        chosen = list(range(len(defs)))
    elif not diff.has_patch:
        chosen = []
        if diff.status not in _NO_PATCH_EXPECTED:
            skips = (Skip(path, "no diff from GitHub (binary or too large): not reviewed"),)
    else:
        chosen, removed = changed_definitions(defs, diff, source)

    builder = _Builder(path, source, defs, reasons)
    targets = tuple(builder.target(defs[i]) for i in chosen)
    if removed:
        targets = tuple(
            replace(t, docstring_removed=True)
            if t.docstring_span is None and docstring_removed(t, removed)
            else t
            for t in targets
        )
    # Raw docstrings of the whole file, for detecting its style (a sample is enough).
    docstrings = tuple(
        record.node.body[0].value.value  # type: ignore[attr-defined]
        for record in defs
        if has_docstring(record.node)
    )[:MAX_STYLE_SAMPLE]
    return ExtractResult(
        path, targets=targets, skips=skips, coverage=coverage, docstrings=docstrings
    )


def collect_docstrings(source: bytes, *, max_bytes: int = 1_000_000) -> list[str]:
    """Every docstring in a module (module, classes, functions), raw, for style samples.

    Never raises: an oversized or unparseable file gives [].
    """
    if len(source) > max_bytes:
        return []
    try:
        tree = parse_quietly(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [doc.value.value for _, doc in documented(tree) if doc.value.value]
