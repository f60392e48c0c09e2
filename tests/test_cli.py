"""``docgen review`` / ``docgen demo``: output formats, --apply, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import git
import pytest

from bot.cli.sample import HEAD, make_sample_repo
from bot.docstrings import quota
from bot.docstrings.proof import same_code
from tests import redis_helpers
from tests.factories import GREET_BASE, GREET_HEAD, record_spend
from tests.factories import call_cli as call

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_DEPLOYMENT",
        "DOCGEN_PROVIDER",
        "DOCGEN_TOKEN_BUDGET",
        "DOCGEN_DATA_DIR",
        "DOCGEN_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sample(tmp_path):
    return make_sample_repo(tmp_path / "repo")


def test_text_report_and_diff(sample):
    code, out, err = call("review", str(sample), "--base", "main", "--head", "feature")
    assert code == 0, err
    assert "cheapest" in out and "added" in out
    assert "Docstring coverage" in out
    assert "--- a/shop/inventory.py" in out and '+    """' in out
    assert "offline" in out


def test_json_report(sample):
    code, out, _ = call(
        "review", str(sample), "--base", "main", "--head", "feature", "--format", "json"
    )
    assert code == 0
    data = json.loads(out)
    names = {o["qualname"]: o["action"] for o in data["outcomes"]}
    assert names["cheapest"] == "added" and names["_cents"] == "skipped"
    assert data["suggestions"] and all("body_lines" in s for s in data["suggestions"])


def test_markdown_report(sample):
    code, out, _ = call(
        "review",
        str(sample),
        "--base",
        "main",
        "--head",
        "feature",
        "--format",
        "markdown",
        "--no-diff",
    )
    assert code == 0
    assert "| function |" in out or "|" in out.splitlines()[3]
    assert "--- a/" not in out


def test_apply_writes_only_proven_docstrings(sample):
    repo = git.Repo(sample)
    assert repo.active_branch.name == "feature"
    code, out, _ = call("review", str(sample), "--base", "main", "--apply", "--no-diff")
    assert code == 0
    assert "applied to shop/inventory.py" in out
    new = (sample / "shop" / "inventory.py").read_text()
    assert new != HEAD and same_code(HEAD, new)
    # Idempotent: a second run finds nothing left to add.
    code, out, _ = call("review", str(sample), "--base", "main", "--apply", "--format", "json")
    data = json.loads(out)
    assert not [o for o in data["outcomes"] if o["action"] in ("added", "updated")]


def test_apply_refuses_a_file_that_changed_since(sample):
    code, out, _ = call("review", str(sample), "--base", "main", "--head", "main~0", "--apply")
    assert code == 0  # main vs main: nothing to do, nothing written
    target = sample / "shop" / "inventory.py"
    target.write_text(HEAD + "\n# local edit\n")
    code, out, _ = call("review", str(sample), "--base", "main", "--head", "feature", "--apply")
    assert "not applied to shop/inventory.py" in out
    assert target.read_text() == HEAD + "\n# local edit\n"


def test_strict_exit_code(sample):
    code, _, _ = call("review", str(sample), "--base", "main", "--head", "feature", "--strict")
    assert code == 0  # everything that needed a docstring got one
    code, _, _ = call(
        "review", str(sample), "--base", "main", "--head", "feature", "--strict", "--budget", "1"
    )
    assert code == 0  # offline spends no tokens: the budget does not bite
    # A stale docstring left as it is (update_stale off) is undocumented: --strict says so,
    # on stderr, naming each definition (path:line name) and the rule that failed.
    # (The working tree is 'feature' checked out; its config is read from disk.)
    (sample / ".github").mkdir(exist_ok=True)
    (sample / ".github" / "docgen.yml").write_text("update_stale: false\n")
    code, out, err = call("review", str(sample), "--base", "main", "--strict")
    assert code == 1, out
    assert "update_stale is off" in out
    assert "--strict: 1 changed definition(s) left without a docstring" in err
    line = HEAD.splitlines().index("def restock(stock: dict[str, int], sku: str, count: int) -> None:")
    assert f"shop/inventory.py:{line + 1} restock (stale docstring" in err, err
    (sample / ".github" / "docgen.yml").unlink()


def test_local_review_is_not_bound_by_githubs_hunks(sample):
    """Issue 14.6: a definition whose docstring lies outside the diff is documented locally.

    GitHub takes a suggestion only inside one hunk; `docgen review` posts nothing to
    GitHub, so it documents the changed function wherever its header is.
    """
    repo = git.Repo(sample)
    long_fn = (
        "def long_one(a):\n" + "".join(f"    a += {i}\n" for i in range(12)) + "    return a\n"
    )
    (sample / "shop" / "long.py").write_text(long_fn)
    repo.index.add(["shop/long.py"])
    repo.index.commit("long function")
    base = repo.head.commit.hexsha
    (sample / "shop" / "long.py").write_text(long_fn.replace("a += 11", "a += 12"))
    repo.index.add(["shop/long.py"])
    repo.index.commit("tweak")
    code, out, _ = call("review", str(sample), "--base", base, "--head", "HEAD", "--strict")
    assert code == 0, out
    assert "outside the diff" not in out
    assert re.search(r"shop/long\.py:1\s+long_one\s+added", out), out
    assert '+    """' in out  # the diff shows the new docstring after line 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("review", "--base", "nope"), "unknown git ref 'nope'"),
        (("review", "/definitely/not/here", "--base", "main"), "/definitely/not/here does not exist"),
        (("review", "/", "--base", "main"), "/ is not inside a git repository"),
        (("review", "--base", "main", "--budget", "0"), "--budget must be a positive"),
    ],
    ids=["bad-ref", "no-such-path", "not-a-repo", "bad-budget"],
)
def test_usage_errors_exit_2_with_one_line(sample, monkeypatch, argv, message):
    monkeypatch.chdir(sample)
    code, out, err = call(*argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""


def test_bad_environment_names_the_variable_not_the_value(sample, monkeypatch):
    monkeypatch.chdir(sample)
    monkeypatch.setenv("DOCGEN_TOKEN_BUDGET", "lots")
    code, _, err = call("review", "--base", "main")
    assert code == 2 and "DOCGEN_TOKEN_BUDGET" in err


def test_partial_azure_config_is_a_usage_error(sample, monkeypatch):
    monkeypatch.chdir(sample)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    code, _, err = call("review", "--base", "main")
    assert code == 2 and "AZURE_OPENAI_API_KEY" in err


def test_bad_repo_config_is_reported_not_fatal(sample):
    (sample / ".github").mkdir()
    (sample / ".github" / "docgen.yml").write_text("style: fancy\n")
    code, out, _ = call("review", str(sample), "--base", "main")
    assert code == 0
    assert "style" in out and "using default" in out


def test_demo_and_console_script():
    code, out, _ = call("demo", "--no-diff", "--no-keep")
    assert code == 0 and "Sample pull request" in out and "cheapest" in out
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("docgen ")


def test_without_git_the_app_starts_and_review_says_why(tmp_path):
    """The container image has no git: every command but review/demo must still work,
    and those two exit 2 with one line instead of GitPython's import-time traceback."""
    import os
    import shutil

    bindir = tmp_path / "bin"  # a PATH with python but no git
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    assert shutil.which("git", path=str(bindir)) is None
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OPENAI_", "AZURE_"))
    }
    env["PATH"] = str(bindir)

    def docgen(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    version = docgen("--version")
    assert version.returncode == 0, version.stderr
    assert docgen("worker", "--help").returncode == 0
    for args in (["review", "--base", "main"], ["demo"]):
        done = docgen(*args)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "git command is not on PATH" in lines[0], done.stderr


def test_local_review_updates_a_stale_docstring_across_hunks(tmp_path):
    """Issue 14.6: what the App can only offer, `docgen review --apply` applies."""
    root = tmp_path / "greet"
    repo = git.Repo.init(root, initial_branch="main")
    (root / "greet.py").write_text(GREET_BASE)
    repo.index.add(["greet.py"])
    repo.index.commit("base")
    repo.git.checkout("-b", "feature")
    (root / "greet.py").write_text(GREET_HEAD)
    repo.index.add(["greet.py"])
    repo.index.commit("rename greeting to salutation")
    assert repo.git.diff("main", "feature").count("\n@@ -") == 2  # two hunks, says git

    code, out, _ = call("review", str(root), "--base", "main", "--apply", "--no-diff")
    assert code == 0, out
    assert re.search(r"greet\.py:1\s+greet\s+updated\s+stale docstring: documents", out), out
    assert "applied to greet.py" in out
    new = (root / "greet.py").read_text()
    assert "salutation: " in new and "greeting: How" not in new
    assert same_code(GREET_HEAD, new)


# ------------------------------------------------------------------ docgen usage

# Last month and this one (UTC): Redis keeps a month's totals for 400 days only.
_THIS_MONTH = quota.month_bounds(time.strftime("%Y-%m", time.gmtime()))[0]
JUNE, JULY = _THIS_MONTH - 20 * 86400, _THIS_MONTH + 3600  # "June" is last month
M6, M7 = (time.strftime("%Y-%m", time.gmtime(t)) for t in (JUNE, JULY))



def _ledger(store_of):
    clock = {"now": JUNE}
    store = store_of(lambda: clock["now"])
    record_spend(store, "octo/a#1", 11, 1000, 200, 0.5)
    record_spend(store, "octo/a#2", 11, 500, 100, 0.25)
    record_spend(store, "octo/b#1", 11, 10, 5, 0.01)
    record_spend(store, "acme/x#4", 22, 70, 30, 1.0)
    clock["now"] = JULY
    record_spend(store, "octo/a#1", 11, 1, 1, 0.0)
    store.close()


def test_usage_prints_tokens_and_cost_per_installation_repository_and_month(tmp_path, monkeypatch):
    from bot.runtime.queue.sqlite_store import SqliteStore

    monkeypatch.setenv("DOCGEN_DATA_DIR", str(tmp_path / "data"))
    _ledger(lambda clock: SqliteStore.in_dir(tmp_path / "data", clock=clock))

    code, out, err = call("usage")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "month",
        "installation",
        "repository",
        "runs",
        "prompt",
        "completion",
        "tokens",
        "cost",
    ]
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        [M7, "11", "octo/a", "1", "1", "1", "2", "$0.0000"],
        [M6, "11", "octo/a", "2", "1,500", "300", "1,800", "$0.7500"],
        [M6, "11", "octo/b", "1", "10", "5", "15", "$0.0100"],
        [M6, "11", "(all)", "3", "1,510", "305", "1,815", "$0.7600"],
        [M6, "22", "acme/x", "1", "70", "30", "100", "$1.0000"],
    ]

    code, out, err = call("usage", "--format", "json", "--month", M6, "--installation", "22")
    assert code == 0, err
    assert json.loads(out) == [
        {
            "installation_id": 22,
            "repo": "acme/x",
            "month": M6,
            "prompt_tokens": 70,
            "completion_tokens": 30,
            "cost_usd": 1.0,
            "runs": 1,
            "tokens": 100,
        }
    ]


def test_usage_reads_redis_when_redis_url_is_set(redis_url, ns, tmp_path, monkeypatch):
    from bot.runtime.queue.redis_store import RedisStore

    _ledger(lambda clock: RedisStore.from_url(redis_url, prefix=ns, clock=clock))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCGEN_", "REDIS"))}
    env.update(REDIS_URL=redis_url, DOCGEN_REDIS_PREFIX=ns)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "usage", "--format", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["month"], r["installation_id"], r["repo"], r["tokens"]) for r in rows] == [
        (M7, 11, "octo/a", 2),
        (M6, 11, "octo/a", 1800),
        (M6, 11, "octo/b", 15),
        (M6, 22, "acme/x", 100),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("usage", "--month", "June"), "--month must look like 2025-06"),
        (("usage",), "no journal at"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("DOCGEN_DATA_DIR", str(tmp_path / "nowhere"))
    code, out, err = call(*argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
