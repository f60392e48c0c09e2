"""Code in newer Python syntax: reviewed on a Python that has it, named on one that lacks it.

The fixtures under ``tests/fixtures/newer_syntax`` use what Python 3.12 (PEP 695
generics and ``type`` statements, PEP 701 f-strings), 3.13 (PEP 696 type parameter
defaults) and 3.14 (PEP 750 t-strings, PEP 758 ``except A, B:``) added.  The same tests
run on every interpreter ``.ci/run`` uses: where the running Python has the syntax, the
file is reviewed and its suggestions proven; where it does not, the skip names the
Python it needs.

Oracles: the real interpreters installed next to this one (pyenv) decide which
snippets each version accepts; stdlib ``ast`` and executing the docstring'd module
decide that a suggestion changed nothing but docstrings.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import git
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import RepoConfig
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.extract import extract
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.localgit import read_changes
from bot.docstrings.models import Action
from bot.docstrings.pipeline import run
from bot.docstrings.pysyntax import explain_syntax_error, newer_constructs
from bot.docstrings.render import checkrun
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding
from tests.code_oracle import code_dump

FIXTURES = Path(__file__).parent / "fixtures" / "newer_syntax"
RUNNING = sys.version_info[:2]
RUNNING_NAME = f"{RUNNING[0]}.{RUNNING[1]}"

# fixture → (the Python it needs, the definitions a review on that Python offers)
NEEDS = {
    "py312_generics.py": (
        (3, 12),
        {"first", "swap", "group", "clamp", "Box", "Box.map", "firsts"},
    ),
    "py312_fstrings.py": ((3, 12), {"greet", "bullet_list", "table", "quoted", "doubled"}),
    "py313_type_defaults.py": ((3, 13), {"Registry", "Registry.register", "success"}),
    "py314_except.py": ((3, 14), {"parse_port"}),
    "py314_tstrings.py": ((3, 14), {"greeting"}),
}


def test_every_fixture_is_listed():
    assert sorted(p.name for p in FIXTURES.glob("*.py")) == sorted(NEEDS)


def _name(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


# ------------------------------------------------------------ real interpreters


@cache
def interpreter(version: str) -> str | None:
    """Python ``version`` (X.Y) on PATH or under pyenv, or None."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(p) for p in root.glob(f"versions/{version}.*/bin/python{version}"))
    want = tuple(int(part) for part in version.split("."))
    for candidate in filter(None, candidates):
        probe = f"import sys; sys.exit(sys.version_info[:2] != {want!r})"
        if subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


_PARSE_ALL = """
import ast, json, sys, warnings
warnings.simplefilter("ignore")
out = []
for source in json.load(sys.stdin):
    try:
        ast.parse(source)
        out.append(None)
    except SyntaxError as exc:
        out.append(exc.lineno)
json.dump(out, sys.stdout)
"""


