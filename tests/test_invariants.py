"""DESIGN.md invariants 1 and 8 as properties over real and generated code.

Invariant 1 — a suggestion never changes code: the suggested lines, applied to the head
file the way GitHub commits a suggestion (:func:`github_apply`: git's lines, split at
``\n`` only, numbered independently of ``bot``), give a module whose AST equals the
head's with docstrings removed from both, and whose comments are all still there
(:func:`comments`, stdlib ``tokenize``).
Invariant 8 — files keep their bytes outside the inserted docstring (CRLF stays CRLF,
tabs, encoding lines, a missing final newline).

The corpus is the standard library (``sysconfig.get_paths()["stdlib"]``).  For every
definition ``extract`` finds (every skip rule off), the offline provider's skeleton is
composed in one of the four styles (rotating), checked like the pipeline checks it and
turned into an edit; documented definitions are treated as STALE so that their
docstring is *replaced*.  Per file:

a. all edits together: ``prove_module`` rejects none, ``same_code`` holds, and each
   docstring reads back (``ast.get_docstring``) as composed;
b. a seeded sample of edits, each applied alone: ``same_code`` holds;
c. the file with its docstrings stripped first (:func:`strip_docstring_statements`),
   so that every definition is MISSING: insert everywhere and prove again;

plus invariant 8 on every edited file (:func:`assert_bytes_kept`), and on CRLF, tab,
form-feed and no-final-newline variants of a few files.  Small inputs and the full
run are also checked against an independent oracle (:func:`code_dump`).

The default run covers :data:`DEFAULT_MODULES` (two processes; ~45 s of CPU);
``DOCGEN_FULL_CORPUS=1`` adds every stdlib file (marked slow).  Generated sources
(hypothesis) and adversarial DocParts complete the picture.  The tests at the end
keep fixed the bugs this file found in other modules.
"""

from __future__ import annotations

import ast
import inspect
import io
import os
import random
import re
import sysconfig
import tokenize
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from bot.config import RepoConfig
from bot.docstrings.edits import edit_region, literal_lines, make_edit, newline_of
from bot.docstrings.extract import extract
from bot.docstrings.lines import python_lines
from bot.docstrings.llm.offline import offline_parts
from bot.docstrings.models import Decision, DocParts, Edit, Style, Target
from bot.docstrings.proof import Accepted, prove_module, same_code
from bot.docstrings.style import compose
from bot.docstrings.validate import UNSAFE_TEXT, check_parts, check_text

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FULL_CORPUS = os.environ.get("DOCGEN_FULL_CORPUS") == "1"
STYLES = (Style.GOOGLE, Style.NUMPY, Style.SPHINX, Style.PLAIN)
ALL = RepoConfig(
    skip_private=False,
    skip_dunder=False,
    skip_tests=False,
    skip_trivial=False,
    max_file_bytes=100_000_000,
)


def _module(*candidates: str) -> str:
    """The first of ``candidates`` in this Python's stdlib: some modules became packages."""
    return next((c for c in candidates if (STDLIB / c).is_file()), candidates[0])


# A fixed, diverse sample: big class-heavy modules, deep nesting, properties and
# overloads (typing), generators (difflib, tokenize), async (asyncio), decorators
# everywhere (functools, dataclasses), long signatures (argparse, subprocess), odd
# docstrings (email, pydoc, _pydecimal's doctests with backslashes).
DEFAULT_MODULES = (
    "argparse.py",
    "typing.py",
    "dataclasses.py",
    "inspect.py",
    "asyncio/base_events.py",
    "asyncio/tasks.py",
    "email/_header_value_parser.py",
    "tkinter/__init__.py",
    "pydoc.py",
    "unittest/mock.py",
    "collections/__init__.py",
    "enum.py",
    _module("pathlib.py", "pathlib/_local.py"),  # a package since 3.13
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/scanner.py",
    "json/tool.py",
    "textwrap.py",
    "difflib.py",
    "statistics.py",
    "functools.py",
    "contextlib.py",
    "subprocess.py",
    "logging/__init__.py",
    "http/client.py",
    "urllib/parse.py",
    _module("zipfile.py", "zipfile/__init__.py"),  # a package since 3.12
    "ast.py",
    "tokenize.py",
    "string.py",
    "fractions.py",
    _module("_pydatetime.py", "datetime.py"),  # datetime.py is a shim since 3.12
    "heapq.py",
    "calendar.py",
    "configparser.py",
    "csv.py",
    "copy.py",
    "xml/etree/ElementTree.py",
    "concurrent/futures/_base.py",
    "importlib/_bootstrap.py",
    "re/_parser.py",
    "_pydecimal.py",
)

SAMPLE_ALONE = 2  # edits per file applied alone (b)
SEED = 20240611


# --------------------------------------------------------------------------- oracle


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in old code are not ours
        return ast.parse(text)


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def code_dump(text: str) -> str:
    """``ast.dump`` of ``text`` without docstrings: the oracle, independent of validate.

    A body left empty by removing its docstring becomes ``pass`` (what a docstring
    alone stands for).
    """
    return _dump_without_docstrings(_parse(text))


def _dump_without_docstrings(tree: ast.Module, *, leading: bool = False) -> str:
    """``leading``: drop every string statement a body starts with, not just the first."""
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES):
            while node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:] or [ast.Pass()]
                if not leading:
                    break
    return ast.dump(tree)


