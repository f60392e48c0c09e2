"""Real ``git diff`` patches for tests: an oracle that is not ``bot.docstrings.diff``.

:func:`git_patches` commits a base and a head version of some files in a throw-away
repository and returns, per changed file, the patch as GitHub's pull-request files
endpoint sends it: ``git diff -U3`` output from the first ``@@`` on (GitHub leaves out
the ``diff --git`` / ``---`` / ``+++`` header lines).
https://docs.github.com/en/rest/pulls/pulls#list-pull-requests-files
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

# Who commits in a throw-away repository, and no system config: git works the same on
# every machine (tests that run git with their own environment add this to it).
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
_ENV = {
    **GIT_IDENTITY,
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "core.safecrlf=false", *args],
        cwd=repo,
        env=_ENV,
        check=True,
        capture_output=True,
    ).stdout


def _write(repo: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def git_patches(base: dict[str, bytes], head: dict[str, bytes]) -> dict[str, str]:
    """``path → patch`` for every file whose bytes differ between ``base`` and ``head``."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        _git(repo, "init", "-q")
        _write(repo, base)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "base")
        _write(repo, head)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "head")
        out: dict[str, str] = {}
        for path in sorted(set(base) | set(head)):
            if base.get(path) == head.get(path):
                continue
            # --text: a lone \r or \f does not make git call a file binary.
            raw = _git(repo, "diff", "-U3", "--text", "--no-color", "HEAD~1", "HEAD", "--", path)
            text = raw.decode("utf-8")
            at = text.find("\n@@")
            out[path] = text[at + 1 :] if at >= 0 else ""
        return out