def parse_with(version: str, sources: list[str]) -> list[int | None]:
    """What Python ``version`` says of each source: None (parses) or the error's line."""
    python = interpreter(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed (pyenv install {version})")
    result = subprocess.run(
        [python, "-c", _PARSE_ALL],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_each_fixture_needs_exactly_the_python_it_claims(name):
    needs, _ = NEEDS[name]
    source = (FIXTURES / name).read_text()
    for version in ("3.11", "3.12", "3.13"):
        older = tuple(map(int, version.split("."))) < needs
        [error] = parse_with(version, [source])
        assert (error is not None) == older, (name, version)


# Statements: what each Python accepts, decided by that Python.
STATEMENTS = [
    "def f[T](x: T) -> T:\n    return x\n",
    "async def f[T](x: T) -> T:\n    return x\n",
    "class C[T]:\n    pass\n",
    "class C[T](list[T]):\n    pass\n",
    "def f[\n    T: (int, str),\n    *Ts,\n    **P,\n](x: T) -> T:\n    return x\n",
    "type X = int\n",
    "type X[T] = list[T]\n",
    "x = 1; type Y = int\n",
    "if True:\n    type Z = str\n",
    "def f[T = int](x: T) -> T:\n    return x\n",
    "class C[K = str, V = dict[str, int]]:\n    pass\n",
    "type R[T, E = Exception] = tuple[T, E]\n",
    "def f[T: int = bool](x: T) -> T:\n    return x\n",
    # Look-alikes that every version takes (or refuses) alike.
    "type = 5\nprint(type)\n",
    "x = type(1)\n",
    "d = {'type': 1}\ntype_ = d['type']\n",
    "s = 'def f[T](x): pass'\n",
    "# class C[T]: pass\n",
    "s = '''\ntype X = int\n'''\n",
    "x = [1, 2]\nx[0] = 3\n",
    "def f(x=[1]):\n    return x[0]\n",
    "def f(:\n    pass\n",
    "class C[]:\n    pass\n",
    "try:\n    pass\nexcept (ValueError, TypeError):\n    pass\n",
    "try:\n    pass\nexcept* (ValueError, TypeError):\n    pass\n",
]

# f-strings: fields built from these pieces, inside each kind of quote.
FIELD_PIECES = [
    "x",
    "x!r",
    "x!r:>{w}",
    "x:>{w}",
    "x=",
    "x:%H",
    "d['k']",
    'd["k"]',
    "d['''k''']",
    'd["""k"""]',
    "'\\n'.join(xs)",
    "a != b",
    "x  # note\n",
    "(x\n+ 1)",
    "x\n",
    "f'{x}'",
    'f"{x}"',
    "f'''{x}'''",
    'f"{f"{x}"}"',
    "{'a': 1}['a']",
    "x if x else 'no'",
    "'#'",
    "(lambda y: y)(x)",
]
LITERAL_PIECES = ["", "a", "{{", "}}", "\\n", "'", '"', "#", "\\N{DASH}"]


def fstring_snippets(count: int, seed: int = 701) -> list[str]:
    rng = random.Random(seed)
    snippets = []
    for _ in range(count):
        quote = rng.choice(['"', "'", '"""', "'''"])
        prefix = rng.choice(["f", "F", "rf", "fR"])
        body = rng.choice(LITERAL_PIECES)
        for _ in range(rng.randint(1, 2)):
            body += "{" + rng.choice(FIELD_PIECES) + "}" + rng.choice(LITERAL_PIECES)
        snippets.append(
            f"x = w = a = b = 1\nd = {{'k': 1}}\nxs = ['s']\nresult = {prefix}{quote}{body}{quote}\n"
        )
    return snippets


def _needs_newer(source: str, running: tuple[int, int]) -> bool:
    return bool(newer_constructs(source, running))


@pytest.mark.parametrize(
    ("sources", "kind"),
    [(STATEMENTS, "statements"), (fstring_snippets(400), "f-strings")],
    ids=["statements", "f-strings"],
)
def test_what_each_python_refuses_is_what_the_detector_names(sources, kind):
    newest = parse_with("3.13", sources)
    verdicts = {version: parse_with(version, sources) for version in ("3.11", "3.12")}
    valid = [i for i, error in enumerate(newest) if error is None]
    assert len(valid) >= len(sources) // 4, kind  # the generator makes mostly real code
    for version, errors in verdicts.items():
        running = tuple(map(int, version.split(".")))
        refused = [i for i in valid if errors[i] is not None]
        named = [i for i in valid if _needs_newer(sources[i], running)]
        assert named == refused, [sources[i] for i in set(named) ^ set(refused)]
        for i in refused:  # ... on the very line that Python complains about
            assert explain_syntax_error(sources[i], errors[i], running), sources[i]
    # Code no Python takes is never blamed on the version.
    for i, error in enumerate(newest):
        if error is not None:
            assert explain_syntax_error(sources[i], error, (3, 13)) is None, sources[i]


# ------------------------------------------------------------------- the detector


@pytest.mark.parametrize(
    ("source", "line", "running", "version", "what"),
    [
        ("def f[T](x: T) -> T:\n    return x\n", 1, (3, 11), (3, 12), "type parameters"),
        ("x = 1\ntype Pair[T] = tuple[T, T]\n", 2, (3, 11), (3, 12), "type statement"),
        ("def f[T = int](x: T) -> T:\n    return x\n", 1, (3, 11), (3, 13), "default"),
        ("def f[T = int](x: T) -> T:\n    return x\n", 1, (3, 12), (3, 13), "default"),
        ("s = f'{d['k']}'\n", 1, (3, 11), (3, 12), "reuses its quotes"),
        ("s = f'{\"\\n\".join(xs)}'\n", 1, (3, 11), (3, 12), "backslash"),
        ("s = f'''{x # why\n}'''\n", 2, (3, 11), (3, 12), "comment"),
        ("s = f'{x\n}'\n", 1, (3, 11), (3, 12), "line break"),
        ("s = t'{x}'\n", 1, (3, 13), (3, 14), "template string"),
        ("s = Tr'{x}'\n", 1, (3, 11), (3, 14), "template string"),
        ("try:\n    f()\nexcept A, B:\n    pass\n", 3, (3, 13), (3, 14), "except without"),
        ("try:\n    f()\nexcept* A, B:\n    pass\n", 3, (3, 13), (3, 14), "except without"),
    ],
)
def test_the_construct_and_the_python_it_needs(source, line, running, version, what):
    found = explain_syntax_error(source, line, running)
    assert found is not None and found.version == version and what in found.what, found
    assert explain_syntax_error(source, line, version) is None  # that Python has it


@pytest.mark.parametrize(
    "source",
    [
        "try:\n    f()\nexcept A, B as e:\n    pass\n",  # an error on every Python
        's = "def f[T](x): pass"\n',
        "# type X = int\n",
        'doc = """\nclass C[T]:\n    pass\n"""\n',
        "s = 'it''s'\n",
        "type = 1\ntype(2)\n",
        "x = f'{a!r:>{w}}' + rf'\\{x}' + f'{a != b}'\n",
        "x = f'{{literal}}' + f'\\N{BULLET} {x}'\n",
    ],
)
def test_look_alikes_and_real_errors_need_no_newer_python(source):
    assert newer_constructs(source, (3, 11)) == []


def test_only_the_construct_on_the_error_line_counts():
    source = "def f[T](x: T) -> T:\n    return x\n\n\ndef g(:\n    pass\n"
    assert explain_syntax_error(source, 1, (3, 11)) is not None
    assert explain_syntax_error(source, 5, (3, 11)) is None  # a real error: Python's message
    assert explain_syntax_error(source, None, (3, 11)) is None


def test_lines_are_python_s_lines():
    # \r and \r\n end a line for ast; the construct's line is ast's.
    source = "a = 1\r\nb = 2\rtype X = int\n"
    [construct] = newer_constructs(source, (3, 11))
    assert construct.line == construct.end_line == 3


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("fFtTrR'\"{}[]()#:!=\\\n\r ,xdefclasstypexcept"))))
def test_any_text_gives_an_answer(text):
    lines = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    for construct in newer_constructs(text, (3, 11)):
        assert 1 <= construct.line <= construct.end_line <= lines