def python_line_starts(text: str) -> list[int]:
    """Offsets where Python's lines start: ``io`` with ``newline=""`` splits at \\n,
    \\r\\n and a lone \\r, as the tokenizer does, and translates nothing."""
    starts, offset = [], 0
    for line in io.StringIO(text, newline=""):
        starts.append(offset)
        offset += len(line)
    return starts


def github_apply(text: str, edits: Iterable[Edit]) -> str | None:
    """``text`` after GitHub commits the edits as suggestions, or None when one cannot be
    a suggestion (its git lines hold a lone \\r, so more than its Python lines).

    An edit's Python lines are turned into git's by counting ``\\n`` before them;
    GitHub replaces git lines ``start_line..line`` — the text split at ``\\n`` only —
    with the suggestion's lines.
    """
    starts = python_line_starts(text)
    lines = text.split("\n")
    spans = []
    for edit in edits:
        begin = starts[edit.start - 1]
        finish = starts[edit.end] if edit.end < len(starts) else len(text)
        # The Python lines must be whole git lines: start after a \n, end with one.
        if (begin and text[begin - 1] != "\n") or (finish < len(text) and text[finish - 1] != "\n"):
            return None
        first = text.count("\n", 0, begin) + 1
        spans.append((first, first + edit.end - edit.start, edit.lines))
    for first, last, new in sorted(spans, reverse=True):
        lines[first - 1 : last] = list(new)
    return "\n".join(lines)


def comments(text: str) -> list[str]:
    """Every comment of the module, in order (stdlib ``tokenize``)."""
    readline = io.StringIO(text, newline="").readline
    return [t.string for t in tokenize.generate_tokens(readline) if t.type == tokenize.COMMENT]


def head_lines(text: str) -> list[str]:
    """The file's lines as Python numbers them (\\n, \\r\\n, \\r only), without endings."""
    return [line.rstrip("\r\n") for line in python_lines(text)]


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def strip_docstring_statements(text: str) -> str:
    """``text`` with every docstring statement gone, every other byte kept.

    A docstring on lines of its own is deleted, or replaced by ``pass`` at its
    indentation when it is the body's only statement; one that shares a line with
    other code (``def f(): "doc"``, ``"doc"; x = 1``) is cut out of that line.  A
    string statement that becomes a docstring in turn (``"doc"`` then ``"more"``) goes
    too.
    """
    while True:
        stripped = _strip_once(text)
        if stripped == text:
            return text
        text = stripped


