"""Which encodings docgen edits (issue 13): UTF-8 (and ASCII) only, and it says so.

GitHub serves a file's text, its patch and a suggestion's body as UTF-8, so a
suggestion on a latin-1 file could not be committed as the file's own bytes.  The
choice: such files are skipped with a reason that says UTF-8 only; UTF-8 files with a
coding line are edited and keep it.  The oracle is Python's own codecs and ``git``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.cli.parser import build_parser
from bot.cli.review import review
from tests.realgit import GIT_IDENTITY

BODY = "def price_of(item, rate):\n    return item.cost * rate\n"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER", "DOCGEN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _repo(root: Path, name: str, data: bytes) -> Path:
    def git(*args: str) -> None:
        env = {**os.environ, **GIT_IDENTITY}
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    root.mkdir()
    git("init", "-q", "-b", "main")
    (root / "README").write_text("x\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    (root / name).write_bytes(data)
    return root


def _review(repo: Path, *extra: str) -> tuple[int, dict]:
    out = io.StringIO()
    args = build_parser().parse_args(
        ["review", str(repo), "--base", "main", "--offline", "--quiet", "--format", "json", *extra]
    )
    code = review(repo, "main", None, args, out)
    text = out.getvalue()
    return code, json.loads(text[: text.rindex("}") + 1])


@pytest.mark.parametrize(
    ("codec", "cafe"),
    [("latin-1", "café"), ("cp1252", "café €5")],
    ids=["latin-1", "cp1252"],
)
def test_a_file_in_another_encoding_is_skipped_saying_utf8_only(tmp_path, codec, cafe):
    text = f"# -*- coding: {codec} -*-\n# {cafe}\n\n{BODY}"
    data = text.encode(codec)
    assert data != text.encode("utf-8")  # really not UTF-8 bytes
    repo = _repo(tmp_path / "r", "shop.py", data)
    code, report = _review(repo, "--apply")
    assert code == 0
    [skip] = report["skips"]
    assert skip["path"] == "shop.py"
    assert skip["reason"] == f"encoding {codec} is not supported: docgen edits UTF-8 files only"
    assert (repo / "shop.py").read_bytes() == data  # --apply left it alone


def test_an_undeclared_latin1_file_is_skipped_saying_utf8_only(tmp_path):
    data = f"# café\n\n\n{BODY}".encode("latin-1")
    repo = _repo(tmp_path / "r", "shop.py", data)
    _, report = _review(repo)
    [skip] = report["skips"]
    assert skip["reason"].startswith("not valid UTF-8")
    assert skip["reason"].endswith(": docgen edits UTF-8 files only")


def test_a_utf8_file_with_a_coding_line_is_edited_and_keeps_it(tmp_path):
    text = f"# -*- coding: utf-8 -*-\n# café €5\n\n{BODY}"
    repo = _repo(tmp_path / "r", "shop.py", text.encode("utf-8"))
    code, report = _review(repo, "--apply")
    assert code == 0 and report["skips"] == []
    new = (repo / "shop.py").read_bytes().decode("utf-8")  # still UTF-8
    assert new.startswith("# -*- coding: utf-8 -*-\n# café €5\n")
    assert '"""' in new and new.count("\n") > text.count("\n")
