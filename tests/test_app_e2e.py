"""The App end to end: signed webhook → store → worker → fake GitHub.

The web app, the in-process workers and the SQLite store run as ``docgen serve``
builds them (:func:`bot.runtime.compose.build`); GitHub is the in-process fake (its checks
included: App JWT, installation tokens, review lines inside the diff); the model is
the offline provider.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import time
import tokenize
from collections import Counter

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from bot.cli.sample import BASE, HEAD
from bot.config import Settings
from bot.docstrings import quota
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.llm.openai_provider import OpenAIProvider
from bot.docstrings.quota import Caps, Used
from bot.docstrings.render import review_comment
from bot.runtime import compose
from tests.code_oracle import code_dump
from tests.conftest import OWNER, REPO
from tests.factories import GREET_BASE, GREET_HEAD
from tests.fake_github import APP_ID, signed_delivery
from tests.fake_openai import API_KEY, FakeOpenAI
from tests.markdown_oracle import assert_inert

SECRET = "e2e-webhook-secret"
PATH = "shop/inventory.py"


@pytest.fixture
def app_settings():
    """Settings a test overrides (``@pytest.mark.parametrize("app_settings", [{...}])``)."""
    return {}


@pytest.fixture
def app_env(fake_github, private_key_pem, tmp_path, fake_clock, app_settings):
    # The store runs on real time and takes a RetryLater's retry_at (computed on the
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
        **app_settings,
    )
    runtime = compose.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake_github.app),
        provider=OfflineProvider(),
        poll_interval=0.01,
        write_interval=0.0,
        github_clock=fake_clock,  # GitHub back-off waits pass instantly
    )
    with TestClient(runtime.app) as client:
        yield client, runtime, fake_github
    runtime.store.close()


def payload_for(pull, action="opened"):
    return pull.webhook_payload(action)


def deliver(client, event, payload, delivery=None):
    body, headers = signed_delivery(SECRET, event, payload, delivery)
    return client.post("/webhook", content=body, headers=headers)


def settle(runtime, timeout=30.0):
    """Wait until the store has no queued or running job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = runtime.store.counts()
        if not counts.get("queued") and not counts.get("running"):
            return counts
        time.sleep(0.02)
    raise AssertionError(f"jobs did not finish: {runtime.store.counts()}")


def review_comments(pull):
    return [c for r in pull.reviews for c in r.get("comments", [])] or pull.comments


def test_pull_request_gets_one_review_and_a_check_run(app_env, make_pr):
    client, runtime, fake = app_env
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    r = deliver(client, "pull_request", payload_for(pull))
    assert r.status_code == 202
    counts = settle(runtime)
    assert counts.get("done") == 1 and not counts.get("failed"), runtime.store.history(
        f"{OWNER}/{REPO}#1"
    )
    repo = fake.repo(f"{OWNER}/{REPO}")
    [run] = repo.check_runs.values()
    assert run.status == "completed" and run.head_sha == pull.head_sha
    # success: every changed public definition got a suggestion (the private helper is
    # out of scope, not left undocumented).
    assert run.conclusion == "success"
    assert "cheapest" in run.summary and "Docstring coverage" in run.summary
    assert len(pull.reviews) == 1
    comments = pull.comments
    assert len(comments) == 6
    for c in comments:
        assert "```suggestion" in c["body"] and review_comment.parse_marker(c["body"]) is not None
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


def test_markers_pasted_by_someone_else_do_not_stop_the_suggestions(app_env, make_pr):
    """Issue 10: a PR author (or anyone) copying docgen's hidden markers into comments
    of their own must not make docgen believe it already suggested those docstrings."""
    client, runtime, fake = app_env
    first = make_pr({PATH: BASE}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(first))
    settle(runtime)
    bodies = [c["body"] for c in first.comments]
    assert len(bodies) == 6
    # The same change again as PR #2, where a stranger pasted the six bodies first.
    second = make_pr({PATH: BASE}, {PATH: HEAD}, number=2)
    for body in bodies:
        fake.add_review_comment(second, body, author="mallory")
    deliver(client, "pull_request", payload_for(second))
    settle(runtime)
    own = [c for c in second.comments if c["user"]["login"] == fake.bot_login]
    assert len(own) == 6
    assert sorted(review_comment.parse_marker(c["body"]) for c in own) == sorted(
        review_comment.parse_marker(b) for b in bodies
    )


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
        "graphql": 2,  # the sizes of three heads, then their text (blob.py has no patch)
        "git.blob": 1,  # latin.py: GraphQL's text is not its bytes
        "comments.list": 1,
        "apps.get_authenticated": 1,  # the App's bot login (its own comments), once per client
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
        [job] = runtime.store.history(key)
        if job.state == "queued" and job.last_error:
            break
        time.sleep(0.02)
    assert job.state == "queued" and "GitHub unavailable" in job.last_error
    assert job.run_after > time.time()  # deferred (on the store's clock), not dropped
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "in_progress" and run.title == "Waiting to retry"
    assert run.summary.startswith("GitHub did not answer; docgen tries again at ")
    assert f"under delivery `{job.delivery_id}`" in run.summary
    assert "502" not in run.summary and "/repos/" not in run.summary  # details: logs only


