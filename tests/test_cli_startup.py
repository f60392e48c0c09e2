"""Start-up cost of a local ``docgen review`` (issue 13): load what the command needs.

The oracle is the interpreter itself: ``sys.modules`` in a fresh process after the
review, and whether the repository-wide docstring scan read any file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.cli.sample import make_sample_repo
from bot.docstrings import localgit
from bot.docstrings.tokens import TokenCounter, load_encoding
from tests.realgit import GIT_IDENTITY

ROOT = Path(__file__).resolve().parents[1]
_OFFLINE = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OFFLINE}
    env.pop("DOCGEN_DATA_DIR", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_an_offline_review_imports_no_server_or_tokenizer_module(tmp_path):
    repo = make_sample_repo(tmp_path / "repo")
    script = textwrap.dedent(
        f"""
        import io, json, sys
        import bot.cli
        after_import = sorted(m for m in {_HEAVY!r} if m in sys.modules)
        out = io.StringIO()
        code = bot.cli.main(["review", {str(repo)!r}, "--base", "main", "--head", "feature",
                             "--offline", "--no-diff"])
        after_review = sorted(m for m in {_HEAVY!r} if m in sys.modules)
        print(json.dumps([code, after_import, after_review]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    code, after_import, after_review = json.loads(proc.stdout.strip().splitlines()[-1])
    assert code == 0
    assert after_import == []
    # The offline provider counts no tokens: the tokenizer is never loaded either.
    assert after_review == []


_HEAVY = ("redis", "jwt", "cryptography", "githubkit", "tiktoken", "openai", "starlette")


def test_a_lazy_counter_loads_its_encoding_on_first_count():
    lazy = TokenCounter.lazy("o200k_base")
    assert not lazy.loaded and lazy.name == "o200k_base"
    eager = TokenCounter(load_encoding("o200k_base"))
    text = "def cheapest(items, limit=3):\n    return sorted(items)[:limit]\n"
    assert lazy.count(text) == eager.count(text)
    assert lazy.loaded


def test_a_lazy_counter_refuses_an_unknown_encoding_up_front():
    with pytest.raises(ValueError, match="unknown tokenizer encoding 'p50k'"):
        TokenCounter.lazy("p50k")


def _repo(root: Path, files: dict[str, str], changed: dict[str, str]) -> Path:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", *args], cwd=root, env={**os.environ, **GIT_IDENTITY}, check=True, capture_output=True
        )

    root.mkdir()
    git("init", "-q", "-b", "main")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    for path, text in changed.items():
        (root / path).write_text(text)
    return root


NUMPY_LIB = '''\
def scale(x, k):
    """Scale a value.

    Parameters
    ----------
    x : float
        The value.
    k : float
        The factor.
    """
    return x * k
'''

GOOGLE_FILE = '''\
def add(a, b):
    """Add two numbers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


def sub(a, b):
    return a - b
'''

BARE_FILE = """\
def sub(a, b):
    return a - b
"""


def _count_scans(monkeypatch) -> list[bytes]:
    read: list[bytes] = []
    real = localgit.collect_docstrings

    def counting(source: bytes) -> list[str]:
        read.append(source)
        return real(source)

    monkeypatch.setattr(localgit, "collect_docstrings", counting)
    return read


def _review(repo: Path, capsys) -> dict:
    from bot import cli

    code = cli.main(["review", str(repo), "--base", "main", "--offline", "--format", "json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_the_repository_is_not_scanned_when_the_changed_file_decides_the_style(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("DOCGEN_DATA_DIR", raising=False)
    repo = _repo(tmp_path / "r", {"lib.py": NUMPY_LIB, "app.py": "x = 1\n"}, {"app.py": GOOGLE_FILE})
    read = _count_scans(monkeypatch)
    report = _review(repo, capsys)
    assert read == []
    assert report["style"] == "google"


def test_the_repository_is_scanned_when_the_changed_file_says_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("DOCGEN_DATA_DIR", raising=False)
    repo = _repo(tmp_path / "r", {"lib.py": NUMPY_LIB, "app.py": "x = 1\n"}, {"app.py": BARE_FILE})
    read = _count_scans(monkeypatch)
    report = _review(repo, capsys)
    assert read  # the repository's docstrings decided
    assert report["style"] == "numpy"


PLAIN_FILE = '''\
def one():
    """First."""


def two():
    """Second."""


def three():
    """Third."""


def four():
    """Fourth."""


def five():
    """Fifth."""


def six(a):
    return a
'''


def test_a_plain_file_needs_no_repository_scan_for_types(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOCGEN_DATA_DIR", raising=False)
    repo = _repo(tmp_path / "r", {"lib.py": NUMPY_LIB, "app.py": "x = 1\n"}, {"app.py": PLAIN_FILE})
    read = _count_scans(monkeypatch)
    report = _review(repo, capsys)
    assert report["style"] == "plain"
    assert read == []


def test_an_unknown_docgen_encoding_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    from bot import cli

    repo = make_sample_repo(tmp_path / "repo")
    monkeypatch.setenv("DOCGEN_ENCODING", "p50k")
    code = cli.main(["review", str(repo), "--base", "main", "--offline", "--no-diff"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "docgen: DOCGEN_ENCODING: unknown tokenizer encoding 'p50k' "
        "(known: cl100k_base, o200k_base)\n"
    )
