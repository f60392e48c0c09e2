"""Issue 13: ``docgen review`` in CI and pre-commit, on part of a repository, with
reports that agree with themselves.

Oracles: git itself (commits, the working tree), markdown-it-py for what a fence holds,
pre-commit for the hook, the operating system for a closed pipe.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml
from markdown_it import MarkdownIt

from bot.cli.sample import HEAD, make_sample_repo
from tests.factories import call_cli as call

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "AZURE_OPENAI_", "DOCGEN_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sample(tmp_path):
    return make_sample_repo(tmp_path / "repo")


def write_config(repo: Path, text: str) -> None:
    (repo / ".github").mkdir(exist_ok=True)
    (repo / ".github" / "docgen.yml").write_text(text)


def outcome_paths(out: str) -> set[str]:
    return {o["path"] for o in json.loads(out)["outcomes"]}


def add_other_file(repo: Path) -> None:
    """A second changed file (untracked, so part of a working-tree review)."""
    (repo / "other").mkdir()
    (repo / "other" / "extra.py").write_text("def extra(a, b):\n    return a + b\n")


# ------------------------------------------------------------------ exit codes


def test_help_documents_the_exit_codes():
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "review", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "exit codes:" in text
    for code in ("0 done", "1 a check failed", "2 usage or configuration error"):
        assert code in text, text


def test_partial_apply_exits_1_and_says_what_was_not_applied(sample):
    target = sample / "shop" / "inventory.py"
    target.write_text(HEAD + "\n# local edit\n")
    code, out, err = call("review", str(sample), "--base", "main", "--head", "feature", "--apply")
    assert code == 1
    assert "not applied to shop/inventory.py: the file differs from" in out
    assert "--apply: 1 file(s) not applied" in err
    assert target.read_text() == HEAD + "\n# local edit\n"


def test_apply_with_json_output_keeps_stdout_one_json_document(sample):
    code, out, err = call("review", str(sample), "--base", "main", "--apply", "--format", "json")
    assert code == 0
    assert json.loads(out)["counts"]["added"] > 0
    assert "applied to shop/inventory.py" in err


def test_apply_into_a_closed_pipe_still_writes_the_files_and_exits_quietly(sample):
    """`docgen review --apply | head`: the reader is gone before anything is printed."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to write_end now fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "review", "--base", "main", "--apply"],
            cwd=sample,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    new = (sample / "shop" / "inventory.py").read_text()
    assert new != HEAD and '"""' in new.split("def cheapest", 1)[1].split("\n", 2)[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_no_model_answering_is_said_once_and_fails_strict(sample, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    monkeypatch.setenv("DOCGEN_MAX_RETRIES", "0")
    code, out, err = call("review", str(sample), "--base", "main", "--head", "feature", "--no-diff")
    assert code == 0, err  # without --strict the report is the answer
    assert out.count("no model answered") == 1
    last = out.rstrip("\n").splitlines()[-1]
    assert "no model answered" in last and "--offline" in last
    code, out, err = call(
        "review", str(sample), "--base", "main", "--head", "feature", "--no-diff", "--strict"
    )
    assert code == 1
    assert "--strict: no model answered" in err
    # Offline, the same change passes --strict.
    code, out, err = call(
        "review", str(sample), "--base", "main", "--head", "feature", "--offline", "--strict"
    )
    assert code == 0 and "no model answered" not in out, err


# --------------------------------------------------------------- coverage gate


def coverage_after(sample: Path, *extra: str) -> float:
    _, out, _ = call("review", str(sample), "--base", "main", "--format", "json", *extra)
    return json.loads(out)["coverage"]["after"]["percent"]


def test_fail_under_and_coverage_threshold_gate_the_exit_code(sample):
    # A function whose header line holds a lone \r cannot be documented (Python and git
    # count its lines differently): coverage after the suggestions stays below 100 %.
    (sample / "shop" / "cr.py").write_bytes(b"def lone(a):\r    b = a + 1\n    return b * 2\n")
    after = coverage_after(sample)
    assert 0 < after < 100
    code, _, err = call("review", str(sample), "--base", "main", "--fail-under", str(after))
    assert code == 0, err
    code, _, err = call("review", str(sample), "--base", "main", "--fail-under", "100")
    assert code == 1
    assert f"--fail-under: docstring coverage of the changed files after the suggestions is {after:.1f}%" in err
    assert "below 100%" in err
    # The config's coverage_threshold is the default gate; --fail-under overrides it.
    write_config(sample, "coverage_threshold: 100\n")
    code, _, err = call("review", str(sample), "--base", "main")
    assert code == 1 and "coverage_threshold:" in err and "below 100%" in err
    code, _, err = call("review", str(sample), "--base", "main", "--fail-under", "0")
    assert code == 0, err
    for bad in ("-1", "100.5"):
        code, out, err = call("review", str(sample), "--base", "main", "--fail-under", bad)
        assert (code, out) == (2, "")
        assert err == "docgen: --fail-under must be a percentage between 0 and 100\n"


# ------------------------------------------------------------------ paths, refs


def test_paths_limit_the_review(sample, monkeypatch):
    add_other_file(sample)
    monkeypatch.chdir(sample)
    both = {"shop/inventory.py", "other/extra.py"}
    for argv, expected in [
        ((), both),
        ((".",), both),
        (("shop/inventory.py",), {"shop/inventory.py"}),
        (("other",), {"other/extra.py"}),
        (("other/",), {"other/extra.py"}),
        (("*/extra.py",), {"other/extra.py"}),
        (("shop/inventory.py", "other/extra.py"), both),
    ]:
        code, out, err = call("review", *argv, "--base", "main", "--format", "json")
        assert code == 0, err
        assert outcome_paths(out) == expected, argv
    # From a subdirectory, PATHs are relative to it, as a shell user means them.
    monkeypatch.chdir(sample / "shop")
    code, out, _ = call("review", "inventory.py", "--base", "main", "--format", "json")
    assert code == 0 and outcome_paths(out) == {"shop/inventory.py"}


@pytest.mark.parametrize(
    ("path", "message"),
    [("nope.py", "nope.py does not exist"), ("/nope", "/nope does not exist")],
)
def test_a_path_that_does_not_exist_is_named(sample, monkeypatch, path, message):
    monkeypatch.chdir(sample)
    code, out, err = call("review", path, "--base", "main")
    assert code == 2 and out == ""
    assert err == f"docgen: {message}\n"


def test_a_path_outside_the_repository_is_refused(sample, monkeypatch, tmp_path):
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n")
    monkeypatch.chdir(sample)
    code, _, err = call("review", "shop/inventory.py", str(outside), "--base", "main")
    assert code == 2 and "is outside the repository" in err


def test_config_comes_from_head_with_head_and_from_the_working_tree_without(sample):
    repo = git.Repo(sample)
    write_config(sample, "exclude: ['shop/*']\n")
    repo.index.add([".github/docgen.yml"])
    repo.index.commit("exclude shop")
    write_config(sample, "exclude: []\n")  # uncommitted: only the working tree has it
    code, out, _ = call("review", str(sample), "--base", "main", "--head", "HEAD", "--no-diff")
    assert code == 0
    assert "excluded by include/exclude in the config" in out
    # Everything was excluded: the report says so and names no style.
    assert "the config's include/exclude excluded every changed file" in out
    assert "no documentable definitions" not in out and "style" not in out
    code, out, _ = call("review", str(sample), "--base", "main", "--no-diff")
    assert code == 0 and "excluded" not in out and "cheapest" in out


def test_style_auto_is_accepted_and_overrides_a_forced_style(sample):
    write_config(sample, "style: numpy\n")
    code, out, _ = call("review", str(sample), "--base", "main", "--format", "json")
    assert json.loads(out)["style"] == "numpy"
    code, out, err = call(
        "review", str(sample), "--base", "main", "--format", "json", "--style", "auto"
    )
    assert code == 0, err
    assert json.loads(out)["style"] == "google"  # what the sample's own docstrings use


# --------------------------------------------------------------------- reports


def test_markdown_report_fences_the_diff(sample):
    _, text, _ = call("review", str(sample), "--base", "main")
    diff = text[text.index("--- a/shop/inventory.py") :]
    code, md, _ = call("review", str(sample), "--base", "main", "--format", "markdown")
    assert code == 0
    fences = [t for t in MarkdownIt("commonmark").parse(md) if t.type == "fence"]
    assert [(t.info, t.content) for t in fences] == [("diff", diff)]


def test_json_lists_every_skipped_item_with_its_reason(sample):
    (sample / "shop" / "broken.py").write_text("def broken(:\n")
    _, out, _ = call("review", str(sample), "--base", "main", "--format", "json")
    data = json.loads(out)
    skipped = [o for o in data["outcomes"] if o["action"] == "skipped"]
    assert skipped and data["counts"]["skipped"] == len(data["skips"]) == len(skipped) + 1
    listed = {(s["path"], s["qualname"]) for s in data["skips"]}
    assert {(o["path"], o["qualname"]) for o in skipped} <= listed
    assert ("shop/broken.py", None) in listed
    assert all(s["reason"] for s in data["skips"])


def test_local_review_of_a_binary_py_never_mentions_github(sample):
    repo = git.Repo(sample)
    (sample / "shop" / "blob.py").write_bytes(b"\x00\x01binary\x00")
    repo.index.add(["shop/blob.py"])
    repo.index.commit("a binary .py")
    (sample / "shop" / "blob2.py").write_bytes(b"\x00\x02untracked\x00")
    (sample / "shop" / "blob.py").write_bytes(b"\x00\x03changed\x00")
    for fmt in ("text", "markdown", "json"):
        code, out, _ = call("review", str(sample), "--base", "main", "--format", fmt)
        assert code == 0
        assert "GitHub" not in out, fmt
    _, out, _ = call("review", str(sample), "--base", "main", "--format", "json")
    reasons = {s["path"]: s["reason"] for s in json.loads(out)["skips"]}
    assert "binary file" in reasons["shop/blob.py"] and "binary file" in reasons["shop/blob2.py"]


# ------------------------------------------------------------------ pre-commit

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_the_shipped_hook_runs_docgen_review_strict():
    (hook,) = HOOKS
    assert hook["id"] == "docgen" and hook["types"] == ["python"]
    assert hook["entry"].split()[:2] == ["docgen", "review"] and "--strict" in hook["entry"]
    # pre-commit's own schema accepts the file.
    from pre_commit.clientlib import load_manifest

    assert load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))[0]["id"] == "docgen"