INTERNAL = "ConnectError: llm-proxy.corp.internal:8443 (10.2.3.4) via /srv/docgen/ca.pem"


@pytest.mark.parametrize("attempts", [1, 3], ids=["gives-up", "will-retry"])
def test_a_failed_attempt_tells_the_pr_what_happened_not_the_exception(
    app_env, make_pr, monkeypatch, caplog, attempts
):
    """Issue 10: check runs are public; exception text names internal hosts and paths."""
    from bot.runtime import review_job

    client, runtime, fake = app_env
    rules = runtime.store.rules
    runtime.store.rules = dataclasses.replace(rules, max_attempts=attempts)
    pull = make_pr({PATH: BASE}, {PATH: HEAD})

    async def failing_review(job, ctx, deps, api, *_):
        await review_job._check_run_for(ctx, api, pull.head_sha, job)
        raise OSError(INTERNAL)

    monkeypatch.setattr(review_job, "review", failing_review)
    deliver(client, "pull_request", payload_for(pull), delivery="d-0c4f-11ef")
    key = f"{OWNER}/{REPO}#1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        [job] = runtime.store.history(key)
        if job.last_error:
            break
        time.sleep(0.02)
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    for secret_detail in ("corp.internal", "10.2.3.4", "/srv/docgen", "OSError", "ConnectError"):
        assert secret_detail not in run.summary, run.summary
    assert "under delivery `d-0c4f-11ef`" in run.summary
    if attempts == 1:
        assert run.status == "completed" and run.conclusion == "failure"
        assert run.summary.startswith("Attempt 1 stopped on an internal error; docgen gave up")
    else:
        assert run.title == "Waiting to retry"
        assert run.summary.startswith("Attempt 1 stopped on an internal error; docgen will retry")
    # The operator still has the detail, with the delivery id on the line.
    logged = [r for r in caplog.records if INTERNAL in r.getMessage()]
    assert any(getattr(r, "delivery_id", None) == "d-0c4f-11ef" for r in logged), logged


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
    # Where the settings come from, and that a PR's edit of them waits for its merge.
    body = " ".join(replies[0]["body"].split())
    assert "`.github/docgen.yml` on the repository's default branch" in body
    assert "a PR's own changes to that file apply once they are merged" in body
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


def test_the_config_is_the_default_branchs_not_the_base_the_pr_picked(app_env, make_pr):
    """A PR against an old branch whose docgen.yml has auto_run on (and a big budget)
    still runs under the default branch's config: on request only."""
    client, runtime, fake = app_env
    repo = fake.repo(f"{OWNER}/{REPO}")
    fake.add_commit(repo, {".github/docgen.yml": "auto_run: false\n"}, branch="main")
    old = {PATH: BASE, ".github/docgen.yml": "auto_run: true\nbudget: 999999\n"}
    pull = make_pr(old, {PATH: HEAD, ".github/docgen.yml": "budget: 5\n"}, base_ref="v1")
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    [run] = repo.check_runs.values()
    assert (run.conclusion, run.title) == ("neutral", "docgen is set to run on request")
    assert pull.reviews == []


def test_a_pr_that_edits_the_config_is_told_it_applies_once_merged(app_env, make_pr):
    client, runtime, fake = app_env
    base = {PATH: BASE}
    pull = make_pr(base, {PATH: HEAD, ".github/docgen.yml": "exclude: ['shop/*']\n"})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert len(pull.reviews) == 1  # the PR's own exclude did not apply
    assert "applies to pull requests once it is merged" in run.summary


