"""The App end to end: signed webhook → journal → worker → fake GitHub.

The web app, the in-process workers and the SQLite journal run as ``docgen serve``
builds them (:func:`bot.server.build`); GitHub is the in-process fake (its checks
included: App JWT, installation tokens, review lines inside the diff); the model is
the offline provider.
"""

from __future__ import annotations

import ast
import io
import time
import tokenize
from collections import Counter

import httpx
import pytest
from starlette.testclient import TestClient

from bot import render, server
from bot.config import Settings
from bot.generate import OfflineProvider
from bot.sample import BASE, HEAD
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID, signed_delivery

SECRET = "e2e-webhook-secret"
PATH = "shop/inventory.py"


@pytest.fixture
def app_env(fake_github, private_key_pem, tmp_path, fake_clock):
    # The journal runs on real time and takes a RetryLater's retry_at (computed on the
    # GitHub clock) as a moment of its own: both clocks must share an epoch.  The fake
    # GitHub clock starts at real now and only runs ahead (its waits pass instantly).
    fake_clock.now = time.time()
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_webhook_secret=SECRET,
        github_api_url="https://api.github.com",
        docgen_data_dir=tmp_path / "data",
        docgen_workers=2,
    )
    runtime = server.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake_github.app),
        provider=OfflineProvider(),
        poll_interval=0.01,
        write_interval=0.0,
        github_clock=fake_clock,  # GitHub back-off waits pass instantly
    )
    with TestClient(runtime.app) as client:
        yield client, runtime, fake_github
    runtime.journal.close()


def payload_for(pull, action="opened"):
    return pull.webhook_payload(action)


def deliver(client, event, payload, delivery=None):
    body, headers = signed_delivery(SECRET, event, payload, delivery)
    return client.post("/webhook", content=body, headers=headers)


