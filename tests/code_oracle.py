"""What "only docstrings changed" means, decided by the stdlib alone (never bot.*).

A docstring is the leading string-constant expression of a module, class or function
body; removing it leaves ``pass`` where the body would be empty.  Two sources hold the
same code when their ASTs dump equal with every docstring removed.
"""

from __future__ import annotations

import ast

_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with every docstring removed, in place."""
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def code_dump(source: str | bytes) -> str:
    """The module's AST dump without docstrings: equal dumps, equal code."""
    return ast.dump(without_docstrings(ast.parse(source)))