def test_pathological_nesting_is_no_crash():
    deep = "x = " + "f'{" * 2000 + "1" + "}'" * 2000 + "\n"
    assert isinstance(newer_constructs(deep, (3, 11)), list)


# ------------------------------------------------------- extract and the review


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_extract_reviews_or_names_the_python(name):
    needs, offered = NEEDS[name]
    result = extract(name, (FIXTURES / name).read_bytes(), None, RepoConfig())
    if needs <= RUNNING:
        assert result.skips == ()
        assert offered <= {t.qualname for t in result.targets}
    else:
        [skip] = result.skips
        assert skip.reason.startswith(
            f"uses Python {_name(needs)} syntax; this docgen runs on {RUNNING_NAME} ("
        ), skip.reason
        assert "invalid syntax" not in skip.reason and skip.line


def test_the_skip_names_git_s_line_after_a_lone_cr():
    # A lone \r ends a line for ast, not for git; GitHub shows git's number.
    source = b"# old Mac line ending:\r# still line 1 for git\nname = 'x'\ngreeting = t'hi {name}'\n"
    [skip] = extract("m.py", source, None, RepoConfig()).skips
    assert skip.line == 3 and skip.reason.endswith("(a template string, PEP 750, line 3)")
    assert skip.reason.startswith(f"uses Python 3.14 syntax; this docgen runs on {RUNNING_NAME}")