@pytest.mark.parametrize(
    "app_settings", [{"docgen_max_run_bytes": 40_000, "docgen_style_sample_bytes": 5_000}]
)
def test_a_pr_costs_only_the_bytes_docgen_will_use(app_env, make_pr):
    """No-patch, excluded and oversized files are not downloaded; the run's byte cap
    holds; the summary names each file left out, and why."""
    client, runtime, fake = app_env
    repo = fake.repo(f"{OWNER}/{REPO}")
    config = "exclude: ['vendor/*']\nmax_file_bytes: 30000\n"
    fake.add_commit(repo, {".github/docgen.yml": config}, branch="main")
    filler = "".join(f"# line {i:05}\n" for i in range(2_400)).encode()  # 31,200 bytes
    head = {
        PATH: HEAD,  # ~3 KB
        "shop/more.py": HEAD.encode() + filler[:20_000],
        "shop/extra.py": HEAD.encode() + filler[:20_000],  # past the 40 KB run cap
        "shop/huge.py": HEAD.encode() + filler,  # over max_file_bytes
        "vendor/lib.py": HEAD.encode() + filler,  # excluded
        "gen/blob.py": b"\x00" + filler * 100,  # 3 MB, no patch (binary)
    }
    pull = make_pr(
        {PATH: BASE, ".github/docgen.yml": config}, {**head, ".github/docgen.yml": config}
    )
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    settle(runtime)

    # The only other content served: the default branch's docgen.yml.
    read = len(head[PATH]) + len(head["shop/more.py"])
    assert fake.bytes_served == read + len(config)
    [run] = repo.check_runs.values()
    assert run.status == "completed"
    text = run.summary.replace("\\", "")  # Markdown escapes aside

    def skipped(path):
        return next(line for line in text.splitlines() if line.startswith(f"- `{path}` — "))

    assert "too large: 33,644 bytes > limit 30,000 (max_file_bytes)" in skipped("shop/huge.py")
    assert "DOCGEN_MAX_RUN_BYTES" in skipped("shop/more.py")  # shop/extra.py came first
    assert "excluded" in skipped("vendor/lib.py")
    assert "no patch from GitHub" in skipped("gen/blob.py")
    assert "up to its 5,000-byte cap (DOCGEN_STYLE_SAMPLE_BYTES)" in text


@pytest.mark.parametrize("app_settings", [{"docgen_job_timeout": 3.0}])
def test_a_run_past_its_deadline_ends_with_a_reason_and_its_threads_stop(
    app_env, make_pr, monkeypatch
):
    """Parsing that outlasts the job: the check run says which limit stopped it and
    where, the job is not retried into the same wall, and parsing stops."""
    from bot.docstrings import extract

    parsed = []
    real = extract.extract

    def slow(path, *args, **kw):
        parsed.append(path)
        time.sleep(0.25)  # a slow parse, in the pipeline's thread
        return real(path, *args, **kw)

    monkeypatch.setattr(extract, "extract", slow)
    client, runtime, fake = app_env
    head = {f"shop/m{i:02}.py": HEAD for i in range(40)}  # 10 s of parsing
    pull = make_pr({}, head)
    started = time.monotonic()
    deliver(client, "pull_request", payload_for(pull))
    counts = settle(runtime)
    elapsed = time.monotonic() - started
    assert counts.get("failed") == 1 and not counts.get("queued")  # not retried
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert (run.status, run.conclusion) == ("completed", "failure")
    summary = run.summary.replace("\\", "")  # Markdown escapes aside
    assert "time limit (from DOCGEN_JOB_TIMEOUT)" in summary
    assert "while parsing shop/m" in summary
    assert pull.reviews == []
    assert elapsed < 6
    stopped_at = len(parsed)
    time.sleep(0.6)
    assert len(parsed) == stopped_at < 40  # the thread stopped too


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
    from bot.runtime.events import decide
    from bot.runtime.queue.sqlite_store import SqliteStore
    from bot.runtime.web import job_payload
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
    with SqliteStore.in_dir(tmp_path / "data") as store:
        decision = decide("pull_request", payload_for(pull))
        with store.atomic():
            store.record_delivery("crashed", "pull_request", "opened", outcome="run")
            store.enqueue(
                decision.key, "review", job_payload(decision, "crashed"), delivery_id="crashed"
            )
        lease = store.claim("dead-worker").lease
        assert lease is not None
        job = lease.job
        run_id = 900001
        repo.check_runs[run_id] = CheckRun(
            run_id, "docgen", pull.head_sha, "in_progress", None, job.key, None, None, None
        )
        store.save_data(lease, {"check_run_id": run_id, "check_run_sha": pull.head_sha})
    # The restart: recovery at start-up runs the job again.
    runtime = compose.build(
        settings,
        github_transport=httpx.ASGITransport(app=fake.app),
        provider=OfflineProvider(),
        poll_interval=0.01,
        write_interval=0.0,
    )
    with TestClient(runtime.app):
        settle(runtime)
    runtime.store.close()
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
    assert counts.get("done") == 1, runtime.store.history(f"{OWNER}/{REPO}#1")
    for comment in pull.comments:
        alone = fake.apply_suggestions(pull, PATH, [comment["id"]])
        _assert_only_docstrings_changed(head, alone)
    return fake.apply_suggestions(pull, PATH), len(pull.comments)


