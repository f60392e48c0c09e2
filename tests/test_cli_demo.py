"""``docgen demo`` keeps the repository it names, or names none (issue 13)."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

from bot import cli
from bot.cli.demo import demo
from bot.cli.parser import build_parser


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER", "DOCGEN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    # Every temporary directory of this test lands here, where the test can look.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)


def _demo(*argv: str) -> str:
    out = io.StringIO()
    args = build_parser().parse_args(["demo", "--no-diff", "--quiet", *argv])
    assert demo(args, out) == 0
    return out.getvalue()


def test_the_demo_repository_is_kept_and_the_commands_printed_work(tmp_path):
    first = _demo().splitlines()[0]
    root = Path(re.search(r"Sample pull request in (\S+) ", first).group(1))
    assert root.is_dir() and (root / ".git").is_dir()
    suggested = re.search(r"try `([^`]+)`", first).group(1)
    assert suggested.startswith("docgen review ")
    code = cli.main([*shlex.split(suggested)[1:], "--quiet", "--no-diff"])
    assert code == 0
    assert '"""' in (root / "shop" / "inventory.py").read_text()  # --apply wrote into it
    # The clean-up command removes what the demo made, and only that.
    cleanup = shlex.split(re.search(r"remove it with `([^`]+)`", first).group(1))
    assert cleanup[:2] == ["rm", "-rf"] and Path(cleanup[2]) == root.parent
    assert root.parent.parent == tmp_path / "tmp"
    subprocess.run(cleanup, check=True)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_no_keep_removes_the_repository_and_prints_no_path(tmp_path):
    out = _demo("--no-keep")
    assert "removed after the review" in out
    assert str(tmp_path) not in out
    assert list((tmp_path / "tmp").iterdir()) == []
