"""Shared helpers for the benches: the stdlib corpus and realistic pull requests made from it.

Nothing here is timed; the benches import it (run them from the repository root, e.g.
``python bench/tokens_vs_diff.py``: the script's folder is on ``sys.path``).

* :func:`stdlib_files` — the ``.py`` files of ``sysconfig.get_paths()["stdlib"]``;
* :func:`make_pr` — a deterministic (seeded) PR over one real module: base has some
  functions removed (the PR adds them, undocumented), some lines of documented functions
  edited and a small helper the PR deletes; head is the real module with the
  docstrings of the added functions stripped;
* :func:`github_patch` — the ``patch`` field GitHub returns for a file (hunks only);
* :func:`change_blocks` — hunks with asymmetric context, for tools that extend
  GitHub's hunks with extra lines.
"""

from __future__ import annotations

import ast
import difflib
import os
import random
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_TEST_DIRS = {"test", "tests", "idle_test", "lib2to3_tests"}


def stdlib_files(include_tests: bool = False) -> list[str]:
    """Paths (relative to the stdlib root, ``/``-separated) of every stdlib ``.py`` file."""
    out: list[str] = []
    skip = _SKIP_DIRS if include_tests else _SKIP_DIRS | _TEST_DIRS
    for folder, dirs, names in os.walk(STDLIB):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        out += [
            Path(folder, name).relative_to(STDLIB).as_posix()
            for name in sorted(names)
            if name.endswith(".py")
        ]
    return out


def read_text(relpath: str) -> str:
    return (STDLIB / relpath).read_bytes().decode("utf-8")


def parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


# -------------------------------------------------------------------------- diffs


