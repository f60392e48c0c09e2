"""Suggestions leave a formatter-clean file clean (issue 12, "Suggestions pass the
project's formatter").

The oracles are the formatters themselves, run as subprocesses: ``ruff format --check``
and ``black --check`` over real modules (stdlib and site-packages) that were made
formatter-clean first, then reviewed by ``docgen review --offline --apply`` with every
definition new.  Unit tests pin what a suggestion inserts (a blank line after a class
docstring, the file's triple quote) and that the proof accepts exactly one empty line
after a new docstring and nothing more.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.config import RepoConfig
from bot.docstrings.edits import file_quote, make_edit
from bot.docstrings.extract import extract
from bot.docstrings.models import Edit
from bot.docstrings.proof import Accepted, prove_module
from tests.code_oracle import without_docstrings
from tests.realgit import _ENV


def _source_without_docstrings(source: str) -> str:
    """The module with every docstring removed, as source."""
    return ast.unparse(without_docstrings(ast.parse(source))) + "\n"

ROOT = Path(__file__).resolve().parent.parent
ALL = RepoConfig(skip_private=False, skip_dunder=False, skip_tests=False, skip_trivial=False)
# Every definition of the corpus is documented: nothing skipped, no per-PR cap in the way.
EVERYTHING = """\
skip_private: false
skip_dunder: false
skip_tests: false
skip_trivial: false
max_functions: 2000
"""

pytest.importorskip("black", reason="black is in the test extras (pyproject.toml)")


def targets(code: str):
    result = extract("m.py", code.encode(), None, ALL)
    return {t.qualname: t for t in result.targets}


def proven(code: str, qualname: str, text: str, edit: Edit | None = None):
    t = targets(code)[qualname]
    edit = edit or make_edit(t, text, code.splitlines(), file_quote(code))
    return prove_module(code, [Accepted(t, edit)])


CLASS = '''\
class Box:
    size = 1

    def open(self):
        return self.size
'''


class TestWhatASuggestionInserts:
    def test_a_class_docstring_is_followed_by_a_blank_line(self):
        new, rejected = proven(CLASS, "Box", "A box.")
        assert rejected == []
        assert new.startswith('class Box:\n    """A box."""\n\n    size = 1\n')

    def test_no_second_blank_line_when_the_body_starts_with_one(self):
        code = CLASS.replace("class Box:\n", "class Box:\n\n")
        new, rejected = proven(code, "Box", "A box.")
        assert rejected == []
        assert new.startswith('class Box:\n    """A box."""\n\n    size = 1\n')

    def test_a_function_docstring_gets_no_blank_line(self):
        new, rejected = proven(CLASS, "Box.open", "Open the box.")
        assert rejected == []
        assert '        """Open the box."""\n        return self.size\n' in new

    def test_the_files_triple_quote_is_used(self):
        code = "def f():\n    '''Old style.'''\n    return 1\n\n\ndef g():\n    return 2\n"
        assert file_quote(code) == "'''"
        new, rejected = proven(code, "g", "Return two.\n\nReturns:\n    Two.")
        assert rejected == []
        assert "def g():\n    '''Return two.\n\n    Returns:\n        Two.\n    '''\n" in new

    def test_double_quotes_win_a_tie_and_an_unparsable_file(self):
        assert file_quote("def f():\n    '''A.'''\n\n\ndef g():\n    \"\"\"B.\"\"\"\n") == '"""'
        assert file_quote("def f(:\n") == '"""'
        assert file_quote("x = 1\n") == '"""'

    @pytest.mark.parametrize(
        ("extra", "accepted"),
        [
            ((), True),
            (("",), True),
            (("", ""), False),  # a second blank line is not what a formatter wants
            (("    # note",), False),  # a comment is code the head did not have
            (("    x = 2",), False),
            (("    ",), False),  # only an exactly empty line is layout
        ],
        ids=["none", "one-blank", "two-blank", "comment", "statement", "spaces"],
    )
    def test_the_proof_tolerates_one_empty_line_and_nothing_more(self, extra, accepted):
        t = targets(CLASS)["Box"]
        edit = Edit(1, 1, ("class Box:", '    """A box."""', *extra))
        _, rejected = prove_module(CLASS, [Accepted(t, edit)])
        assert (rejected == []) is accepted, rejected