def settle(runtime, timeout=30.0):
    """Wait until the journal has no queued or running job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = runtime.journal.counts()
        if not counts.get("queued") and not counts.get("running"):
            return counts
        time.sleep(0.02)
    raise AssertionError(f"jobs did not finish: {runtime.journal.counts()}")


def review_comments(pull):
    return [c for r in pull.reviews for c in r.get("comments", [])] or pull.comments


def test_pull_request_gets_one_review_and_a_check_run(app_env, make_pr):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    r = deliver(client, "pull_request", payload_for(pull))
    assert r.status_code == 202
    counts = settle(runtime)
    assert counts.get("done") == 1 and not counts.get("failed"), runtime.journal.history(
        f"{OWNER}/{REPO}#1"
    )
    repo = fake.repo(f"{OWNER}/{REPO}")
    [run] = repo.check_runs.values()
    assert run.status == "completed" and run.head_sha == pull.head_sha
    assert run.conclusion in ("success", "neutral")
    assert "cheapest" in run.summary and "Docstring coverage" in run.summary
    assert len(pull.reviews) == 1
    comments = pull.comments
    assert len(comments) == 6
    for c in comments:
        assert "```suggestion" in c["body"] and render.parse_marker(c["body"]) is not None
        assert c["side"] == "RIGHT"

    # The same head again (a redundant synchronize): nothing new is posted.
    r = deliver(client, "pull_request", payload_for(pull, "synchronize"))
    assert r.status_code == 202
    settle(runtime)
    assert len(pull.reviews) == 1 and len(pull.comments) == 6
    assert all(run.status == "completed" for run in repo.check_runs.values())
    assert "GitHub API calls for this run" in run.summary

    metrics = client.get("/metrics").text
    assert 'docgen_job_results_total{result="done"} 2.0' in metrics
    assert 'docgen_github_api_calls_total{method="GET"}' in metrics
    assert 'docgen_github_api_calls_total{method="POST"}' in metrics
    assert 'docgen_jobs{state="done"} 2.0' in metrics
    assert "docgen_github_rate_limit_remaining" in metrics


def test_a_review_reads_github_once_per_kind_of_thing(app_env, make_pr):
    """Issue 5: the PR once, its files, every head in one GraphQL query — no blob per file.

    A binary file and a latin-1 one still end as skips with their reasons.
    """
    client, runtime, fake = app_env
    head = {PATH: HEAD, "shop/extra.py": HEAD, "shop/blob.py": b"\x00\x01binary\n"}
    head["shop/latin.py"] = b"# caf\xe9\n\n\ndef f(x):\n    return x\n"
    pull = make_pr({PATH: BASE}, head)
    # GitHub shows the diff of a latin-1 file (transcoded); the fake cannot make it.
    latin = next(f for f in pull.files if f["filename"] == "shop/latin.py")
    latin["patch"] = "@@ -0,0 +1,5 @@\n+# café\n+\n+\n+def f(x):\n+    return x"
    fake.calls.clear()
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    settle(runtime)

    reads = Counter(c.route for c in fake.calls if c.method == "GET" or c.route == "graphql")
    assert reads == {
        "pulls.get": 1,  # not read again to fetch the changes
        "repos.contents": 4,  # docgen.yml/.yaml here, then in octo/.github (none exist)
        "pulls.files": 1,
        "graphql": 1,  # four heads
        "git.blob": 1,  # latin.py: GraphQL's text is not its bytes
        "comments.list": 1,
    }
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "completed"
    lines = run.summary.splitlines()
    assert any("shop/latin.py" in line and "not valid UTF-8" in line for line in lines)
    assert any("shop/blob.py" in line and "no patch from GitHub" in line for line in lines)
    assert len(pull.comments) == 12  # both copies of the sample module documented


def test_github_outage_is_retried_later_and_the_check_run_says_why(app_env, make_pr):
    from tests.fake_github import Fault

    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    fake.fail("pulls.files", *[Fault.server_error(502)] * 8)
    deliver(client, "pull_request", payload_for(pull))
    key = f"{OWNER}/{REPO}#1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        [job] = runtime.journal.history(key)
        if job.state == "queued" and job.last_error:
            break
        time.sleep(0.02)
    assert job.state == "queued" and "GitHub unavailable" in job.last_error
    assert job.run_after > time.time()  # deferred (on the journal's clock), not dropped
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "in_progress" and run.title == "Waiting to retry"
    assert "GitHub is unavailable" in run.summary and "retrying at" in run.summary


def test_redelivery_is_acted_on_once(app_env, make_pr):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    assert deliver(client, "pull_request", payload_for(pull), delivery="dup").status_code == 202
    assert deliver(client, "pull_request", payload_for(pull), delivery="dup").status_code == 200
    settle(runtime)
    assert len(fake.repo(f"{OWNER}/{REPO}").check_runs) == 1


def test_slash_command_reacts_and_runs(app_env, make_pr, fake_github):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    comment_id = fake.add_issue_comment(
        fake.repo(f"{OWNER}/{REPO}"), pull.number, "/docgen --style numpy"
    )
    comment = {
        "action": "created",
        "issue": {"number": pull.number, "pull_request": {"url": "x"}},
        "comment": {
            "id": comment_id,
            "body": "/docgen --style numpy",
            "author_association": "MEMBER",
            "user": {"login": "maintainer", "type": "User"},
        },
        "repository": {"full_name": f"{OWNER}/{REPO}"},
        "installation": {"id": 1},
    }
    assert deliver(client, "issue_comment", comment).status_code == 202
    settle(runtime)
    assert fake.calls_to("reactions.create"), [c.route for c in fake.calls]
    assert any("Parameters\n" in c["body"] for c in pull.comments)


def comment_event(pull, comment_id, body, association="MEMBER"):
    return {
        "action": "created",
        "issue": {"number": pull.number, "pull_request": {"url": "x"}},
        "comment": {
            "id": comment_id,
            "body": body,
            "author_association": association,
            "user": {"login": "maintainer", "type": "User"},
        },
        "repository": {"full_name": f"{OWNER}/{REPO}"},
        "installation": {"id": 1},
    }


def test_slash_command_with_paths_reviews_only_those(app_env, make_pr):
    client, runtime, fake = app_env
    other = "shop/extra.py"
    extra = "def helper_one(a, b):\n    c = a + b\n    return c\n"
    pull = make_pr({PATH: BASE}, {PATH: HEAD, other: extra})
    comment_id = fake.add_issue_comment(
        fake.repo(f"{OWNER}/{REPO}"), pull.number, "/docgen shop/extra.py"
    )
    assert (
        deliver(
            client, "issue_comment", comment_event(pull, comment_id, "/docgen shop/extra.py")
        ).status_code
        == 202
    )
    settle(runtime)
    assert {c["path"] for c in pull.comments} == {other}


def test_help_is_answered_in_the_conversation(app_env, make_pr):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    repo = fake.repo(f"{OWNER}/{REPO}")
    comment_id = fake.add_issue_comment(repo, pull.number, "/docgen help")
    assert (
        deliver(
            client, "issue_comment", comment_event(pull, comment_id, "/docgen help")
        ).status_code
        == 202
    )
    settle(runtime)
    replies = [c for c in repo.issue_comments.values() if c["id"] != comment_id]
    assert len(replies) == 1 and "/docgen path/or/glob.py" in replies[0]["body"]
    assert pull.reviews == [] and not repo.check_runs


def test_auto_run_off_offers_a_button_then_runs_on_it(app_env, make_pr):
    client, runtime, fake = app_env
    base = {PATH: BASE, ".github/docgen.yml": "auto_run: false\n"}
    pull = make_pr(base, {PATH: HEAD, ".github/docgen.yml": "auto_run: false\n"})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    repo = fake.repo(f"{OWNER}/{REPO}")
    [run] = repo.check_runs.values()
    assert (
        run.conclusion == "neutral" and run.actions and run.actions[0]["identifier"] == "generate"
    )
    assert pull.reviews == []
    button = {
        "action": "requested_action",
        "requested_action": {"identifier": "generate"},
        "check_run": {
            "id": run.id,
            "head_sha": pull.head_sha,
            "app": {"id": APP_ID},
            "pull_requests": [{"number": pull.number}],
        },
        "repository": {"full_name": f"{OWNER}/{REPO}"},
        "installation": {"id": 1},
    }
    assert deliver(client, "check_run", button).status_code == 202
    settle(runtime)
    assert len(pull.reviews) == 1


def test_a_pr_cannot_raise_its_own_budget(app_env, make_pr):
    client, runtime, fake = app_env
    base = {PATH: BASE, ".github/docgen.yml": "exclude: ['shop/*']\n"}
    head = {PATH: HEAD, ".github/docgen.yml": "exclude: []\nbudget: 999999\n"}
    pull = make_pr(base, head)
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert pull.reviews == []  # the base's exclude applies, not the head's
    assert "excluded" in run.summary


def test_broken_config_fails_the_check_and_says_why(app_env, make_pr):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE, ".github/docgen.yml": "style: [oops\n"}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.conclusion == "failure"
    assert "invalid YAML" in run.summary
    assert len(pull.reviews) == 1  # defaults were used: the run still happened


def test_resumed_job_finishes_the_check_run_it_started(
    fake_github, private_key_pem, make_pr, tmp_path
):
    from bot.app import job_payload
    from bot.events import decide
    from bot.jobs import Journal
    from tests.fake_github import CheckRun

    fake = fake_github
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    repo = fake.repo(f"{OWNER}/{REPO}")
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_webhook_secret=SECRET,
        docgen_data_dir=tmp_path / "data",
    )
    # The previous process: acknowledged the delivery, claimed the job, opened a
    # check run on GitHub, saved its id, and was killed before finishing.
    (tmp_path / "data").mkdir()
    with Journal.in_dir(tmp_path / "data") as journal:
        decision = decide("pull_request", payload_for(pull))
        with journal.atomic():
            journal.record_delivery("crashed", "pull_request", "opened", outcome="run")
            journal.enqueue(
                decision.key, "review", job_payload(decision, "crashed"), delivery_id="crashed"
            )
        job = journal.claim("dead-worker")
        run_id = 900001
        repo.check_runs[run_id] = CheckRun(
            run_id, "docgen", pull.head_sha, "in_progress", None, job.key, None, None, None
        )
        journal.save_data(
            job.id,
            {"check_run_id": run_id, "check_run_sha": pull.head_sha},
            worker_id="dead-worker",
        )
    # The restart: recovery at start-up runs the job again.
    runtime = server.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake.app),
        provider=OfflineProvider(),
        poll_interval=0.01,
        write_interval=0.0,
    )
    with TestClient(runtime.app):
        settle(runtime)
    runtime.journal.close()
    assert list(repo.check_runs) == [run_id]  # finished the same check run: no second one
    assert repo.check_runs[run_id].status == "completed"
    assert len(pull.reviews) == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GITHUB_APP_ID is not set"),
        ({"GITHUB_APP_ID": "1"}, "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is not set"),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_PRIVATE_KEY_PATH": "/nope.pem",
                "GITHUB_WEBHOOK_SECRET": "s",
            },
            "GITHUB_PRIVATE_KEY_PATH does not name a readable file",
        ),
        (
            {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": "not-a-pem-SECRETVALUE"},
            "GITHUB_WEBHOOK_SECRET is not set",
        ),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_PRIVATE_KEY": "not-a-pem-SECRETVALUE",
                "GITHUB_WEBHOOK_SECRET": "s",
            },
            "private key is not a PEM private key",
        ),
        ({"GITHUB_APP_ID": "abc"}, "invalid environment variable GITHUB_APP_ID"),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_PRIVATE_KEY": "x",
                "GITHUB_WEBHOOK_SECRET": "s",
                "PORT": "99999",
            },
            "invalid environment variable PORT",
        ),
    ],
    ids=[
        "no-app-id",
        "no-key",
        "key-path-missing",
        "no-secret",
        "bad-pem",
        "bad-app-id",
        "bad-port",
    ],
)
def test_serve_refuses_to_start_with_one_clear_line(env, message, tmp_path, monkeypatch):
    import subprocess
    import sys

    clean = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_", "PORT"))
    }
    clean.update(env)
    clean["DOCGEN_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "SECRETVALUE" not in proc.stderr


# ------------------------------------------- suggestions, committed as GitHub does
#
# The oracle is the file GitHub would have after "Commit suggestion" on every
# suggestion (FakeGitHub.apply_suggestions: git's lines, split at "\n"), read with
# the standard library: it parses, its code (docstrings aside) is the head's, and
# every comment is still there.


def _code(source: bytes) -> str:
    """The module's AST without docstrings (each body's leading string expression)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _comments(source: bytes) -> list[str]:
    tokens = tokenize.tokenize(io.BytesIO(source).readline)
    return [t.string for t in tokens if t.type == tokenize.COMMENT]