def github_patch(base: str, head: str, context: int = 3) -> str:
    """GitHub's ``patch`` for a file: ``difflib.unified_diff`` hunks, no file headers."""
    lines = difflib.unified_diff(
        base.splitlines(keepends=True), head.splitlines(keepends=True), n=context
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")) and not out:
            continue  # the two file header lines come first
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


@dataclass(frozen=True)
class Block:
    """One hunk: base lines ``a1:a2`` became head lines ``b1:b2`` (0-based, half-open)."""

    a1: int
    a2: int
    b1: int
    b2: int
    ops: tuple[tuple[str, int, int, int, int], ...]  # difflib opcodes inside the hunk


def change_blocks(base: list[str], head: list[str], before: int, after: int) -> Iterator[Block]:
    """Hunks with ``before`` context lines above each change and ``after`` below.

    Same alignment as :func:`github_patch` (difflib's ``SequenceMatcher``); hunks whose
    context would overlap or touch are merged, as ``diff`` does.
    """
    opcodes = difflib.SequenceMatcher(None, base, head).get_opcodes()
    changes = [op for op in opcodes if op[0] != "equal"]
    groups: list[list[tuple[str, int, int, int, int]]] = []
    for op in changes:
        if groups and op[1] - before <= groups[-1][-1][2] + after:
            groups[-1].append(op)
        else:
            groups.append([op])
    for group in groups:
        a1 = max(0, group[0][1] - before)
        b1 = max(0, group[0][3] - (group[0][1] - a1))
        a2 = min(len(base), group[-1][2] + after)
        b2 = min(len(head), group[-1][4] + (a2 - group[-1][2]))
        ops: list[tuple[str, int, int, int, int]] = []
        for tag, i1, i2, j1, j2 in opcodes:
            lo, hi = max(i1, a1), min(i2, a2)
            if tag == "equal":
                if lo < hi:
                    ops.append((tag, lo, hi, j1 + (lo - i1), j1 + (hi - i1)))
            elif a1 <= i1 and i2 <= a2 and b1 <= j1 and j2 <= b2:
                ops.append((tag, i1, i2, j1, j2))
        yield Block(a1, a2, b1, b2, tuple(ops))


# ------------------------------------------------------------------- making PRs


@dataclass(frozen=True)
class PullRequest:
    """One file of a synthetic PR, with what was done to make it."""

    path: str
    base: str
    head: str
    added: tuple[str, ...]  # functions the PR adds (without docstrings)
    edited: tuple[str, ...]  # documented functions with edited lines
    deleted: int  # lines the PR deletes
    added_code: str = ""  # the source of the added functions, as in head

    @property
    def patch(self) -> str:
        return github_patch(self.base, self.head)


@dataclass(frozen=True)
class _Def:
    qualname: str
    start: int  # 1-based, decorators included
    end: int
    doc: tuple[int, int] | None  # docstring lines, when on lines of their own
    body: tuple[int, ...]  # lines of one-line simple statements, nested ones included

    @property
    def code_lines(self) -> int:
        """Lines of the definition below its docstring (or header)."""
        return self.end - (self.doc[1] if self.doc else self.start)


def _definitions(tree: ast.Module) -> list[_Def]:
    """Top-level functions and methods of top-level classes (nested ones stay put)."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            for child in node.body:
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append((f"{node.name}.{child.name}", child))
    out = []
    for qualname, node in found:
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        first = node.body[0]
        doc = None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
            and len(node.body) > 1
            and first.lineno > node.lineno
            and first.end_lineno is not None
            and first.end_lineno < node.body[1].lineno
        ):
            doc = (first.lineno, first.end_lineno)
        rest = node.body[1:] if doc else node.body
        body = tuple(sorted({s.lineno for s in _simple_statements(rest)}))
        out.append(_Def(qualname, start, node.end_lineno or node.lineno, doc, body))
    return out


def _simple_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """One-line statements without a block of their own, in nested blocks too."""
    stack = list(body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        blocks = [getattr(stmt, name, None) for name in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(stmt, "handlers", ())]
        blocks += [c.body for c in getattr(stmt, "cases", ())]
        nested = [b for b in blocks if isinstance(b, list)]
        if nested:
            for block in nested:
                stack.extend(block)
        elif stmt.end_lineno == stmt.lineno:
            yield stmt


def _public(qualname: str) -> bool:
    return not any(part.startswith("_") for part in qualname.split("."))


def make_pr(
    relpath: str,
    rng: random.Random,
    *,
    added: int = 4,
    edited: int = 3,
    edit_lines: int = 1,
    deleted_helpers: int = 1,
) -> PullRequest | None:
    """A realistic PR over the real module ``relpath`` (None when it has too few functions).

    * ``added`` public, documented functions (3+ lines of code) are the PR's new
      code: base lacks them, head has them without their docstrings;
    * ``edited`` other documented functions get ``edit_lines`` lines changed (base
      holds the old version of each line, ``  # old`` appended);
    * ``deleted_helpers`` small helper functions exist in base only.
    """
    text = read_text(relpath)
    lines = text.splitlines(keepends=True)
    defs = _definitions(parse(text))
    public = [d for d in defs if d.doc and _public(d.qualname)]
    addable = [d for d in public if d.code_lines >= 3]
    if len(addable) < added:
        return None
    new = rng.sample(addable, added)
    editable = [d for d in public if d.body and d not in new]
    if len(editable) < edited:
        return None
    changed = rng.sample(editable, edited)

    tops = [d for d in defs if "." not in d.qualname and d not in new]
    helpers = rng.sample(tops, min(deleted_helpers, len(tops)))

    # Edits by original line number, applied bottom-up so the lines above stay put.
    def head_of(d: _Def) -> list[str]:
        assert d.doc is not None
        return lines[d.start - 1 : d.doc[0] - 1] + lines[d.doc[1] : d.end]

    head = list(lines)
    base = list(lines)
    events: list[tuple[int, str, _Def]] = [(d.start, "add", d) for d in new]
    for d in changed:
        lines_changed = rng.sample(d.body, min(edit_lines, len(d.body)))
        events += [(line, "edit", d) for line in lines_changed]
    events += [(d.start, "helper", d) for d in helpers]
    for line, kind, d in sorted(events, key=lambda e: e[0], reverse=True):
        if kind == "add":
            assert d.doc is not None
            del head[d.doc[0] - 1 : d.doc[1]]
            end = d.end
            while end < len(base) and not base[end].strip():
                end += 1  # the blank lines after it go too
            del base[d.start - 1 : end]
        elif kind == "edit":
            base[line - 1] = base[line - 1].rstrip("\n") + "  # old\n"
        else:
            indent = lines[line - 1][: len(lines[line - 1]) - len(lines[line - 1].lstrip())]
            base[line - 1 : line - 1] = [
                f"{indent}def _old_helper_{line}(value):\n",
                f"{indent}    return value\n",
                "\n",
                "\n",
            ]
    return PullRequest(
        relpath,
        "".join(base),
        "".join(head),
        tuple(d.qualname for d in new),
        tuple(d.qualname for d in changed),
        4 * len(helpers),
        "".join("".join(head_of(d)) for d in new),
    )


def new_file_pr(relpath: str) -> PullRequest:
    """The module as a brand-new file in which no function has a docstring yet.

    Every docstring of a function or method is stripped (the module's and the classes'
    stay), so the whole file is added code: the diff is nearly all function code.
    """
    text = read_text(relpath)
    head = text.splitlines(keepends=True)
    tree = parse(text)
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and len(node.body) > 1:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
                and first.lineno > node.lineno
                and (first.end_lineno or 0) < node.body[1].lineno
            ):
                spans.append((first.lineno, first.end_lineno or first.lineno))
    for start, end in sorted(spans, reverse=True):
        del head[start - 1 : end]
    text_head = "".join(head)
    return PullRequest(relpath, "", text_head, (), (), 0, text_head)