def _strip_once(text: str) -> str:
    tree = _parse(text)
    lines = python_lines(text)
    found: list[tuple[ast.Expr, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES) and node.body and _is_docstring(node.body[0]):
            found.append((node.body[0], len(node.body) == 1))
    for stmt, sole in sorted(found, key=lambda f: f[0].lineno, reverse=True):
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        first_line, last_line = lines[first - 1], lines[last - 1]
        body = last_line.rstrip("\r\n")
        ending = last_line[len(body) :]
        before = first_line[: _char_col(first_line, stmt.col_offset)]
        after = body[_char_col(body, stmt.end_col_offset or 0) :]
        rest = after.strip()
        if not before.strip() and (not rest or rest.startswith("#")):
            replacement = [before + "pass" + ending] if sole else []
        elif rest.startswith(";") and not sole:
            replacement = [before + rest[1:].lstrip() + ending]
        else:
            replacement = [before + "pass" + after + ending]
        lines[first - 1 : last] = replacement
    return "".join(lines)


# ------------------------------------------------------------------- one file's run


@dataclass
class Stats:
    """What one run over some files did, so that no test can pass vacuously."""

    files: int = 0
    targets: int = 0
    edits: int = 0
    stale: int = 0  # edits replacing an existing docstring
    alone: int = 0  # edits proven applied alone
    no_slot: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # by violation code
    refused_missing: int = 0  # refusals of definitions without a docstring
    failures: list[str] = field(default_factory=list)
    unusable: int = 0  # files that do not decode, parse or that extract skips
    lone_cr: int = 0  # edits refused because their git lines hold a lone \r

    def __iadd__(self, other: Stats) -> Stats:
        self.files += other.files
        self.targets += other.targets
        self.edits += other.edits
        self.stale += other.stale
        self.alone += other.alone
        self.no_slot += other.no_slot
        self.refused += other.refused
        self.refused_missing += other.refused_missing
        self.failures += other.failures
        self.unusable += other.unusable
        self.lone_cr += other.lone_cr
        return self


def as_candidate(target: Target) -> Target:
    """The target as the pipeline would see a candidate: STALE if documented, else MISSING."""
    decision = Decision.STALE if target.docstring_span is not None else Decision.MISSING
    return replace(target, decision=decision)


@dataclass(frozen=True)
class Candidate:
    target: Target
    text: str
    edit: Edit


def candidates(
    targets: Iterable[Target], text: str, stats: Stats, style_offset: int = 0
) -> list[Candidate]:
    """Offline docstrings for ``targets``, checked and made into edits as the pipeline does."""
    lines = head_lines(text)
    out: list[Candidate] = []
    for i, found in enumerate(targets):
        target = as_candidate(found)
        region = edit_region(target)
        if isinstance(region, str):
            stats.no_slot[region] += 1
            continue
        style = STYLES[(i + style_offset) % len(STYLES)]
        parts = offline_parts(target)
        violations = check_parts(parts, target, allow_restated=True)
        doc = ""
        if not violations:
            doc = compose(parts, target, style)
            violations = check_text(doc, target, style)
        if violations:
            stats.refused[violations[0].code] += 1
            stats.refused_missing += target.decision == Decision.MISSING
            continue
        out.append(Candidate(target, doc, make_edit(target, doc, lines)))
    return out


def _shifted_defs(tree: ast.Module) -> dict[int, ast.AST]:
    return {
        node.lineno: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def assert_bytes_kept(
    head: str, new: str, edits: Sequence[Edit], inserts: Iterable[int] = ()
) -> None:
    """Invariant 8: every head line outside the edits is in ``new``, byte for byte.

    Inserted lines end with the file's newline, the last one with the ending of the
    line it replaces (so a file without a final newline keeps that).  ``inserts`` are
    the start lines of edits that add a missing docstring: those repeat the head's
    header line first, unchanged.
    """
    inserts = set(inserts)
    old, out = python_lines(head), python_lines(new)
    nl = newline_of(head)
    pos, line = 0, 1
    for edit in sorted(edits, key=lambda e: e.start):
        kept = edit.start - line
        assert out[pos : pos + kept] == old[line - 1 : edit.start - 1]
        pos += kept
        got = out[pos : pos + len(edit.lines)]
        assert [g.rstrip("\r\n") for g in got] == list(edit.lines)
        if edit.start in inserts:
            assert edit.start == edit.end and got[0] == old[edit.start - 1]
        last = old[edit.end - 1]
        endings = [g[len(g.rstrip("\r\n")) :] for g in got]
        assert endings == [nl] * (len(got) - 1) + [last[len(last.rstrip("\r\n")) :]]
        pos += len(got)
        line = edit.end + 1
    assert out[pos:] == old[line - 1 :]
    assert new.endswith(("\n", "\r")) == head.endswith(("\n", "\r"))
    if "\n" not in head.replace("\r\n", ""):  # a pure CRLF (or one-line) file stays so
        assert "\n" not in new.replace("\r\n", "")


def check_text_file(
    path: str,
    text: str,
    *,
    rng: random.Random,
    sample_alone: int = SAMPLE_ALONE,
    style_offset: int = 0,
    expect_missing: bool = False,
    oracle: bool = True,
) -> Stats:
    """Invariants 1 and 8 for every definition of one file (see the module docstring).

    ``oracle`` adds the independent whole-module comparison (:func:`code_dump`) to
    ``same_code``; the default corpus run leaves it out to stay fast.
    """
    stats = Stats(files=1)
    result = extract(path, text.encode("utf-8"), None, ALL)
    if result.skips:
        stats.failures.append(f"{path}: skipped by extract: {result.skips}")
        return stats
    stats.targets = len(result.targets)
    if expect_missing:
        documented = [t.qualname for t in result.targets if t.docstring_span is not None]
        if documented:
            stats.failures.append(f"{path}: still documented after stripping: {documented[:5]}")
    found = candidates(result.targets, text, stats, style_offset)
    accepted = [Accepted(c.target, c.edit) for c in found]
    new, rejected = prove_module(text, accepted)
    for a, why in rejected:
        if "lone carriage return" in why and github_apply(text, [a.edit]) is None:
            stats.lone_cr += 1  # right: GitHub would replace more than these lines
            continue
        stats.failures.append(f"{path}::{a.target.qualname}@{a.target.def_line}: {why}")
    if len(rejected) > stats.lone_cr:
        return stats
    refused = {id(a.edit) for a, _ in rejected}
    found = [c for c in found if id(c.edit) not in refused]
    stats.edits = len(found)
    stats.stale = sum(c.target.decision == Decision.STALE for c in found)
    if not same_code(text, new):
        stats.failures.append(f"{path}: same_code is False for all edits together")
    try:
        assert_bytes_kept(
            text,
            new,
            [c.edit for c in found],
            [c.edit.start for c in found if c.target.decision == Decision.MISSING],
        )
    except AssertionError as exc:
        stats.failures.append(f"{path}: invariant 8: {exc}")

    # What GitHub commits: every suggestion together, then a sample alone.
    on_github = github_apply(text, [c.edit for c in found])
    if on_github is None:
        stats.failures.append(f"{path}: an accepted edit spans a lone \\r")
        return stats
    head_comments = comments(text) if oracle or "\r" in text else None
    if head_comments is not None and comments(on_github) != head_comments:
        stats.failures.append(f"{path}: a comment is lost or changed on GitHub")

    # Each docstring reads back as composed, on the definition it was written for.
    new_tree = _parse(on_github)
    defs = _shifted_defs(new_tree)
    shift = 0
    for c in sorted(found, key=lambda c: c.edit.start):
        node = defs.get(c.target.def_line + shift)
        doc = ast.get_docstring(node) if node is not None else None
        if doc != inspect.cleandoc(c.text):
            stats.failures.append(
                f"{path}::{c.target.qualname}: docstring reads back as {doc!r}, "
                f"not {inspect.cleandoc(c.text)!r}"
            )
        shift += len(c.edit.lines) - (c.edit.end - c.edit.start + 1)
    if oracle and _dump_without_docstrings(new_tree) != code_dump(text):
        stats.failures.append(f"{path}: the oracle sees a code change for all edits together")

    for c in rng.sample(found, min(sample_alone, len(found))):
        alone = github_apply(text, [c.edit])
        if alone is None or code_dump(alone) != code_dump(text):
            stats.failures.append(f"{path}::{c.target.qualname}: changes code when applied alone")
        elif head_comments is not None and comments(alone) != head_comments:
            stats.failures.append(f"{path}::{c.target.qualname}: loses a comment applied alone")
        stats.alone += 1
    return stats


def check_stdlib_file(
    relpath: str, *, sample_alone: int = SAMPLE_ALONE, thorough: bool = False
) -> Stats:
    """(a), (b) on the real file, then (c) on its docstring-stripped version.

    ``thorough`` adds the oracle and checks that stripping removed only docstrings.
    """
    text = (STDLIB / relpath).read_bytes().decode("utf-8")
    rng = random.Random(f"{SEED}:{relpath}")
    stats = check_text_file(relpath, text, rng=rng, sample_alone=sample_alone, oracle=thorough)
    stripped = strip_docstring_statements(text)
    if thorough and _dump_without_docstrings(
        _parse(stripped), leading=True
    ) != _dump_without_docstrings(_parse(text), leading=True):
        stats.failures.append(f"{relpath}: (test bug) stripping docstrings changed the code")
        return stats
    stats += check_text_file(
        relpath,
        stripped,
        rng=rng,
        sample_alone=max(1, sample_alone - 1),
        style_offset=1,
        expect_missing=True,
        oracle=thorough,
    )
    stats.files -= 1  # the same file twice
    return stats


def check_any_stdlib_file(relpath: str) -> Stats:
    """:func:`check_stdlib_file` for a file that may be unusable (bad encoding, ...)."""
    if not _usable(relpath):
        return Stats(unusable=1)
    return check_stdlib_file(relpath, sample_alone=2, thorough=True)


def run_all(check: Callable[[str], Stats], relpaths: Sequence[str]) -> dict[str, Stats]:
    """``check`` over ``relpaths`` on every core we may use, biggest files first."""
    order = sorted(relpaths, key=lambda r: -(STDLIB / r).stat().st_size)
    workers = min(4, len(os.sched_getaffinity(0)), len(order))
    if workers <= 1:
        return {relpath: check(relpath) for relpath in order}
    with ProcessPoolExecutor(workers) as pool:
        return dict(zip(order, pool.map(check, order), strict=True))


@pytest.fixture(scope="module")
def default_corpus() -> dict[str, Stats]:
    return run_all(check_stdlib_file, DEFAULT_MODULES)


def _report(stats: Stats) -> str:
    return "\n".join(stats.failures[:20]) + (
        f"\n... and {len(stats.failures) - 20} more" if len(stats.failures) > 20 else ""
    )


# ------------------------------------------------------------------------ the corpus


@pytest.mark.timeout(600)  # the first one runs the whole corpus (the fixture)
@pytest.mark.parametrize("relpath", DEFAULT_MODULES)
def test_invariant_1_on_a_stdlib_module(relpath, default_corpus):
    stats = default_corpus[relpath]
    assert not stats.failures, _report(stats)
    # Not vacuous: nearly every definition with a docstring slot got a proven edit.
    assert stats.targets > 0
    slots = stats.edits + sum(stats.refused.values())
    assert stats.edits >= 0.9 * slots, (stats.refused, stats.no_slot)
    assert stats.alone >= min(2, stats.edits)


@pytest.mark.timeout(600)
def test_the_corpus_run_is_not_vacuous(default_corpus):
    total = Stats()
    for stats in default_corpus.values():
        total += stats
    assert not total.failures, _report(total)
    assert total.files == len(DEFAULT_MODULES) >= 40
    # Each file counts twice: as it is (mostly STALE) and stripped (all MISSING).
    assert total.targets >= 8_000, total.targets
    assert total.edits >= 7_000, total.edits
    assert total.stale >= 2_000, total.stale
    assert total.edits - total.stale >= 4_000
    assert total.alone >= 120
    # Whatever had no slot was a one-line body or a docstring on the header's line.
    assert set(total.no_slot) <= {
        "body on the same line as the header",
        "docstring shares a line with the definition header",
    }, total.no_slot


def _all_stdlib_files() -> list[str]:
    out = []
    for folder, dirs, names in os.walk(STDLIB):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages"))
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(names):
            if name.endswith(".py"):
                out.append(Path(folder, name).relative_to(STDLIB).as_posix())
    return out


def _usable(relpath: str) -> bool:
    """UTF-8 files that parse and that extract does not skip (generated, huge, ...)."""
    data = (STDLIB / relpath).read_bytes()
    try:
        text = data.decode("utf-8")
        _parse(text)
    except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    if text.startswith("\ufeff"):
        return False
    return not extract(relpath, data, None, ALL).skips


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not FULL_CORPUS, reason="set DOCGEN_FULL_CORPUS=1 to run the whole stdlib")
def test_invariant_1_on_the_whole_stdlib():
    total = Stats()
    for stats in run_all(check_any_stdlib_file, _all_stdlib_files()).values():
        total += stats
    print(
        f"\n{total.files} files ({total.unusable} unusable), {total.targets} targets, {total.edits} edits "
        f"({total.stale} stale), {total.alone} alone; refused {dict(total.refused)}; "
        f"no slot {dict(total.no_slot)}"
    )
    assert not total.failures, _report(total)
    assert total.files >= 1000 and total.edits >= 50_000


# ------------------------------------------------------------------ byte variants


def to_crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def to_tabs(text: str) -> str:
    """Four-space indentation steps as tabs (stdlib code indents by multiples of 4)."""
    return re.sub(r"(?m)^((?:    )+)", lambda m: "\t" * (len(m[1]) // 4), text)


def with_form_feeds(text: str) -> str:
    """A form feed line before each top-level ``def``/``class`` that follows a blank line."""
    return re.sub(r"(?m)^\n(?=(?:def|class|async def) )", "\n\f\n", text)


def without_final_newline(text: str) -> str:
    return text.rstrip("\r\n")


VARIANTS: dict[str, Callable[[str], str]] = {
    "crlf": to_crlf,
    "tabs": to_tabs,
    "crlf+tabs": lambda t: to_crlf(to_tabs(t)),
    "form-feeds": with_form_feeds,
    "no-final-newline": without_final_newline,
    "crlf+no-final-newline": lambda t: without_final_newline(to_crlf(t)),
}
VARIANT_MODULES = ("json/decoder.py", "textwrap.py", "copy.py")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_invariant_8_on_variants_of_stdlib_modules(variant):
    transform = VARIANTS[variant]
    total = Stats()
    for relpath in VARIANT_MODULES:
        original = (STDLIB / relpath).read_text(encoding="utf-8")
        for text in (original, strip_docstring_statements(original)):
            head = transform(text)
            if "tabs" not in variant:  # tabs change multi-line string constants
                assert code_dump(head) == code_dump(text)
            rng = random.Random(f"{SEED}:{variant}:{relpath}")
            total += check_text_file(relpath, head, rng=rng)
    assert not total.failures, _report(total)
    assert total.edits >= 60


def test_invariant_8_keeps_an_encoding_line_tabs_and_crlf():
    text = "# -*- coding: utf-8 -*-\r\n\r\ndef f(a):\r\n\tb = a\r\n\treturn b"
    stats = check_text_file("enc.py", text, rng=random.Random(SEED), sample_alone=1)
    assert not stats.failures, _report(stats)
    assert stats.edits == 1


# ------------------------------------------------------------ generated sources

_NAMES = ["value", "items", "key", "data", "n", "x", "callback", "données", "名前", "_private"]
_NAMES += ["self_", "cls_", "type", "args_", "kw", "path", "timeout", "default", "ctx"]
_ANNOTATIONS = [
    "int",
    "str | None",
    "dict[str, list[int]]",
    "'Forward'",
    "Callable[..., T]",
    "Literal['a:b', \"c\"]",
    "typing.Optional[\n        bytes\n    ]",
]
_DEFAULTS = ["0", "None", "'x'", '"a:b"', "(1, 2)", "lambda y: y", "{'k': [1]}", "r'\\d'", "..."]
_DEFAULTS += ["-1.5", "f'{1}'", "b'\\x00'", '\'"""\'', '"\\\\"']
_DECORATORS = [
    "@functools.cache",
    "@property",
    "@staticmethod",
    "@classmethod",
    "@overload",
    "@abc.abstractmethod",
    "@decorator(1, key='v')",
    "@(lambda f: f)",
    "@x.setter",
]
_FUNC_NAMES = ["compute", "get_value", "_helper", "__init__", "__repr__", "test_thing", "run"]
_FUNC_NAMES += ["load_all", "données", "HTTPServer", "x", "parse_URL_v2"]


@st.composite
def signatures(draw) -> list[str]:
    names = draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=6))
    kinds = draw(
        st.lists(
            st.sampled_from(["posonly", "positional", "kwonly"]),
            min_size=len(names),
            max_size=len(names),
        )
    )
    order = {"posonly": 0, "positional": 1, "kwonly": 2}
    params = sorted(zip(kinds, names, strict=True), key=lambda p: order[p[0]])
    vararg = draw(st.sampled_from([None, "args", "rest"]))
    varkw = draw(st.sampled_from([None, "kwargs", "options"]))
    defaults_from = draw(st.integers(0, len(params)))  # positional defaults are trailing

    def one(kind: str, name: str, index: int) -> str:
        text = name
        if draw(st.booleans()):
            text += ": " + draw(st.sampled_from(_ANNOTATIONS))
        has_default = index >= defaults_from if kind != "kwonly" else draw(st.booleans())
        if has_default:
            value = draw(st.sampled_from(_DEFAULTS))
            text += (" = " if ":" in text else "=") + value
        return text

    out: list[str] = []
    star = False
    for index, (kind, name) in enumerate(params):
        if kind == "kwonly" and not star:
            out.append(f"*{vararg}" if vararg else "*")
            star = True
        out.append(one(kind, name, index))
        following = params[index + 1][0] if index + 1 < len(params) else None
        if kind == "posonly" and following != "posonly":
            out.append("/")
    if vararg and not star:
        out.append(f"*{vararg}")
    if varkw:
        out.append(f"**{varkw}")
    return out


_BODY = [
    "return x",
    "return",
    "return None",
    "yield x",
    "yield from range(3)",
    "raise ValueError('bad')",
    "raise errors.ParseError from None",
    "raise",
    "pass",
    "...",
    "x = 1",
    "x = '''multi\nline'''",
    "# a comment",
    "result = {\n    'a': 1,\n}",
    "if x:\n{u}return None",
    "class Inner:\n{u}def method(self, a):\n{u}{u}return a",
    "def nested(a, *, b=2):\n{u}yield a",
    "async def waiter():\n{u}await thing()",
    "'not a docstring'",
]
_DOCSTRINGS = [
    '"""Do a thing."""',
    "'''Do a thing.'''",
    '"Do it."',
    'r"""Match \\d+ digits."""',
    '"""Summary.\n\nArgs:\n{u}{u}value: The value.\n{u}"""',
    '"""\n{u}Summary on the second line.\n{u}"""',
    '"""Unicode — «docs» ✓."""',
    "'''Contains \"\"\" quotes.'''",
    'f"not a docstring"',
]


def _indent(block: str, prefix: str, unit: str) -> list[str]:
    return [(prefix + line) if line else "" for line in block.replace("{u}", unit).split("\n")]


@st.composite
def definitions(draw, unit: str, prefix: str, in_class: bool) -> list[str]:
    lines = [prefix + d for d in draw(st.lists(st.sampled_from(_DECORATORS), max_size=2))]
    keyword = draw(st.sampled_from(["def", "async def"]))
    name = draw(st.sampled_from(_FUNC_NAMES))
    params = draw(signatures())
    if in_class and draw(st.booleans()):
        params = ["self", *params]
    multiline = draw(st.booleans()) and params
    returns = draw(st.sampled_from(["", " -> int", " -> None", " -> Iterator[str]", " -> 'X'"]))
    comment = draw(st.sampled_from(["", "  # noqa: D103", "  # type: ignore"]))
    if multiline:
        lines.append(f"{prefix}{keyword} {name}(")
        lines += [f"{prefix}{unit}{p}," for p in params]
        lines.append(f"{prefix}){returns}:{comment}")
    else:
        lines.append(f"{prefix}{keyword} {name}({', '.join(params)}){returns}:{comment}")
    body_prefix = prefix + unit
    if draw(st.integers(0, 9)) == 0:  # one-liner: no slot for a docstring
        lines[-1] = lines[-1].removesuffix(comment) + " return 1"
        return lines
    if draw(st.booleans()):
        lines += _indent(draw(st.sampled_from(_DOCSTRINGS)), body_prefix, unit)
    if draw(st.booleans()):
        lines.append(f"{body_prefix}# leading comment")
    if draw(st.booleans()):
        lines.append("")
    statements = draw(st.lists(st.sampled_from(_BODY), min_size=1, max_size=4))
    for statement in statements:
        lines += _indent(statement, body_prefix, unit)
    return lines


@st.composite
def modules(draw) -> str:
    unit = draw(st.sampled_from(["    ", "  ", "\t", "        "]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append("# -*- coding: utf-8 -*-")
    if draw(st.booleans()):
        lines.append('"""Module docstring."""')
    lines.append("import os")
    for _ in range(draw(st.integers(1, 3))):
        lines.append("")
        if draw(st.booleans()):
            lines.append(f"class Thing{len(lines)}(Base, metaclass=Meta):")
            if draw(st.booleans()):
                lines += _indent(draw(st.sampled_from(_DOCSTRINGS)), unit, unit)
            for _ in range(draw(st.integers(1, 2))):
                lines += draw(definitions(unit, unit, True))
        else:
            lines += draw(definitions(unit, "", False))
    text = newline.join(lines)
    if draw(st.booleans()):
        text += newline
    return text


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(modules())
def test_invariant_1_on_generated_sources(text):
    try:
        _parse(text)
    except SyntaxError:
        assume(False)
    stats = check_text_file("gen.py", text, rng=random.Random(SEED), sample_alone=100)
    # pytest --hypothesis-show-statistics shows how varied the examples were.
    event("CRLF" if "\r\n" in text else "CR" if "\r" in text else "LF")
    event("tabs" if "\n\t" in text.replace("\r", "\n") else "spaces")
    event(f"edits: {min(stats.edits, 5)}{'+' if stats.edits >= 5 else ''}")
    event(f"stale edits: {min(stats.stale, 2)}")
    assert not stats.failures, "\n".join(stats.failures)
    assert stats.targets >= 1
    # The offline skeleton is always acceptable; only an old docstring's own text (a
    # triple quote inside single-quoted triple quotes) may be refused when it is kept.
    assert stats.refused_missing == 0 and set(stats.refused) <= {UNSAFE_TEXT}, stats.refused
    # Every edit was also proven alone.
    assert stats.alone == stats.edits
    stripped = strip_docstring_statements(text)
    stats = check_text_file("gen.py", stripped, rng=random.Random(SEED), expect_missing=True)
    assert not stats.failures, "\n".join(stats.failures)
    assert not stats.refused, stats.refused


# --------------------------------------------------------------------- adversarial

HEAD = (
    "import re\n"
    "\n"
    "\n"
    "class Pattern:\n"
    "    def match(self, text, flags=0):\n"
    "        if not text:\n"
    "            raise ValueError('empty')\n"
    "        return re.match(text, flags)\n"
)


def _match_target() -> Target:
    found = extract("p.py", HEAD.encode(), None, ALL).targets
    return as_candidate(next(t for t in found if t.qualname == "Pattern.match"))


def _parts(**text: str) -> DocParts:
    """DocParts for ``Pattern.match`` with ``text`` put into the field(s) named."""
    base = {
        "summary": "Match the pattern at the start of a text.",
        "description": "",
        "text": "The text to match.",
        "flags": "Regular expression flags.",
        "returns": "The match object, or None.",
        "raises": "When the text is empty.",
    }
    base.update(text)
    return DocParts(
        summary=base["summary"],
        description=base["description"],
        params=(("text", base["text"]), ("flags", base["flags"])),
        returns=base["returns"],
        raises=(("ValueError", base["raises"]),),
    )


SAFE_TEXTS = {
    "backslashes": {"description": r"Matches \d+ and \n, C:\path\to\file, and \N{DASH}."},
    "trailing backslash": {"flags": "Ends with a backslash \\"},
    "trailing quote": {"summary": 'Match the "pattern"', "returns": 'It says "yes"'},
    "one-line trailing quote": {"summary": 'Match the "pattern"?', "text": '"', "flags": "'"},
    "double quotes": {"description": 'Two "" quotes, then "" again "'},
    "single quotes": {"description": "Don't 'quote' 'me', ''", "returns": "'"},
    "unicode": {"description": "Ünïcödé — «quoted» ✓ 名前 😀 e\u0301 \u00a0nbsp \u200bzw."},
    "very long words": {"description": "x" * 300 + " " + "y" * 150, "text": "z" * 200},
    "f-string braces": {"description": "Uses {braces} and %s and {0!r}."},
    "escape-looking": {"description": "\\x00 \\u2028 \\'\\\" \\\\"},
    "markup": {"description": "Args:\n    fake: section.\n\n:param fake: field"},
    "tabs": {"description": "tab\there"},
    "nel": {"description": "next\x85line"},
}
UNSAFE_TEXTS = {
    "triple double quotes": {"description": 'Ends early """; import os; """'},
    "triple single quotes": {"returns": "x ''' y"},
    "triple quote at the end": {"summary": 'Match it"""'},
    "escaped triple quote": {"description": '\\"""'},
    "code fence": {"description": "```suggestion\nrm -rf /\n```"},
    "carriage return": {"description": "line one\rline two"},
    "crlf": {"text": "text\r\nmore"},
    "nul": {"flags": "a\x00b"},
    "line separator": {"description": "a\u2028b"},
    "bidi override": {"description": "a\u202eb"},
}


@pytest.mark.parametrize("name", list(SAFE_TEXTS))
def test_awkward_but_safe_text_is_quoted_so_the_code_never_changes(name):
    target = _match_target()
    lines = head_lines(HEAD)
    for style in STYLES:
        parts = _parts(**SAFE_TEXTS[name])
        violations = check_parts(parts, target, allow_restated=True)
        doc = compose(parts, target, style)
        violations += check_text(doc, target, style)
        if violations:  # refused is fine; what is accepted must be proven
            assert all(v.code != UNSAFE_TEXT for v in violations), violations
            continue
        edit = make_edit(target, doc, lines)
        new, rejected = prove_module(HEAD, [Accepted(target, edit)])
        assert rejected == [], (style, rejected)
        assert same_code(HEAD, new) and code_dump(new) == code_dump(HEAD)
        assert_bytes_kept(HEAD, new, [edit], [edit.start])
        node = _shifted_defs(_parse(new))[target.def_line]
        assert ast.get_docstring(node) == inspect.cleandoc(doc), style


@pytest.mark.parametrize("name", list(UNSAFE_TEXTS))
def test_text_that_could_end_the_literal_is_refused_before_insertion(name):
    target = _match_target()
    parts = _parts(**UNSAFE_TEXTS[name])
    # The pipeline checks the parts first: refused there.
    codes = {v.code for v in check_parts(parts, target, allow_restated=True)}
    assert UNSAFE_TEXT in codes
    for style in STYLES:
        doc = compose(parts, target, style)
        if any(needle in doc for needle in ('"""', "'''", "```", "\r", "\x00", "\u2028", "\u202e")):
            # Whatever the composed text still carries is refused again, and the last
            # line of defence writes no literal for it.
            assert UNSAFE_TEXT in {v.code for v in check_text(doc, target, style)}
            with pytest.raises(ValueError):
                literal_lines(doc, "        ")
            with pytest.raises(ValueError):
                make_edit(target, doc, head_lines(HEAD))
            continue
        # compose normalised it away (line breaks in prose): then it must be harmless.
        edit = make_edit(target, doc, head_lines(HEAD))
        new, rejected = prove_module(HEAD, [Accepted(target, edit)])
        assert rejected == [] and code_dump(new) == code_dump(HEAD)


def test_a_hand_made_edit_that_smuggles_code_is_rejected():
    """The proof, not just the content checks, stands between text and code."""
    target = _match_target()
    region = edit_region(target)
    assert not isinstance(region, str)
    start, _ = region
    smuggled = (
        head_lines(HEAD)[start - 1],
        '        """Match."""; import os',
    )
    new, rejected = prove_module(HEAD, [Accepted(target, Edit(start, start, smuggled))])
    assert new == HEAD and len(rejected) == 1
    early_end = (head_lines(HEAD)[start - 1], '        """Match """ + """it."""')
    new, rejected = prove_module(HEAD, [Accepted(target, Edit(start, start, early_end))])
    assert len(rejected) == 1 or code_dump(new) == code_dump(HEAD)


# ------------------------------------------------------------------- regressions
# Bugs this file found in other modules, each fixed since; the tests keep them fixed.


def test_pipeline_lines_with_form_feed_are_numbered_as_python_does():
    # Was a bug in bot/docstrings/pipeline.py (``_prepare``, fixed in dbe0738): ``_File.lines``
    # was ``text.splitlines()``, which also splits at \f, \v, \x1c-\x1e, \x85,
    # U+2028/9.  ``make_edit`` takes the header line from those lines by number, so
    # after such a character the suggestion repeated the wrong line: the proof
    # rejected it (invariant 1 held) but the definition was skipped ("the edited file
    # does not parse" / "definition not found").
    import asyncio

    from bot.docstrings.budget import TokenBudget
    from bot.docstrings.cache import MemoryCache
    from bot.docstrings.llm.offline import OfflineProvider
    from bot.docstrings.models import Action, FileChange
    from bot.docstrings.pipeline import run
    from bot.docstrings.run_state import Context
    from bot.docstrings.tokens import TokenCounter, load_encoding

    head = "import os\n\f\ndef f(a):\n    b = a\n    return b\n# \x85 \u2028\ndef g(c):\n    d = c\n    return d\n"
    patch = f"@@ -0,0 +1,{len(python_lines(head))} @@\n" + "".join(
        "+" + line.rstrip("\n") + "\n" for line in python_lines(head)
    )
    ctx = Context(
        config=RepoConfig(),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(20_000),
    )
    result = asyncio.run(run([FileChange("ff.py", "added", patch, head.encode())], ctx))
    got = {o.target.qualname: (o.action, o.reason) for o in result.report.outcomes}
    assert got == {"f": (Action.ADDED, ""), "g": (Action.ADDED, "")}


def test_prove_module_walks_the_tree_once():
    # Was a bug in bot/docstrings/validate.py (``prove_edit``, fixed in 33d0b0e): every call ran
    # ``_defs_by_line`` — a full ``ast.walk`` of the edited module — so
    # ``prove_module`` was quadratic in the number of edits: 165 edits on argparse.py
    # took ~13 s, tkinter/__init__.py's 557 ~40 s (DESIGN.md: "one re-parse per file
    # is enough").
    text = "".join(f"def f{i}(a):\n    b = a\n    return b\n\n\n" for i in range(60))
    found = candidates(extract("many.py", text.encode(), None, ALL).targets, text, Stats())
    assert len(found) == 60
    visited = 0
    real_walk = ast.walk

    def counting_walk(node):
        nonlocal visited
        for child in real_walk(node):
            visited += 1
            yield child

    size = sum(1 for _ in real_walk(ast.parse(text)))
    with mock.patch.object(ast, "walk", counting_walk):
        new, rejected = prove_module(text, [Accepted(c.target, c.edit) for c in found])
    assert rejected == [] and new != text
    # A handful of whole-module walks (the final gate has some) and, for the proof of
    # each edit alone, walks of its own definition: linear, not one module per edit.
    assert visited <= 10 * size, f"{visited / size:.1f} module walks to prove {len(found)} edits"


def test_google_parameter_types_with_a_colon_read_back():
    # Was a bug in bot/docstrings/style.py (``_compose_google``, fixed in dbe0738): an annotation
    # containing ":" was written as ``value (Literal['a:b']): ...``; Google parsers
    # (docstring_parser, Napoleon) split that entry at the first colon, so
    # ``check_text`` read a parameter named "value (Literal['a" and every Google
    # docstring for such a function was refused (DG201/DG202), whoever wrote it.
    source = "def compute(value: Literal['a:b'] = 'a:b', key: dict[str, int] = {}):\n"
    source += "    x = value\n    return x\n"
    target = as_candidate(extract("c.py", source.encode(), None, ALL).targets[0])
    doc = compose(offline_parts(target), target, Style.GOOGLE)
    assert check_text(doc, target, Style.GOOGLE) == []


def test_offline_skeleton_keeps_a_wrapped_first_sentence_whole():
    # Was a bug in bot/generate.py (``offline_parts``, fixed in dbe0738): for a stale
    # docstring whose first sentence wraps onto a second line, docstring_parser's
    # ``short_description`` is only the first line, so the skeleton's summary ended
    # mid-sentence ("..., and.") and the rest of the sentence opened the description
    # (difflib.Differ, many tkinter methods).
    source = (
        "class Differ:\n"
        '    """Differ compares sequences of lines of text, and\n'
        "    produces human-readable deltas.\n"
        "\n"
        "    Args:\n"
        "        gone: Not a parameter any more.\n"
        '    """\n'
        "\n"
        "    def __init__(self, linejunk=None):\n"
        "        self.linejunk = linejunk\n"
    )
    target = as_candidate(extract("d.py", source.encode(), None, ALL).targets[0])
    parts = offline_parts(target)
    doc = " ".join(compose(parts, target, Style.GOOGLE).split())
    assert "of lines of text, and produces human-readable deltas." in doc, doc
