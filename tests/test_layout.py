"""The layout keeps the two halves apart and every piece small enough to read.

bot/docstrings is the pipeline that ``docgen review`` and the App share; bot/runtime is
the App around it.  The pipeline must not reach into the runtime (or the CLI), or a
local review would start to load webhook, queue and GitHub code.  The limits are the
ones issue 11 set: no module over ~600 lines, no function over 60.  The oracle is the
stdlib's ``ast`` over the source files, not anything in bot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("half", "forbidden"),
    [("docstrings", ("bot.runtime", "bot.cli")), ("runtime", ("bot.cli",))],
)
def test_a_half_does_not_import_what_is_built_on_it(half: str, forbidden: tuple[str, ...]):
    wrong = sorted(
        f"{path.relative_to(BOT)} imports {name}"
        for path in (BOT / half).rglob("*.py")
        for name in _imports(path)
        if name.startswith(forbidden)
    )
    assert not wrong


def test_every_module_lives_in_a_half_or_is_shared():
    top = {p.name for p in BOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top == {"__init__.py", "cli", "config.py", "logs.py", "docstrings", "runtime"}


def test_no_module_is_over_the_limit():
    long = {
        str(p.relative_to(BOT)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long


def test_no_function_is_over_the_limit():
    long = sorted(
        f"{p.relative_to(BOT)}:{node.lineno} {node.name} ({size} lines)"
        for p in _modules()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (size := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES
    )
    assert not long
