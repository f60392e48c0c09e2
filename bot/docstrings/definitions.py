"""Every definition of a module, as the collector sees it, and the rules that skip some.

:class:`Collector`, an ``ast.NodeVisitor``, only *collects* :class:`Definition` records
— it walks statement lists, never expressions, which keeps it cheap (a small fraction
of the parse time on the standard library); small named predicates then decide which
are out of scope (:func:`skip_reason`).

Naming choices: a nested definition's qualname joins the enclosing names with dots
(``outer.inner``, ``Outer.method``, ``func.LocalClass.method``) rather than Python's
``outer.<locals>.inner``; names are not unique keys (property getter and setter share
one), ``Target.key`` adds the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from bot.config import RepoConfig
from bot.docstrings.parsing import docstring_of
from bot.docstrings.source import Source

DefNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


_PROPERTY_NAMES = frozenset({"property", "cached_property", "abstractproperty"})
_ACCESSOR_NAMES = frozenset({"setter", "getter", "deleter"})
_ABSTRACT_NAMES = frozenset(
    {"abstractmethod", "abstractclassmethod", "abstractstaticmethod", "abstractproperty"}
)


def _raised_name(exc: ast.expr | None) -> str | None:
    """``ValueError`` for ``raise ValueError(...)``; None for ``raise``/``raise err``.

    A lower-case bare name (``raise exc``) re-raises a caught exception and a name on
    ``self``/``cls`` is a factory; neither names an exception class.
    """
    if isinstance(exc, ast.Call):
        exc = exc.func
    name = _dotted(exc) if exc is not None else None
    if name is None:
        return None
    root, _, _ = name.partition(".")
    last = name.rpartition(".")[2]
    if root in ("self", "cls"):
        return None
    if last[:1].isupper() or ("." in name and last.endswith("error")):
        return name
    return None


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not _is_dunder(name)


def is_test_path(path: str) -> bool:
    """Files pytest would collect or configure: under tests/, test_*.py, *_test.py."""
    parts = path.replace("\\", "/").split("/")
    name = parts[-1]
    return (
        any(part in ("tests", "test") for part in parts[:-1])
        or (name.startswith("test_") and name.endswith(".py"))
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


@dataclass(slots=True, eq=False)
class Definition:
    """One definition as the collector saw it; facts that need no source text."""

    node: DefNode
    qualname: str
    kind: str  # "function" | "method" | "class"
    start: int  # line of the first decorator's ``@``, else of ``def``/``class``
    in_function: bool  # some enclosing definition is a function
    in_private_class: bool  # some enclosing class has a _private name
    is_test: bool
    is_property: bool = False
    is_accessor: bool = False  # @x.setter / @x.deleter (documented on the getter)
    is_overload: bool = False
    is_abstract: bool = False
    children: list[Definition] = field(default_factory=list)  # outermost nested definitions
    returns_value: bool = False
    raises: dict[str, None] = field(default_factory=dict)  # ordered set

    @property
    def end(self) -> int:
        return self.node.end_lineno or self.node.lineno


# Statement lists that may hold definitions; expressions are never walked.
_BLOCK_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {
    ast.Module: ("body",),
    ast.FunctionDef: ("body",),
    ast.AsyncFunctionDef: ("body",),
    ast.ClassDef: ("body",),
    ast.If: ("body", "orelse"),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.With: ("body",),
    ast.AsyncWith: ("body",),
    ast.Try: ("body", "handlers", "orelse", "finalbody"),
    ast.TryStar: ("body", "handlers", "orelse", "finalbody"),
    ast.ExceptHandler: ("body",),
    ast.Match: ("cases",),
    ast.match_case: ("body",),
}


class Collector(ast.NodeVisitor):
    """Collects every function, method and class, nested ones included, in source order.

    Only statement lists are walked (definitions, ``return`` and ``raise`` are
    statements), so ``if TYPE_CHECKING:``/``else:``, ``try`` and ``match`` blocks are
    covered at a fraction of a full ``ast.walk``.  ``return``/``raise`` facts go to the
    innermost enclosing function, never to an outer one.
    """

    def __init__(self, source: Source, test_file: bool) -> None:
        self.defs: list[Definition] = []
        self._source = source
        self._test_file = test_file
        self._stack: list[Definition] = []

    def visit(self, node: ast.AST) -> None:
        # Same contract as NodeVisitor.visit, with the method looked up once per type.
        method = _DISPATCH.get(type(node))
        if method is None:
            self.generic_visit(node)
        else:
            method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        for name in _BLOCK_FIELDS.get(type(node), ()):
            for child in getattr(node, name):
                self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._define(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._define(node)

    def visit_Return(self, node: ast.Return) -> None:
        value = node.value
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            return
        if self._stack and self._stack[-1].kind != "class":
            self._stack[-1].returns_value = True

    def visit_Raise(self, node: ast.Raise) -> None:
        name = _raised_name(node.exc)
        if name and self._stack and self._stack[-1].kind != "class":
            self._stack[-1].raises[name] = None

    def _define(self, node: DefNode) -> None:
        parent = self._stack[-1] if self._stack else None
        is_class = isinstance(node, ast.ClassDef)
        if is_class:
            kind = "class"
        elif parent is not None and parent.kind == "class":
            kind = "method"
        else:
            kind = "function"
        name = node.name
        in_test_class = parent is not None and parent.is_test and parent.kind == "class"
        record = Definition(
            node=node,
            qualname=f"{parent.qualname}.{name}" if parent else name,
            kind=kind,
            start=(
                self._source.decorator_line(node.decorator_list[0])
                if node.decorator_list
                else node.lineno
            ),
            in_function=parent is not None and (parent.in_function or parent.kind != "class"),
            in_private_class=parent is not None
            and (
                parent.in_private_class
                or (parent.kind == "class" and _is_private(parent.node.name))
            ),
            is_test=self._test_file
            and (in_test_class or name.startswith("Test" if is_class else "test")),
        )
        for decorator in node.decorator_list:
            last = last_name(decorator)
            if last is None:
                continue
            if last in _PROPERTY_NAMES:
                record.is_property = True
            elif last in _ACCESSOR_NAMES and isinstance(decorator, ast.Attribute):
                record.is_property = True
                record.is_accessor = last != "getter"
            elif last == "overload":
                record.is_overload = True
            if last in _ABSTRACT_NAMES:
                record.is_abstract = True
        self.defs.append(record)
        if parent is not None:
            parent.children.append(record)
        self._stack.append(record)
        for child in node.body:
            self.visit(child)
        self._stack.pop()


_DISPATCH = {
    ast.FunctionDef: Collector.visit_FunctionDef,
    ast.AsyncFunctionDef: Collector.visit_AsyncFunctionDef,
    ast.ClassDef: Collector.visit_ClassDef,
    ast.Return: Collector.visit_Return,
    ast.Raise: Collector.visit_Raise,
}


# ------------------------------------------------------------------------ predicates


def _is_trivial(node: DefNode) -> bool:
    """A function of at most two lines whose body is ``pass``, ``...`` or ``return x``.

    Lines are counted from ``def`` (decorators do not make a body less trivial), and
    ``x`` is a name, an attribute or a constant.  Classes are never trivial: even
    ``class Error(Exception): pass`` deserves a sentence.
    """
    if isinstance(node, ast.ClassDef) or len(node.body) != 1:
        return False
    if (node.end_lineno or node.lineno) - node.lineno + 1 > 2:
        return False
    stmt = node.body[0]
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis
    if isinstance(stmt, ast.Return):
        return stmt.value is None or isinstance(stmt.value, ast.Name | ast.Attribute | ast.Constant)
    return False


def skip_reason(record: Definition, config: RepoConfig) -> str | None:
    """Why a definition is out of scope, or None.  The first rule that applies wins."""
    name = record.node.name
    if record.is_overload:
        return "overload stub"
    if record.in_function:
        return "nested function"
    if record.is_accessor:
        # property.setter/deleter copy the getter's __doc__; a docstring here is unused.
        return "property setter/deleter (documented on the getter)"
    if config.skip_private and (record.in_private_class or _is_private(name)):
        return "private"
    if config.skip_dunder and _is_dunder(name):
        return "dunder method"
    if config.skip_tests and record.is_test:
        return "test"
    if config.skip_trivial and _is_trivial(record.node):
        return "trivial one-liner"
    return None


def has_docstring(node: DefNode) -> bool:
    return docstring_of(node) is not None
