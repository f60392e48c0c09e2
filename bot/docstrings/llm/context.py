"""What the model needs besides a definition: enclosing class headers and used imports."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass

from bot.docstrings.models import Target


@dataclass(frozen=True)
class _ModuleFacts:
    classes: tuple[tuple[str, int, int, tuple[str, ...]], ...]  # qualname, start, end, header
    imports: tuple[tuple[str, str], ...]  # (bound name, import statement)


def _import_lines(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    out = []
    for alias in node.names:
        if isinstance(node, ast.Import):
            bound = alias.asname or alias.name.split(".")[0]
            text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
        else:
            if alias.name == "*":
                continue
            bound = alias.asname or alias.name
            module = "." * node.level + (node.module or "")
            name = alias.name + (f" as {alias.asname}" if alias.asname else "")
            text = f"from {module} import {name}"
        out.append((bound, text))
    return out


@functools.lru_cache(maxsize=16)
def _module_facts(module_text: str) -> _ModuleFacts | None:
    try:
        tree = ast.parse(module_text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines = module_text.splitlines()
    classes: list[tuple[str, int, int, tuple[str, ...]]] = []
    imports: list[tuple[str, str]] = []

    def header(node: ast.ClassDef) -> tuple[str, ...]:
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        last = max(node.lineno, node.body[0].lineno - 1)
        if node.body[0].lineno == node.lineno:  # class A: pass
            last = node.lineno
        text = [ln.rstrip() for ln in lines[start - 1 : last]]
        while text and (not text[-1].strip() or text[-1].lstrip().startswith("#")):
            text.pop()
        return tuple(text)

    def walk(body: list[ast.stmt], prefix: str, top: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                qual = f"{prefix}{node.name}"
                classes.append((qual, node.lineno, node.end_lineno or node.lineno, header(node)))
                walk(node.body, qual + ".", False)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(node.body, f"{prefix}{node.name}.", False)
            elif top and isinstance(node, ast.Import | ast.ImportFrom):
                imports.extend(_import_lines(node))
            elif top and isinstance(node, ast.If | ast.Try):  # if TYPE_CHECKING:, try/except
                for block in (node.body, getattr(node, "orelse", [])):
                    for sub in block:
                        if isinstance(sub, ast.Import | ast.ImportFrom):
                            imports.extend(_import_lines(sub))

    walk(tree.body, "", True)
    return _ModuleFacts(tuple(classes), tuple(imports))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def context_for(target: Target, module_text: str, max_lines: int = 12) -> str:
    """What the model needs besides the definition, trimmed to ``max_lines`` lines.

    For a method, the header of each enclosing class (decorators and ``class`` line);
    then the module's imports whose names the definition uses (a cheap textual
    heuristic), one ``from`` line per module.  A plain ``import os`` is left out: the
    source's ``os.`` says as much.  Empty when the module does not parse.
    """
    facts = _module_facts(module_text)
    if facts is None:
        return ""
    out: list[str] = []
    parts = target.qualname.split(".")
    for depth in range(1, len(parts)):
        qual = ".".join(parts[:depth])
        for name, start, end, header in facts.classes:
            if name == qual and start <= target.def_line <= end:
                out.extend(header)
                break
    used = set(_NAME.findall(target.source))
    froms: dict[str, list[str]] = {}  # "from m import" -> names, one line per module
    for bound, text in facts.imports:
        if bound not in used or text == f"import {bound}":
            continue
        head, _, name = text.partition(" import ")
        if not head.startswith("from "):
            head, name = text, ""  # "import a.b", "import a as b": a line of its own
        names = froms.setdefault(head, [])
        if name and name not in names:
            names.append(name)
    for head, names in froms.items():
        out.append(f"{head} import {', '.join(names)}" if names else head)
    return "\n".join(out[:max_lines])