def _repo_with_fixtures(root: Path) -> Path:
    """main: an empty package; feature: adds every fixture (a real ``git diff``)."""
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.invalid")
        cw.set_value("commit", "gpgsign", "false")
    (root / "pkg").mkdir()
    (root / "pkg/__init__.py").write_text("")
    repo.index.add(["pkg/__init__.py"])
    repo.index.commit("package")
    repo.git.checkout("-b", "feature")
    for name in NEEDS:
        shutil.copy(FIXTURES / name, root / "pkg" / name)
    repo.index.add([f"pkg/{name}" for name in NEEDS])
    repo.index.commit("newer syntax")
    return root


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    root = _repo_with_fixtures(tmp_path_factory.mktemp("newer"))
    changes = read_changes(root, "main", "feature").changes
    ctx = Context(
        config=RepoConfig(),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(50_000),
    )
    return changes, asyncio.run(run(changes, ctx))


def _as_github_applies(head: str, start: int, end: int, lines: tuple[str, ...]) -> str:
    """GitHub's commit of a suggestion: git lines ``start..end`` (split at \\n only)
    replaced by ``lines`` (the fixtures end their lines with \\n alone)."""
    old = head.split("\n")
    return "\n".join(old[: start - 1] + list(lines) + old[end:])


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_review_on_this_python(review, name):
    changes, result = review
    needs, offered = NEEDS[name]
    path = f"pkg/{name}"
    head = next(c for c in changes if c.path == path).head.decode()
    outcomes = {o.target.qualname: o for o in result.report.outcomes if o.target.path == path}
    skips = [s for s in result.report.skips if s.path == path]
    if needs > RUNNING:
        assert outcomes == {}
        [skip] = skips
        assert f"uses Python {_name(needs)} syntax; this docgen runs on {RUNNING_NAME}" in (
            skip.reason
        )
        assert skip.reason in checkrun.markdown_report(result.report)
        return
    assert skips == []
    added = {q for q, o in outcomes.items() if o.action == Action.ADDED}
    assert added == offered, {q: (o.action, o.reason) for q, o in outcomes.items()}
    for qualname in added:  # each suggestion alone, committed the way GitHub does
        s = outcomes[qualname].suggestion
        assert s is not None
        new = _as_github_applies(head, s.start, s.end, s.body_lines)
        assert code_dump(new) == code_dump(head), qualname
    # All of them together: the module runs, with its docstrings and its generics.
    new = result.new_texts[path]
    assert code_dump(new) == code_dump(head)
    namespace: dict[str, object] = {"__name__": f"pkg.{name[:-3]}"}
    exec(compile(new, path, "exec"), namespace)
    for qualname in added:
        obj: object = namespace
        for part in qualname.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        assert (getattr(obj, "__doc__", None) or "").strip(), qualname
    if name == "py312_generics.py":
        assert [p.__name__ for p in namespace["first"].__type_params__] == ["T"]
        assert type(namespace["Pair"]).__name__ == "TypeAliasType"
        assert [p.__name__ for p in namespace["Pair"].__type_params__] == ["T"]
