"""Plain data passed between the pipeline stages.

Every stage of the pipeline (diff → extract → plan → generate → validate → render) is a
function over these values.  They are frozen dataclasses so that a stage can never
mutate what an earlier one produced, and so that they compare with ``==`` in tests.

Line numbers are 1-based and inclusive everywhere.  Inside the pipeline they are
``ast``'s (Python's lines); what leaves it — outcomes, suggestions, skips — carries
git's, which GitHub's review API (``line`` / ``start_line``) counts (see
:mod:`bot.docstrings.lines`; the two differ only after a lone ``\r``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Style(enum.StrEnum):
    """A docstring convention."""

    GOOGLE = "google"
    NUMPY = "numpy"
    SPHINX = "sphinx"
    PLAIN = "plain"


class Decision(enum.StrEnum):
    """What the pipeline should do about one definition."""

    MISSING = "missing"  # no docstring: write one
    STALE = "stale"  # docstring disagrees with the signature: rewrite it
    OK = "ok"  # documented and consistent: leave alone
    SKIP = "skip"  # out of scope (private, overload, test, ...): ``Target.reason`` says why


class Action(enum.StrEnum):
    """What happened to one definition, as reported in the summary."""

    ADDED = "added"
    UPDATED = "updated"
    # Written and proven, but GitHub cannot take it as one suggestion (its lines are not
    # all inside one hunk of the diff): offered in the check run as the exact
    # replacement (``Outcome.replacement``) instead of a review comment.
    OFFERED = "offered"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"  # already documented and consistent


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` hunk of a GitHub ``patch``, seen from the RIGHT (head) side.

    ``lines`` are the head-file lines a review comment may target inside this hunk
    (context and added lines); ``added`` is the subset the PR added.  A multi-line
    comment (``start_line``..``line``) must lie inside a single hunk.  ``removed`` holds
    the lines the PR deleted, in order, each as ``(p, text)``: it sat just before head
    line ``p`` (``right_start + right_count`` when it followed the hunk's last line).
    """

    right_start: int
    right_count: int
    lines: frozenset[int]
    added: frozenset[int]
    removed: tuple[tuple[int, str], ...] = ()

    def covers(self, start: int, end: int) -> bool:
        """True when every line from ``start`` to ``end`` is commentable in this hunk."""
        return all(n in self.lines for n in range(start, end + 1))


@dataclass(frozen=True)
class FileDiff:
    """The reviewable shape of one changed file."""

    path: str
    status: str  # GitHub's: added, removed, modified, renamed, copied, changed, unchanged
    previous_path: str | None = None
    hunks: tuple[Hunk, ...] = ()
    has_patch: bool = True  # False for binary files or patches GitHub omitted (too large)

    @property
    def added_lines(self) -> frozenset[int]:
        out: set[int] = set()
        for hunk in self.hunks:
            out |= hunk.added
        return frozenset(out)

    @property
    def removed_lines(self) -> tuple[tuple[int, str], ...]:
        """Every deleted line as ``(head line it sat before, text)``, in file order."""
        return tuple(item for hunk in self.hunks for item in hunk.removed)

    def hunk_covering(self, start: int, end: int) -> Hunk | None:
        """The hunk in which lines ``start``..``end`` may all be commented on, if any."""
        for hunk in self.hunks:
            if hunk.covers(start, end):
                return hunk
        return None


@dataclass(frozen=True)
class FileChange:
    """One changed file of a PR: GitHub's ``pulls/{n}/files`` entry plus head content."""

    path: str
    status: str
    patch: str | None
    head: bytes | None  # None when removed or unreadable
    previous_path: str | None = None
    # Why ``head`` was not read (too large, over the run's byte cap, ...): the summary's
    # line for the file.  None: no reason given ("file content unavailable").
    skip_reason: str | None = None


# ------------------------------------------------------------------------ extract


@dataclass(frozen=True)
class Param:
    """One parameter of a signature."""

    name: str
    kind: str  # "posonly" | "positional" | "vararg" | "kwonly" | "varkw"
    annotation: str | None = None
    default: str | None = None

    @property
    def display_name(self) -> str:
        """The name as docstrings usually write it (``*args``, ``**kwargs``)."""
        if self.kind == "vararg":
            return f"*{self.name}"
        if self.kind == "varkw":
            return f"**{self.name}"
        return self.name