# ----------------------------------------------------------------- the corpus

CORPUS = ("textwrap", "shlex", "graphlib", "fractions", "docstring_parser.google")


def _tool(*args: str, stdin: str | None = None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean_for_both(source: str, cwd: Path) -> str | None:
    """``source`` formatted until ruff and black both leave it alone (None: they never agree)."""
    text = source
    for _ in range(3):
        ruffed = _tool("ruff", "format", "--isolated", "-", stdin=text, cwd=cwd)
        blacked = _tool("black", "-q", "-", stdin=ruffed.stdout, cwd=cwd)
        assert ruffed.returncode == 0 and blacked.returncode == 0, ruffed.stderr + blacked.stderr
        if blacked.stdout == text:
            return text
        text = blacked.stdout
    return None


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=_ENV, check=True, capture_output=True)


def _checks(path: Path, cwd: Path) -> dict[str, str]:
    ruff = _tool("ruff", "format", "--isolated", "--check", "--diff", str(path), cwd=cwd)
    black = _tool("black", "--check", "--diff", "-q", str(path), cwd=cwd)
    return {
        name: proc.stdout + proc.stderr
        for name, proc in (("ruff", ruff), ("black", black))
        if proc.returncode != 0
    }


def _docstrings(text: str) -> int:
    tree = ast.parse(text)
    return sum(
        ast.get_docstring(n, clean=False) is not None
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A git repo: ``main`` without the modules, ``feature`` adding them formatter-clean."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("corpus")
    _git(repo, "init", "-q", "-b", "main")
    (repo / ".github").mkdir()
    (repo / ".github" / "docgen.yml").write_text(EVERYTHING)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "feature")
    written = 0
    for name in CORPUS:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        source = Path(spec.origin).read_text(encoding="utf-8")
        clean = _clean_for_both(_source_without_docstrings(source), repo)
        if clean is None:
            continue
        (repo / f"{name.replace('.', '_')}.py").write_text(clean, encoding="utf-8")
        written += 1
    assert written >= 4, "the formatters disagree on too much of the corpus"
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "head")
    return repo


@pytest.mark.timeout(600)
def test_applied_suggestions_keep_the_corpus_formatter_clean(corpus):
    files = sorted(corpus.glob("*.py"))
    for path in files:
        assert _checks(path, corpus) == {}, f"{path.name} is not clean before"
    before = {p: p.read_text(encoding="utf-8") for p in files}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER"):
        env.pop(name, None)
    env["DOCGEN_DATA_DIR"] = str(corpus.parent / "data")
    command = ["review", "--offline", "--no-diff", "--base", "main", "--apply", str(corpus)]
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", *command],
        cwd=corpus,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    added = 0
    classes = 0
    for path in files:
        after = path.read_text(encoding="utf-8")
        assert _checks(path, corpus) == {}, textwrap.shorten(str(_checks(path, corpus)), 2000)
        assert ast.dump(ast.parse(_source_without_docstrings(after))) == ast.dump(
            ast.parse(before[path])
        ), f"{path.name}: code changed"
        added += _docstrings(after) - _docstrings(before[path])
        classes += sum(
            isinstance(n, ast.ClassDef) and ast.get_docstring(n) is not None
            for n in ast.walk(ast.parse(after))
        )
    assert added >= 90, run.stdout[-2000:]
    assert classes >= 5  # the case the demo got wrong: class docstrings


def test_the_demo_stays_formatter_clean_after_apply(tmp_path):
    """The issue's report: ``docgen review --apply`` on the bundled demo left a class
    docstring without the blank line ruff and black want after it."""
    from bot.cli.sample import make_sample_repo

    root = make_sample_repo(tmp_path)
    path = root / "shop" / "inventory.py"
    assert _checks(path, root) == {}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCGEN_DATA_DIR": str(tmp_path / "data")}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER"):
        env.pop(name, None)
    command = ["review", "--offline", "--no-diff", "--base", "main", "--apply", str(root)]
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", *command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'class Basket:\n    """' in path.read_text()
    assert _checks(path, root) == {}