def _assert_only_docstrings_changed(head: bytes, committed: bytes) -> None:
    assert committed != head
    assert code_dump(committed) == code_dump(head)
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


def test_a_pr_of_thousands_of_functions_completes_its_check_run(app_env, make_pr):
    """Issue 14.4: GitHub counts output.summary in UTF-8 bytes (65,535 at most).

    Every skipped row of the summary carries a multi-byte "—", so a summary cut to
    65,535 *characters* is thousands of bytes over: the PATCH got 422 and the run never
    completed.  The fake refuses by bytes, with GitHub's own message.
    """
    client, runtime, fake = app_env
    n = 4_000
    source = "".join(f"def compute_{i}(x):\n    return x + {i}\n\n\n" for i in range(n))
    pull = make_pr({"shop/__init__.py": ""}, {"shop/__init__.py": "", "shop/big.py": source})
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    counts = settle(runtime, timeout=110)
    assert counts.get("done") == 1 and not counts.get("failed"), runtime.store.history(
        f"{OWNER}/{REPO}#1"
    )
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "completed" and run.conclusion == "neutral"
    size = len(run.summary.encode("utf-8"))
    assert 60_000 < size <= 65_535
    assert "rows omitted (summary size limit)" in run.summary
    assert len(pull.reviews) == 1
    assert len(pull.comments) == 100  # max_functions; the rest are listed as skipped


@pytest.mark.parametrize(
    "prefix", ["", "# an old Mac line end\r# and the next comment\n"], ids=["plain", "lone-cr-before"]
)
def test_stale_docstring_across_two_hunks_is_offered_in_the_check_run(app_env, make_pr, prefix):
    """Issue 14.6: the docstring (lines 2-15) spans the def's hunk and the return's.

    GitHub refuses a suggestion across hunks, so none is posted; the check run offers
    the exact replacement instead (text and an annotation), with the reason, and the
    replacement applied to the head file changes nothing but the docstring.  Its line
    numbers are git's, also after a lone CR (a line break for Python, not for git).
    """
    client, runtime, fake = app_env
    path = "shop/greet.py"
    base, head = prefix + GREET_BASE, prefix + GREET_HEAD
    first, last = 2 + prefix.count("\n"), 15 + prefix.count("\n")  # git's lines
    pull = make_pr({path: base}, {path: head})
    [entry] = pull.files
    assert entry["patch"].count("@@ -") == 2  # git's hunks: around the def and the return
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    counts = settle(runtime)
    assert counts.get("done") == 1, runtime.store.history(f"{OWNER}/{REPO}#1")
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    assert run.status == "completed" and run.conclusion == "neutral"
    assert not pull.reviews and not pull.comments

    reason = (
        f"the docstring spans lines {first}–{last} across two diff hunks;"
        " GitHub takes a suggestion within one hunk"
    )
    [row] = [line for line in run.summary.splitlines() if line.startswith("| `greet`")]
    assert "| offered |" in row and reason in row and "stale docstring: documents" in row
    assert run.title.startswith("docgen: 0 added, 0 updated, 1 offered, 0 skipped")

    seen = assert_inert(run.text)
    [(info, block)] = seen.fences
    assert info == "python"
    assert f"Replace lines {first}–{last} of `{path}` with:" in run.text and reason in run.text
    [note] = run.annotations
    assert (note["path"], note["start_line"], note["end_line"]) == (path, first, first)
    assert note["raw_details"] + "\n" == block

    # Apply it as a person would: replace git's lines first..last of the head file.
    lines = head.split("\n")
    applied = "\n".join([*lines[: first - 1], *block.rstrip("\n").split("\n"), *lines[last:]])
    tree, head_tree = ast.parse(applied), ast.parse(head)
    docstring = ast.get_docstring(tree.body[0])
    assert docstring and "salutation" in docstring and "greeting:" not in docstring
    for t in (tree, head_tree):
        t.body[0].body.pop(0)  # the docstring; everything else must be equal
    assert ast.dump(tree) == ast.dump(head_tree)