def pre_commit_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a `docgen` that runs this checkout's code, offline, in a private home."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "docgen"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    env.update(
        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(ROOT),
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        HOME=str(tmp_path),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return env


def test_pre_commit_hook_on_staged_changes(tmp_path):
    """The shipped hook, run by pre-commit on a temporary repository.

    ``language: python`` makes pre-commit pip-install docgen into its own environment,
    which needs the package index (``pre-commit try-repo`` of this checkout took 30 s
    here, most of it pip); tests must not depend on the network, so the hook runs here
    as a local ``language: system`` hook with the shipped entry and options (the README
    documents both ways).
    """
    (hook,) = HOOKS
    env = pre_commit_env(tmp_path)
    repo = tmp_path / "project"
    repo.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    local = {k: v for k, v in hook.items() if k not in ("minimum_pre_commit_version",)}
    local["language"] = "system"
    config = {"repos": [{"repo": "local", "hooks": [local]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (repo / "lib.py").write_text('"""A module."""\n\n\ndef old(a):\n    """Old."""\n    return a\n')
    assert run("git", "init", "-q", "-b", "main").returncode == 0
    assert run("git", "add", ".").returncode == 0
    assert run("git", "commit", "-qm", "base").returncode == 0

    # A staged undocumented function, and an unstaged one pre-commit must leave alone.
    (repo / "lib.py").write_text(
        (repo / "lib.py").read_text() + "\n\ndef added(x, y):\n    return x * y\n"
    )
    run("git", "add", "lib.py")
    (repo / "notes.py").write_text("def unstaged(a):\n    return a\n")

    first = run(sys.executable, "-m", "pre_commit", "run")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "files were modified by this hook" in first.stdout.lower(), first.stdout
    lib = (repo / "lib.py").read_text()
    assert '    """' in lib.split("def added", 1)[1]  # the docstring is written in
    assert "def old(a):\n    \"\"\"Old.\"\"\"" in lib
    assert (repo / "notes.py").read_text() == "def unstaged(a):\n    return a\n"

    run("git", "add", "lib.py")
    second = run(sys.executable, "-m", "pre_commit", "run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout
