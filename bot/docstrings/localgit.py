"""Read a pull request's worth of changes from a local git checkout (for ``docgen review``).

This stands in for ``github.fetch_pr``: it yields the same :class:`FileChange` values,
with each file's patch in GitHub's shape (hunks only, no file headers), so everything
downstream runs exactly as in the App.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from bot.docstrings.extract import collect_docstrings
from bot.docstrings.models import FileChange

try:
    import git
except ImportError:  # GitPython refuses to import when no git executable is on PATH
    git = None  # type: ignore[assignment]

# The App (serve, worker) never needs git; the slim container image has none.
NO_GIT = "the git command is not on PATH: docgen review and docgen demo need it"


# The reason a local review gives for a file git shows no text diff of (no "GitHub" here:
# nothing was asked of it).
BINARY = "binary file (git shows no text diff): not reviewed"


class GitError(Exception):
    """A clear, one-line problem with the repository or the refs given."""


def require_git() -> None:
    """Raises GitError when git is missing (GitPython could not start)."""
    if git is None:
        raise GitError(NO_GIT)


@dataclass(frozen=True)
class LocalChanges:
    root: Path
    base_sha: str
    head_sha: str | None  # None: the working tree
    changes: tuple[FileChange, ...]


def _open(path: Path) -> git.Repo:
    if not path.exists():
        raise GitError(f"{path} does not exist")
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{path} is not inside a git repository") from None


def read_blob(root: Path, sha: str, rel: str) -> bytes | None:
    """The bytes of ``rel`` in commit ``sha`` of the repository at ``root``; None if absent."""
    require_git()
    # The Repo must outlive the read: its cat-file process serves the blob's stream.
    with _open(root) as repo:
        try:
            return (repo.commit(sha).tree / rel).data_stream.read()
        except (KeyError, ValueError, git.BadName):
            return None


def _commit(repo: git.Repo, ref: str) -> git.Commit:
    try:
        return repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        raise GitError(f"unknown git ref {ref!r}") from None


def _status(d: git.Diff) -> str:
    if d.new_file:
        return "added"
    if d.deleted_file:
        return "removed"
    if d.renamed_file:
        return "renamed"
    return "modified"


def _patch(d: git.Diff) -> str | None:
    raw = d.diff if isinstance(d.diff, bytes) else (d.diff or "").encode()
    if raw.startswith(b"Binary files"):
        return None
    return raw.decode("utf-8", errors="replace")


def read_changes(path: Path, base: str, head: str | None = None) -> LocalChanges:
    """The files changed between the merge base of ``base`` and ``head`` and ``head``.

    Like a pull request, the comparison starts at the merge base (three-dot diff), so
    commits on ``base`` since the branch forked are not shown as changes.  ``head``
    None means the working tree, including untracked files that git does not ignore.
    """
    require_git()
    repo = _open(path)
    root = Path(repo.working_tree_dir or path)
    base_commit = _commit(repo, base)
    if head is None:
        try:
            tip = repo.head.commit
        except ValueError:
            raise GitError("the repository has no commits yet") from None
        head_commit = None
    else:
        tip = head_commit = _commit(repo, head)
    bases = repo.merge_base(base_commit, tip)
    if not bases:
        raise GitError(f"{base!r} and {head or 'HEAD'!r} have no common history")
    merge_base = bases[0]
    other = head_commit if head_commit is not None else None
    diffs = merge_base.diff(other, create_patch=True, M=True)
    changes = list(_to_changes(repo, root, diffs, head_commit))
    if head_commit is None:
        seen = {c.path for c in changes}
        for rel in repo.untracked_files:
            if rel not in seen:
                content = _worktree_bytes(root, rel)
                patch = _added_patch(content)
                why = BINARY if patch is None else None
                changes.append(FileChange(rel, "added", patch, content, skip_reason=why))
    changes.sort(key=lambda c: c.path)
    return LocalChanges(
        root=root,
        base_sha=merge_base.hexsha,
        head_sha=head_commit.hexsha if head_commit is not None else None,
        changes=tuple(changes),
    )


def _worktree_bytes(root: Path, rel: str) -> bytes | None:
    p = root / rel
    try:
        return p.read_bytes() if p.is_file() else None
    except OSError:
        return None


def _to_changes(
    repo: git.Repo, root: Path, diffs: git.DiffIndex, head_commit: git.Commit | None
) -> Iterator[FileChange]:
    for d in diffs:
        status = _status(d)
        path = d.b_path if d.b_path is not None else d.a_path
        previous = d.a_path if status == "renamed" else None
        if status == "removed":
            content = None
        elif head_commit is None:
            content = _worktree_bytes(root, path)
        else:
            try:
                content = (head_commit.tree / path).data_stream.read()
            except KeyError:
                content = None
        patch = _patch(d)
        why = BINARY if patch is None and status != "removed" else None
        yield FileChange(path, status, patch, content, previous_path=previous, skip_reason=why)


def _added_patch(content: bytes | None) -> str | None:
    """The patch GitHub would show for a new file: one hunk of added lines."""
    if content is None or b"\0" in content:
        return None
    text = content.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        return ""
    body = "".join(f"+{line}\n" for line in lines)
    return f"@@ -0,0 +1,{len(lines)} @@\n{body}"


MAX_STYLE_SAMPLE_FILES = 150
_NOT_SOURCE = {".git", ".venv", "venv", "node_modules", "build", "dist", "site-packages"}


def repo_docstrings(
    root: Path, changed: Sequence[str], limit: int = MAX_STYLE_SAMPLE_FILES
) -> list[str]:
    """A sample of the repository's docstrings, for detecting its style.

    Files next to the changed ones come first; the rest of the tree fills up to
    ``limit`` files.  Unparseable files are passed over.
    """
    dirs = {str(Path(p).parent) for p in changed}
    files: list[Path] = []
    for d in sorted(dirs):
        files += sorted((root / d).glob("*.py"))
    if len(files) < limit:
        for p in sorted(root.rglob("*.py")):
            if len(files) >= limit * 3:
                break
            if not _NOT_SOURCE.intersection(p.relative_to(root).parts):
                files.append(p)
    out: list[str] = []
    seen: set[Path] = set()
    for p in files:
        if p in seen or len(seen) >= limit:
            continue
        seen.add(p)
        try:
            out += collect_docstrings(p.read_bytes())
        except OSError:
            continue
    return out


class DocstringSample(Sequence[str]):
    """:func:`repo_docstrings`, read only when first looked at.

    Style detection looks at the repository only when the changed files' own
    docstrings do not decide; reading hundreds of files (~0.6 s on a mid-sized
    repository) for a decision already made was most of a one-file review's time.
    """

    def __init__(self, root: Path, changed: Sequence[str]) -> None:
        self._root, self._changed = root, tuple(changed)
        self._docs: list[str] | None = None

    @property
    def scanned(self) -> bool:
        return self._docs is not None

    def _load(self) -> list[str]:
        if self._docs is None:
            self._docs = repo_docstrings(self._root, self._changed)
        return self._docs

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())