# ------------------------------------------------ what org admins control (issue 10)


@pytest.fixture
def llm_app(fake_github, private_key_pem, tmp_path, fake_clock):
    """``start(**settings)``: the App as ``docgen serve`` builds it, with a model that
    spends tokens (the fake OpenAI API, in-process) — caps and budgets only bite then."""
    started = []

    def start(**settings_kw):
        fake_clock.now = time.time()
        llm = FakeOpenAI()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=llm.app))
        client = openai.AsyncOpenAI(
            api_key=API_KEY, base_url="http://fake-openai.invalid/v1", http_client=http
        )
        settings = Settings(
            github_app_id=APP_ID,
            github_private_key=private_key_pem,
            github_webhook_secret=SECRET,
            github_api_url="https://api.github.com",
            docgen_data_dir=tmp_path / f"data{len(started)}",
            docgen_workers=2,
            **settings_kw,
        )
        runtime = compose.build(
            settings,
            github_transport=httpx.ASGITransport(app=fake_github.app),
            provider=OpenAIProvider(client, "gpt-4o-mini", timeout=10),
            poll_interval=0.01,
            write_interval=0.0,
            github_clock=fake_clock,
        )
        test_client = TestClient(runtime.app)
        test_client.__enter__()
        started.append((test_client, runtime))
        return test_client, runtime, llm

    yield start
    for test_client, runtime in started:
        test_client.__exit__(None, None, None)
        runtime.store.close()


INSTALLATION = 1  # the fake's installation (payloads carry it)


def only_run(fake):
    [run] = fake.repo(f"{OWNER}/{REPO}").check_runs.values()
    return run


def test_a_run_within_the_caps_counts_what_the_provider_reported(llm_app, make_pr, fake_github):
    client, runtime, llm = llm_app(
        docgen_installation_tokens_per_day=1_000_000,
        docgen_installation_tokens_per_month=1_000_000,
    )
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    assert llm.requests and len(pull.reviews) == 1
    spent = runtime.store.spent(f"{OWNER}/{REPO}#1").tokens
    assert spent > 0
    # Every reservation was settled with the usage the provider reported.
    assert runtime.store.cap_used(INSTALLATION) == Used(spent, spent)
    metrics = client.get("/metrics").text
    [usage] = runtime.store.usage()
    assert (usage.installation_id, usage.repo, usage.tokens) == (INSTALLATION, "octo/demo", spent)
    prompt = f'docgen_installation_tokens{{installation="1",kind="prompt"}} {usage.prompt_tokens}.0'
    assert prompt in metrics
    assert 'docgen_installation_cost_usd{installation="1"}' in metrics


def test_a_cap_too_small_for_a_call_refuses_it_before_it_is_sent(llm_app, make_pr, fake_github):
    client, runtime, llm = llm_app(docgen_installation_tokens_per_day=100)
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    run = only_run(fake_github)
    assert llm.requests == []  # the reservation was refused: nothing reached the model
    assert run.conclusion == "neutral"
    assert run.title.startswith("Installation daily token cap reached")
    assert "0 of 100 tokens used today (UTC)" in run.summary and "It resets at" in run.summary
    assert "the installation's daily token cap (100) is reached" in run.summary
    assert runtime.store.cap_used(INSTALLATION) == Used(0, 0)
    [job] = runtime.store.history(f"{OWNER}/{REPO}#1")
    assert job.state == "done" and job.attempts == 1  # concluded, not retried


def test_a_reached_cap_stops_every_pr_of_the_installation_until_it_resets(
    llm_app, make_pr, fake_github
):
    client, runtime, llm = llm_app(docgen_installation_tokens_per_month=50_000)
    # Another PR (or another process) used the month's tokens already.
    assert runtime.store.reserve_tokens(INSTALLATION, 50_000, Caps(0, 50_000))
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(pull))
    deliver(client, "pull_request", payload_for(pull, "synchronize"))
    settle(runtime)
    assert llm.requests == [] and pull.reviews == []
    runs = list(fake_github.repo(f"{OWNER}/{REPO}").check_runs.values())
    assert runs and all(r.conclusion == "neutral" for r in runs)
    run = runs[-1]
    assert run.title == "Installation monthly token cap reached"
    assert "50,000 of 50,000 tokens used this month (UTC)" in run.summary
    first_of_next_month = time.strftime(
        "%Y-%m-01 00:00 UTC", time.gmtime(quota.resets_at("month", time.time()))
    )
    assert f"It resets at {first_of_next_month}" in run.summary
    jobs = runtime.store.history(f"{OWNER}/{REPO}#1")
    assert all(j.attempts == 1 and j.state in ("done", "superseded") for j in jobs)


def test_fork_prs_get_the_lower_fork_budget(llm_app, make_pr, fake_github):
    client, runtime, _llm = llm_app(docgen_fork_token_budget=300)
    pull = make_pr({PATH: BASE}, {PATH: HEAD}, head_repo="stranger/demo")
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    run = only_run(fake_github)
    assert "comes from a fork: its budget is 300 tokens" in run.summary
    assert "token budget exhausted" in run.summary
    assert runtime.store.spent(f"{OWNER}/{REPO}#1").tokens <= 300


def test_the_same_pr_from_the_repository_itself_gets_the_normal_budget(
    llm_app, make_pr, fake_github
):
    client, runtime, _llm = llm_app(docgen_fork_token_budget=300)
    pull = make_pr({PATH: BASE}, {PATH: HEAD})
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    run = only_run(fake_github)
    assert "fork" not in run.summary and "token budget exhausted" not in run.summary
    assert len(pull.reviews) == 1


@pytest.mark.parametrize(
    ("env", "config"),
    [
        pytest.param({"docgen_fork_auto_run": False}, "", id="admin-setting"),
        pytest.param({}, "fork_auto_run: false\n", id="repo-config"),
    ],
)
def test_fork_prs_can_be_left_to_a_docgen_command(llm_app, make_pr, fake_github, env, config):
    client, runtime, llm = llm_app(**env)
    files = {".github/docgen.yml": config} if config else {}
    pull = make_pr({PATH: BASE, **files}, {PATH: HEAD, **files}, head_repo="stranger/demo")
    deliver(client, "pull_request", payload_for(pull))
    settle(runtime)
    run = only_run(fake_github)
    assert run.conclusion == "neutral" and run.actions[0]["identifier"] == "generate"
    assert "fork" in run.title and "/docgen" in run.summary
    assert llm.requests == [] and pull.reviews == []

    deliver(client, "issue_comment", comment_event(pull, 77, "/docgen"))
    settle(runtime)
    assert llm.requests and len(pull.reviews) == 1


GATE_BASE = '"""Geometry."""\n\n\ndef old(a):\n    b = a * 2\n    return b + 1\n'
GATE_HEAD = GATE_BASE + "\n\ndef area(width, height):\n    size = width * height\n    return size\n"


@pytest.mark.parametrize(
    ("config", "conclusion", "title_end"),
    [
        pytest.param(None, "success", "1 added, 0 updated, 0 skipped", id="success"),
        pytest.param("coverage_threshold: 50\n", "success", "1 added, 0 updated, 0 skipped", id="met"),
        pytest.param(
            "include: ['lib/*']\n", "neutral", "0 added, 0 updated, 1 skipped", id="neutral"
        ),
        pytest.param(
            "coverage_threshold: 50.1\n",
            "failure",
            "coverage 50.0% is below 50.1%",
            id="below-threshold",
        ),
    ],
)
def test_check_run_conclusion_follows_the_coverage_threshold(
    app_env, make_pr, config, conclusion, title_end
):
    """Issue 13: the default branch's coverage_threshold gates the check run.

    Coverage counts every public definition of the changed files: ``old`` (unchanged,
    undocumented) stays at 1 of 2 documented after ``area`` gets its suggestion.
    """
    client, runtime, fake = app_env
    repo = fake.repo(f"{OWNER}/{REPO}")
    files = {"geo.py": GATE_BASE}
    if config:
        files[".github/docgen.yml"] = config
        fake.add_commit(repo, {".github/docgen.yml": config}, branch="main")
    pull = make_pr(files, {**files, "geo.py": GATE_HEAD})
    assert deliver(client, "pull_request", payload_for(pull)).status_code == 202
    settle(runtime)
    [run] = repo.check_runs.values()
    assert (run.status, run.conclusion) == ("completed", conclusion), run.summary
    assert run.title.endswith(title_end), run.title