def _review_and_commit(app_env, make_pr, base: bytes, head: bytes) -> tuple[bytes, int]:
    """Review a PR of ``PATH`` with the App; the file after committing its suggestions.

    Each suggestion alone must change only docstrings too (a reviewer may take any one).
    """
    client, runtime, fake = app_env
    pull = make_pr({PATH: base}, {PATH: head})
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    counts = settle(runtime)
    assert counts.get("done") == 1, runtime.journal.history(f"{OWNER}/{REPO}#1")
    for comment in pull.comments:
        alone = fake.apply_suggestions(pull, PATH, [comment["id"]])
        _assert_only_docstrings_changed(head, alone)
    return fake.apply_suggestions(pull, PATH), len(pull.comments)


def _assert_only_docstrings_changed(head: bytes, committed: bytes) -> None:
    assert committed != head
    assert _code(committed) == _code(head)
    assert _comments(committed) == _comments(head)


def test_committed_suggestions_change_only_docstrings(app_env, make_pr):
    committed, posted = _review_and_commit(app_env, make_pr, BASE.encode(), HEAD.encode())
    assert posted == 6
    _assert_only_docstrings_changed(HEAD.encode(), committed)
    tree = ast.parse(committed)
    documented = {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.ClassDef) and ast.get_docstring(n)
    }
    assert {"cheapest", "low_stock", "Basket", "add", "checkout"} <= documented


def test_committed_suggestions_keep_crlf(app_env, make_pr):
    base, head = (text.replace("\n", "\r\n").encode() for text in (BASE, HEAD))
    committed, posted = _review_and_commit(app_env, make_pr, base, head)
    assert posted == 6
    _assert_only_docstrings_changed(head, committed)
    assert committed.count(b"\n") == committed.count(b"\r\n")  # every line still CRLF


# Characters str.splitlines() breaks at (Python's tokenizer: "\r" too) but git does not.
_BREAKERS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("breaker", _BREAKERS, ids=[f"U+{ord(b):04X}" for b in _BREAKERS])
def test_committed_suggestions_after_a_line_breaker_git_does_not_count(app_env, make_pr, breaker):
    """A comment and a string holding the character, above every changed definition.

    (A triple-quoted string: Python ends a line at a lone CR, so "a<CR>b" does not parse.)
    """
    odd = f'# old{breaker}style\nBANNER = """a{breaker}b"""\n'
    base, head = (
        text.replace("from __future__ import annotations\n", odd, 1).encode()
        for text in (BASE, HEAD)
    )
    committed, posted = _review_and_commit(app_env, make_pr, base, head)
    assert posted == 6
    _assert_only_docstrings_changed(head, committed)


def test_committed_stale_docstring_update_keeps_comments_on_its_lines(app_env, make_pr):
    stale = '        sku: The product.\n    """\n'
    head = HEAD.replace(stale, '        sku: The product.\n    """  # noqa: D401\n', 1)
    assert head != HEAD
    committed, _ = _review_and_commit(app_env, make_pr, BASE.encode(), head.encode())
    assert b"restock" in committed and b"stock: " in committed
    _assert_only_docstrings_changed(head.encode(), committed)
