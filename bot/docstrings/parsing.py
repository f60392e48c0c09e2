"""``ast.parse`` for code under review, without its warnings, from any thread; its docstrings.

Code in a pull request may hold invalid escape sequences and the like: parsing it
raises ``SyntaxWarning``/``DeprecationWarning`` that are not ours (and under
``-W error`` they turn into SyntaxErrors).  ``warnings.catch_warnings`` silences them
by swapping the *process-wide* filter list, which is not thread-safe: two threads
inside it at once can restore each other's list and leave "ignore" installed for
good.  The pipeline parses in worker threads (``asyncio.to_thread``), so every quiet
parse goes through one lock.  ``ast.parse`` holds the GIL anyway: the lock costs no
parallelism.  (Python 3.14's context-aware warnings would make the lock unnecessary.)
"""

from __future__ import annotations

import ast
import threading
import warnings
from collections.abc import Iterator

_LOCK = threading.Lock()


def parse_quietly(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)`` with the code's own warnings ignored.

    Raises:
        SyntaxError: the source does not parse (also ValueError for NUL bytes,
            RecursionError / MemoryError for pathological nesting, as ``ast.parse``).
    """
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename=filename)


_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def docstring_of(scope: Scope) -> ast.Expr | None:
    """The docstring statement of a module, class or function: the leading expression
    statement of its body when that is a string constant (None without one)."""
    first = scope.body[0] if scope.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def documented(tree: ast.AST) -> Iterator[tuple[Scope, ast.Expr]]:
    """``(scope, docstring statement)`` for every module, class and function with one.

    ``ast.walk`` queues a scope's children before it yields the scope, so a caller may
    drop the docstring from ``scope.body`` as it goes.
    """
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES):
            doc = docstring_of(node)
            if doc is not None:
                yield node, doc