@dataclass(frozen=True)
class Target:
    """A function, method or class found in a changed file, with the facts we need.

    ``docstring_span`` is the line span of the existing docstring expression
    statement, if any.  ``header_end`` is the line holding the ``:`` that ends the
    ``def``/``class`` header, where a new docstring goes after.  ``body_start`` is the
    line of the first statement of the body (which may equal ``header_end`` for
    one-liners such as ``def f(): return 1``).
    """

    path: str
    qualname: str
    kind: str  # "function" | "method" | "class"
    is_async: bool
    start: int  # first line, decorators included
    def_line: int  # line of the ``def``/``class`` keyword
    header_end: int
    body_start: int
    end: int
    indent: str  # indentation of the ``def``/``class`` line
    body_indent: str  # indentation the docstring must use
    params: tuple[Param, ...] = ()
    returns: str | None = None  # return annotation as source text
    returns_value: bool = False  # a ``return <expr>`` (not None) exists in the body
    yields: bool = False
    raises: tuple[str, ...] = ()  # exception names raised explicitly, in order, unique
    decorators: tuple[str, ...] = ()
    is_property: bool = False
    is_overload: bool = False
    is_abstract: bool = False
    is_test: bool = False
    docstring: str | None = None  # cleaned (inspect.cleandoc) text
    docstring_span: tuple[int, int] | None = None
    # Character columns where the docstring statement starts on its first line and ends
    # on its last: the text around it on those lines (a trailing comment) is kept.
    docstring_cols: tuple[int, int] | None = None
    docstring_removed: bool = False  # the PR deleted this definition's docstring
    source: str = ""  # exact source of the definition, decorators included
    decision: Decision = Decision.MISSING
    reason: str = ""  # why SKIP / why STALE

    @property
    def key(self) -> tuple[str, str, int]:
        """Names are not unique (property getter/setter): key by path, name and line."""
        return (self.path, self.qualname, self.def_line)

    @property
    def id(self) -> str:
        """A stable, human-readable id for prompts and markers."""
        return f"{self.path}::{self.qualname}@{self.def_line}"

    @property
    def documentable_params(self) -> tuple[Param, ...]:
        """Parameters a docstring should describe: all but the bound first one.

        A method's first parameter (``self``, a classmethod's ``cls`` whatever it is
        called) is not documented; a staticmethod has none.
        """
        params = self.params
        if self.kind != "method" or not params or params[0].kind not in ("posonly", "positional"):
            return params
        names = {d.rsplit(".", 1)[-1].split("(", 1)[0] for d in self.decorators}
        if "staticmethod" in names:
            return params
        if "classmethod" in names or params[0].name in ("self", "cls", "mcs", "metacls"):
            return params[1:]
        return params


# The reason of a file the repository's config leaves out (render words the summary by it).
EXCLUDED_BY_CONFIG = "excluded by include/exclude in the config"


@dataclass(frozen=True)
class Skip:
    """A file or definition we did not process, with the reason shown to the user."""

    path: str
    reason: str
    qualname: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Coverage:
    """Docstring coverage over the documentable definitions of some files."""

    documented: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.documented / self.total

    def __add__(self, other: Coverage) -> Coverage:
        return Coverage(self.documented + other.documented, self.total + other.total)


@dataclass(frozen=True)
class ExtractResult:
    """What ``extract`` found in one file."""

    path: str
    targets: tuple[Target, ...] = ()
    skips: tuple[Skip, ...] = ()
    coverage: Coverage = Coverage(0, 0)
    docstrings: tuple[str, ...] = ()  # raw docstrings found in the file, for style detection


# ------------------------------------------------------------------- generate


@dataclass(frozen=True)
class DocParts:
    """A docstring as structured content, before it is written in a style.

    Models answer with these parts (JSON); ``style.compose`` writes them in the
    repository's convention, so the model never controls quoting or layout.
    """

    summary: str
    description: str = ""
    params: tuple[tuple[str, str], ...] = ()  # (name as in the signature, description)
    returns: str = ""
    yields: str = ""
    raises: tuple[tuple[str, str], ...] = ()  # (exception name, when it is raised)


@dataclass(frozen=True)
class Usage:
    """Tokens one provider call used (as the provider reported them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Edit:
    """Replace head-file lines ``start``..``end`` with ``lines`` (no line endings)."""

    start: int
    end: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Suggestion:
    """One ```suggestion review comment: replace ``start``..``end`` of ``path``."""

    path: str
    start: int
    end: int
    body_lines: tuple[str, ...]
    target_id: str
    docstring_hash: str


@dataclass(frozen=True)
class Outcome:
    """The final word on one definition."""

    target: Target
    action: Action
    reason: str = ""
    docstring: str | None = None
    suggestion: Suggestion | None = None
    offline: bool = False  # written by the offline skeleton provider, not a model
    # For OFFERED: the lines to replace and their replacement, never posted as a comment.
    replacement: Suggestion | None = None


@dataclass
class Report:
    """Everything the check run and the reports need (:mod:`bot.docstrings.render.checkrun`, :mod:`bot.docstrings.render.reports`)."""

    outcomes: list[Outcome] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    coverage_before: Coverage = Coverage(0, 0)
    coverage_after: Coverage = Coverage(0, 0)
    usage: Usage = Usage()
    cost_usd: float = 0.0
    budget: int = 0
    model: str = ""
    provider: str = ""
    response_mode: str = ""  # how the answer's shape was asked for (json_schema, ...)
    style: Style = Style.GOOGLE
    cache_hits: int = 0
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
