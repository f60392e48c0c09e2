"""What one pipeline run works on: its context, its prepared files, a candidate per definition.

:mod:`bot.docstrings.pipeline` prepares the files and validates the answers;
:mod:`bot.docstrings.model_calls` fills each candidate's parts from the cache or the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot.config import RepoConfig
from bot.docstrings import deadline as deadline_mod
from bot.docstrings import proof, voice
from bot.docstrings import update as update_mod
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import DocstringCache
from bot.docstrings.lines import LineMap
from bot.docstrings.llm.provider import Provider
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import DocParts, ExtractResult, FileChange, FileDiff, Style, Target
from bot.docstrings.progress import Progress
from bot.docstrings.tokens import TokenCounter


@dataclass
class Context:
    """What a run needs besides the changes: config, provider, cache and budget."""

    config: RepoConfig
    provider: Provider
    cache: DocstringCache
    counter: TokenCounter
    budget: TokenBudget
    repo_docstrings: Sequence[str] = ()  # sample of the repository's docstrings, for style
    default_style: Style = Style.GOOGLE
    style_override: Style | None = None
    notes: list[str] = field(default_factory=list)
    # What the model's answers taught about its token counts; run() merges the stored
    # one in and stores the result (issue 9, items 4 and 7).
    profile: ModelProfile = field(default_factory=ModelProfile)
    # GitHub takes a suggestion only on lines inside one hunk of the PR's diff.  The App
    # keeps that rule; the local CLI (`docgen review`, `--apply`) is not bound by it.
    within_hunks: bool = True
    # The job's time limit: the stages that run in threads check it between files, so
    # a run past it stops (DeadlineExceeded) instead of parsing on after the job ended.
    deadline: deadline_mod.Deadline | None = None
    # Told of files parsed, items sent and answers received (a terminal line locally).
    progress: Progress = field(default_factory=Progress)


@dataclass
class PreparedFile:
    change: FileChange
    diff: FileDiff
    text: str
    lines: list[str]
    result: ExtractResult
    style: Style
    types: bool = False  # write annotations into the docstring (x (int): ...)
    line_map: LineMap = field(default_factory=lambda: LineMap(""))  # Python ↔ git lines
    mood: str = voice.IMPERATIVE  # "Return …" or "Returns …", as the repository writes
    width: int = update_mod.DEFAULT_WIDTH  # the column the file wraps its docstrings at


@dataclass
class Candidate:
    file: PreparedFile
    target: Target
    parts: DocParts | None = None
    cached: bool = False
    violations: list[str] = field(default_factory=list)  # in words, fed back to the model
    first_reason: str = ""  # why the first answer failed, when a repair round followed
    truncated: bool = False  # the last answer stopped at max_tokens
    length_retried: bool = False
    room: int = 0  # the max_tokens share of its last call
    accepted: proof.Accepted | None = None
    text: str = ""
    reason: str = ""
    offer: str = ""  # why GitHub cannot take it as a suggestion: offered instead
    # A stale docstring: what its update changed ("updated: added parameter x"), or
    # why it was regenerated instead.
    update_note: str = ""

    def merge_target(self) -> Target:
        """What an update merges against: a class's docstring documents its __init__'s
        parameters (the class's own Target has none), when the PR touched __init__."""
        if self.target.kind != "class":
            return self.target
        init = f"{self.target.qualname}.__init__"
        found = [t for t in self.file.result.targets if t.qualname == init]
        if not found:
            return self.target
        return replace(self.target, params=found[-1].documentable_params)
