"""Head contents through GraphQL: batched, with REST fallbacks, rate limits, GHES.

Against the fake GitHub's ``POST /graphql``; the last section checks the fake itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from githubkit.graphql import GraphQLResponse

from bot.config import RepoConfig, Settings
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.models import FileChange
from bot.docstrings.pipeline import run as run_pipeline
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding
from bot.runtime.github.client import InstallationClients, PullRequestAPI
from bot.runtime.github.connection import make_app_github
from bot.runtime.github.errors import GitHubUnavailable, NotFound
from bot.runtime.github.graphql import GRAPHQL_BATCH, graphql_url, head_blobs_query
from bot.runtime.github.pulls import FileEntry
from bot.runtime.github.sansio import is_write
from tests.conftest import OWNER, REPO
from tests.fake_github import APP_ID, FakeGitHub, Fault, git_blob_sha

run = asyncio.run
GRAPHQL = "POST /graphql"


def api_for(clients: InstallationClients) -> PullRequestAPI:
    return clients.api(1, OWNER, REPO)


def fetch(api: PullRequestAPI, wanted: Any = None) -> Any:
    """What the worker does: read the PR once, then its changes."""

    async def go() -> Any:
        async with api:
            return await api.fetch_changes(await api.get_pull(1), wanted=wanted)

    return run(go())


def routes(fake: FakeGitHub) -> list[str | None]:
    return [c.route for c in fake.calls if c.route != "tokens.create"]


def module(i: int) -> str:
    return f"def f{i}(x):\n    return x + {i}\n"


# ----------------------------------------------------------------------- batching


def test_250_wanted_files_take_three_graphql_queries(github_clients, fake_github, make_pr):
    head = {f"pkg/m{i:03}.py": module(i) for i in range(250)}
    head["notes.txt"] = "not wanted\n"
    pr = make_pr({}, head)
    api = api_for(github_clients)
    result = fetch(api, wanted=lambda p: p.endswith(".py"))

    assert {c.path: c.head for c in result.changes} == {
        **{p: text.encode() for p, text in head.items() if p.endswith(".py")},
        "notes.txt": None,
    }
    # Three queries for the sizes (by blob id), then three for the text.
    assert routes(fake_github) == ["pulls.get", *["pulls.files"] * 3, *["graphql"] * 6]
    calls = fake_github.calls_to("graphql")
    measured = [sum(k[0] == "o" and k[1:].isdigit() for k in q.json["variables"]) for q in calls[:3]]
    assert measured == [GRAPHQL_BATCH, GRAPHQL_BATCH, 50]
    queries = calls[3:]
    sizes = [sum(k.startswith("e") for k in q.json["variables"]) for q in queries]
    assert sizes == [GRAPHQL_BATCH, GRAPHQL_BATCH, 50]
    assert fake_github.graphql_objects == [f"{pr.head_sha}:pkg/m{i:03}.py" for i in range(250)]
    for q in queries:  # paths travel as variables, never as query text
        assert "pkg/" not in q.json["query"] and pr.head_sha not in q.json["query"]
        assert q.json["variables"]["owner"] == OWNER and q.json["variables"]["name"] == REPO
    assert queries[0].json["query"] == queries[1].json["query"]
    assert api.calls[GRAPHQL] == 6


def test_head_blobs_query_text():
    query, variables = head_blobs_query("o", "r", "abc", ["a.py", 'we"ird $e0 }.py'])
    assert query == (
        "query DocgenHeadBlobs($owner: String!, $name: String!, $e0: String!, $e1: String!) {\n"
        "  repository(owner: $owner, name: $name) {\n"
        "    f0: object(expression: $e0) { ... on Blob { oid byteSize isBinary isTruncated text } }\n"
        "    f1: object(expression: $e1) { ... on Blob { oid byteSize isBinary isTruncated text } }\n"
        "  }\n"
        "}"
    )
    assert variables == {"owner": "o", "name": "r", "e0": "abc:a.py", "e1": 'abc:we"ird $e0 }.py'}


def test_odd_paths_are_read_exactly(github_clients, fake_github, make_pr):
    head = {
        'we"ird $e0 }.py': "a = 1\n",
        "docs/a b#c?.py": "b = 2\n",
        "ünï.py": "c = 'ü'\n",
        "crlf.py": b"\xef\xbb\xbfdef f():\r\n\tpass\r\n",  # BOM, CRLF, a tab: kept
    }
    make_pr({}, head)
    result = fetch(api_for(github_clients))
    assert {c.path: c.head for c in result.changes} == {
        p: (v if isinstance(v, bytes) else v.encode()) for p, v in head.items()
    }
    assert routes(fake_github) == ["pulls.get", "pulls.files", "graphql", "graphql"]


def test_the_pull_request_is_not_read_again(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    api = api_for(github_clients)
    pull = run(api.get_pull(1))
    fake_github.calls.clear()
    result = run(api.fetch_changes(pull))
    assert result.pull is pull
    assert routes(fake_github) == ["pulls.files", "graphql", "graphql"]


def test_a_push_between_reads_is_caught_by_the_blob_ids(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n", "b.py": "y = 1\n"}, {"a.py": "x = 2\n", "b.py": "y = 2\n"})
    api = api_for(github_clients)
    pull = run(api.get_pull(1))
    # A push after the PR was read: the file list (and its patches) show the new head.
    repo = fake_github.repo(f"{OWNER}/{REPO}")
    fake_github.add_pull(
        repo, 1, {"a.py": "x = 1\n", "b.py": "y = 1\n"}, {"a.py": "x = 3\n", "b.py": "y = 2\n"}
    )
    fake_github.calls.clear()
    result = run(api.fetch_changes(pull))
    # a.py at the old head is not the blob the list names: read by its sha instead, so
    # that content and patch agree; b.py did not change and comes from GraphQL.
    assert {c.path: c.head for c in result.changes} == {"a.py": b"x = 3\n", "b.py": b"y = 2\n"}
    assert routes(fake_github) == ["pulls.files", "graphql", "graphql", "git.blob"]
    assert fake_github.calls_to("git.blob")[0].path.endswith(git_blob_sha(b"x = 3\n"))


# ---------------------------------------------------------------- fallbacks


def pipeline_context() -> Context:
    return Context(
        config=RepoConfig(),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(20_000),
    )


LATIN1 = b"# caf\xe9\n\n\ndef f(x):\n    return x\n"
BINARY = b"\x00\x01def f(x):\n    return x\n"
BIG = "".join(module(i) + "\n\n" for i in range(200)).encode()  # ~6 KB


@pytest.mark.parametrize(
    ("content", "patch", "via_rest", "reason"),
    [
        (BINARY, None, False, "no patch from GitHub (binary file or diff too large to show)"),
        (BINARY, "@@ -0,0 +1,2 @@\n+\x00\x01def f(x):\n+    return x", True, "binary"),
        (LATIN1, "@@ -0,0 +1,5 @@\n+# café\n+\n+\n+def f(x):\n+    return x", True, "UTF-8"),
        (BIG, "keep", True, None),
    ],
    ids=["binary-without-patch", "binary-with-patch", "not-utf-8", "truncated"],
)
def test_what_graphql_cannot_give_exactly_ends_as_the_rest_path_does(
    github_clients, fake_github, make_pr, content, patch, via_rest, reason
):
    """Binary, non-UTF-8 and truncated blobs: the same bytes (or skip) as REST gives."""
    fake_github.graphql_text_limit = 4096
    pr = make_pr({}, {"m.py": content, "ok.py": "a = 1\n"})
    entry = next(f for f in pr.files if f["filename"] == "m.py")
    if patch is None:
        entry.pop("patch", None)
    elif patch != "keep":
        entry["patch"] = patch  # GitHub shows diffs the fake cannot make (it decodes UTF-8)
    api = api_for(github_clients)
    result = fetch(api)
    by_path = {c.path: c for c in result.changes}
    assert by_path["ok.py"].head == b"a = 1\n"
    assert len(fake_github.calls_to("git.blob")) == int(via_rest)
    assert by_path["m.py"].head == (content if via_rest else None)

    # Downstream, the file ends exactly as it did when REST read every blob.
    rest = [
        FileChange(
            c.path,
            c.status,
            c.patch,
            run(api.get_blob(git_blob_sha(content))) if c.path == "m.py" else c.head,
        )
        for c in result.changes
    ]
    got = run(run_pipeline(result.changes, pipeline_context())).report
    expected = run(run_pipeline(rest, pipeline_context())).report
    assert got.skips == expected.skips
    assert [o.action for o in got.outcomes] == [o.action for o in expected.outcomes]
    skipped = [s.reason for s in got.skips if s.path == "m.py"]
    if reason is None:
        assert skipped == []
    else:
        assert len(skipped) == 1 and reason in skipped[0]


def test_an_error_for_one_object_reads_that_file_through_rest(
    github_clients, fake_github, make_pr, caplog
):
    make_pr({}, {"a.py": "a = 1\n", "b.py": "b = 2\n", "c.py": "c = 3\n"})
    fake_github.fail_object("b.py", "NOT_FOUND", "Could not resolve to a Blob.")
    result = fetch(api_for(github_clients))
    assert [c.head for c in result.changes] == [b"a = 1\n", b"b = 2\n", b"c = 3\n"]
    assert routes(fake_github) == ["pulls.get", "pulls.files", "graphql", "graphql", "git.blob"]
    assert caplog.records == []  # an alias error is expected business, not noise


def test_a_file_missing_at_head_is_none_after_rest_agrees(github_clients, fake_github, make_pr):
    pr = make_pr({}, {"a.py": "a = 1\n", "gone.py": "b = 2\n"})
    repo = fake_github.repo(f"{OWNER}/{REPO}")
    del repo.commits[pr.head_sha]["gone.py"]  # GitHub answers null for it
    del repo.blobs[git_blob_sha(b"b = 2\n")]
    result = fetch(api_for(github_clients))
    assert [c.head for c in result.changes] == [b"a = 1\n", None]
    assert [c.skip_reason for c in result.changes] == [None, None]
    assert routes(fake_github) == [
        "pulls.get",
        "pulls.files",
        "graphql",  # sizes: null for gone.py's blob
        "repos.contents",  # its directory at head: not there either
        "graphql",  # a.py's text
    ]


def test_a_query_graphql_refuses_falls_back_to_rest(github_clients, fake_github, make_pr, caplog):
    """E.g. an old GitHub Enterprise Server whose schema lacks a field: REST still works."""
    make_pr({}, {"a.py": "a = 1\n", "b.py": "b = 2\n"})
    error = {
        "path": ["query DocgenHeadBlobs", "repository", "f0", "... on Blob", "isTruncated"],
        "extensions": {"code": "undefinedField", "typeName": "Blob", "fieldName": "isTruncated"},
        "locations": [{"line": 3, "column": 60}],
        "message": "Field 'isTruncated' doesn't exist on type 'Blob'",
    }
    fake_github.fail("graphql", Fault(200, {"errors": [error]}))
    with caplog.at_level(logging.WARNING, logger="bot.runtime.github"):
        result = fetch(api_for(github_clients))
    assert [c.head for c in result.changes] == [b"a = 1\n", b"b = 2\n"]
    # Sizes from the directory's listing (no content), then each blob through REST.
    assert routes(fake_github)[2:] == ["graphql", "repos.contents", "git.blob", "git.blob"]
    assert fake_github.bytes_served == 12
    assert "doesn't exist on type 'Blob'" in caplog.text


def test_a_repository_graphql_cannot_see_is_not_found(github_clients, fake_github):
    other = fake_github.add_repo("acme", "tools", files={"a.py": "x\n"}, installation_id=2)
    api = github_clients.api(1, "acme", "tools")  # installation 1 cannot see it
    entry = FileEntry("a.py", "added", "@@ -0,0 +1 @@\n+x", None, git_blob_sha(b"x\n"))
    with pytest.raises(NotFound, match="Could not resolve to a Repository"):
        run(api.head_contents(other.branches["main"], [entry]))


# ------------------------------------------------------- rate limits and retries


@pytest.mark.parametrize("error_type", ["RATE_LIMITED", "RATE_LIMIT"])
def test_graphql_rate_limit_waits_until_reset(
    github_clients, fake_github, fake_clock, make_pr, error_type
):
    make_pr({}, {"a.py": "a = 1\n"})
    fault = Fault.graphql_rate_limit(reset=fake_clock.now + 30, error_type=error_type)
    fake_github.fail("graphql", fault)
    api = api_for(github_clients)
    result = fetch(api)
    assert result.changes[0].head == b"a = 1\n"
    assert fake_clock.sleeps == [31.0] and api.waited == 31.0
    assert api.calls[GRAPHQL] == 3  # sizes (limited, then again), text
    assert fake_github.calls_to("git.blob") == []


def test_long_graphql_rate_limit_hands_back_retry_at(
    github_clients, fake_github, fake_clock, make_pr
):
    make_pr({}, {"a.py": "a = 1\n"})
    reset = fake_clock.now + 1_800
    fake_github.fail("graphql", Fault.graphql_rate_limit(reset=reset))
    api = api_for(github_clients)
    with pytest.raises(GitHubUnavailable) as caught:
        fetch(api)
    assert caught.value.retry_at == reset + 1 and fake_clock.sleeps == []
    assert "API rate limit already exceeded" in str(caught.value)
    assert caught.value.route == GRAPHQL


def test_graphql_secondary_rate_limit_and_server_errors_are_retried(
    github_clients, fake_github, fake_clock, make_pr
):
    make_pr({}, {"a.py": "a = 1\n"})
    fake_github.fail("graphql", Fault.secondary_rate_limit(retry_after=5), Fault.server_error(502))
    api = api_for(github_clients)
    assert fetch(api).changes[0].head == b"a = 1\n"
    assert fake_clock.sleeps == [5.0, 2.0]  # retry-after, then the backoff of a 2nd retry
    assert api.calls[GRAPHQL] == 4  # sizes three times, then text


def test_graphql_401_gets_a_new_token_once(github_clients, fake_github, make_pr):
    pr = make_pr({}, {"a.py": "a = 1\n"})
    api = api_for(github_clients)
    run(api.get_pull(1))  # a token is cached
    fake_github.expire_tokens()  # GitHub stops accepting it
    entry = FileEntry("a.py", "added", "@@ -0,0 +1 @@\n+a = 1", None, git_blob_sha(b"a = 1\n"))
    assert run(api.head_contents(pr.head_sha, [entry])).contents == {"a.py": b"a = 1\n"}
    assert fake_github.token_requests == 2
    assert api.calls[GRAPHQL] == 3  # sizes (401, then with a new token), text


def test_graphql_queries_are_reads_for_the_pacer():
    def request(method: str, url: str, body: Any = None) -> httpx.Request:
        return httpx.Request(method, url, json=body)

    graphql = "https://api.github.com/graphql"
    assert not is_write(request("POST", graphql, {"query": "query Q { viewer { login } }"}))
    assert not is_write(request("POST", graphql, {"query": "# hi\n  { viewer { login } }"}))
    assert not is_write(request("POST", "https://ghe.example/api/graphql", {"query": "query{a}"}))
    assert is_write(request("POST", graphql, {"query": "mutation M { addStar { x } }"}))
    assert is_write(request("POST", graphql, {"query": "#c\nmutation { x }"}))
    assert is_write(request("POST", graphql, {"nope": 1}))
    assert is_write(request("POST", "https://api.github.com/repos/o/r/check-runs", {}))
    assert not is_write(request("GET", "https://api.github.com/repos/o/r"))


def test_graphql_reads_are_not_paced_behind_writes(
    fake_github, github_settings, fake_clock, make_pr
):
    pr = make_pr({}, {"a.py": "a = 1\n"})
    app = make_app_github(
        github_settings, async_transport=httpx.ASGITransport(app=fake_github.app), clock=fake_clock
    )
    api = InstallationClients(app, clock=fake_clock).api(1, OWNER, REPO)

    async def go() -> None:
        pull = await api.get_pull(1)
        await api.create_check_run(pr.head_sha, external_id="x")
        await api.fetch_changes(pull)  # right after a write: no 1 s pause

    run(go())
    assert fake_clock.sleeps == []


# -------------------------------------------------------------- GHES endpoint


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://api.github.com/", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/graphql"),
    ],
)
def test_graphql_url(api_url, expected, github_settings):
    assert graphql_url(api_url) == expected
    # githubkit's own GraphQL support agrees (relative to the client's base URL).
    settings = github_settings.model_copy(update={"github_api_url": api_url.rstrip("/")})
    client = make_app_github(settings)
    endpoint = client.graphql._get_graphql_endpoint()
    assert str(client.config.base_url.join(endpoint)) == expected


def test_enterprise_server_graphql_endpoint(rsa_private_key, private_key_pem, fake_clock):
    fake = FakeGitHub(rsa_private_key.public_key(), prefix="/api/v3")
    repo = fake.add_repo(OWNER, REPO)
    fake.add_pull(repo, 1, {}, {"a.py": "a = 1\n"})
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_api_url="https://ghe.example.com/api/v3",
    )
    app = make_app_github(
        settings, async_transport=httpx.ASGITransport(app=fake.app), clock=fake_clock
    )
    api = InstallationClients(app, clock=fake_clock).api(1, OWNER, REPO)
    assert api.graphql_url == "https://ghe.example.com/api/graphql"
    assert fetch(api).changes[0].head == b"a = 1\n"
    assert fake.errors == []
    assert [c.path for c in fake.calls] == [
        "/api/v3/app/installations/1/access_tokens",
        "/api/v3/repos/octo/demo/pulls/1",
        "/api/v3/repos/octo/demo/pulls/1/files",
        "/api/graphql",
        "/api/graphql",
    ]


# ----------------------------------------------------------- the fake's GraphQL


def post_graphql(fake: FakeGitHub, body: Any, token: str | None = "valid") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=fake.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.github.com") as c:
            return await c.post(
                "/graphql",
                content=json.dumps(body),
                headers={"Authorization": f"bearer {token}"} if token else {},
            )

    return run(go())


@pytest.fixture
def token(fake_github) -> str:
    fake_github.tokens["ghs_test"] = (1, float("inf"))
    return "ghs_test"


def test_fake_graphql_answers_in_githubs_shapes(fake_github, make_pr, token):
    pr = make_pr({}, {"pkg/a.py": "a = 1\n", "bin.py": b"\x00x"})
    query = (
        """
      # a comment
      query Q($owner: String!, $name: String!, $a: String!, $missing: String!, $dir: String!) {
        repo: repository(owner: $owner, name: $name) {
          __typename
          nameWithOwner
          a: object(expression: $a) { __typename ...blob }
          bin: object(expression: "HEAD_SHA:bin.py") { ... on Blob { isBinary text byteSize } }
          missing: object(expression: $missing) { ... on Blob { text } }
          dir: object(expression: $dir) { __typename ... on Blob { text } }
        }
      }
      fragment blob on Blob { oid byteSize isBinary isTruncated text }
    """
    ).replace("HEAD_SHA", pr.head_sha)
    variables = {
        "owner": OWNER,
        "name": REPO,
        "a": f"{pr.head_sha}:pkg/a.py",
        "missing": f"{pr.head_sha}:nope.py",
        "dir": "feature-1:pkg",
    }
    response = post_graphql(fake_github, {"query": query, "variables": variables}, token)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-resource"] == "graphql"
    assert response.json() == {
        "data": {
            "repo": {
                "__typename": "Repository",
                "nameWithOwner": "octo/demo",
                "a": {
                    "__typename": "Blob",
                    "oid": git_blob_sha(b"a = 1\n"),
                    "byteSize": 6,
                    "isBinary": False,
                    "isTruncated": False,
                    "text": "a = 1\n",
                },
                "bin": {"isBinary": True, "text": None, "byteSize": 2},
                "missing": None,
                "dir": {"__typename": "Tree"},
            }
        }
    }
    assert GraphQLResponse.model_validate(response.json()).errors is None


def test_fake_graphql_errors_look_like_githubs(fake_github, make_pr, token):
    make_pr({}, {"a.py": "a = 1\n"})
    query = "query Q($owner: String!, $name: String!) {\n  repository(owner: $owner, name: $name) { name }\n}"
    hidden = post_graphql(
        fake_github, {"query": query, "variables": {"owner": "acme", "name": "x"}}, token
    )
    assert hidden.status_code == 200
    assert hidden.json() == {
        "data": {"repository": None},
        "errors": [
            {
                "type": "NOT_FOUND",
                "path": ["repository"],
                "locations": [{"line": 2, "column": 3}],
                "message": "Could not resolve to a Repository with the name 'acme/x'.",
            }
        ],
    }
    bad_vars = post_graphql(
        fake_github,
        {
            "query": "query Q($owner: String!, $x: Int) { repository(owner: $owner, name: $name) { name } }",
            "variables": {"owner": None},
        },
        token,
    ).json()
    assert "data" not in bad_vars
    assert [e["message"] for e in bad_vars["errors"]] == [
        "Variable $name is used by Q but not declared",
        "Variable $x is declared by Q but not used",
        "Variable $owner of type String! was provided invalid value",
    ]
    assert GraphQLResponse.model_validate(bad_vars).errors
    unauthorized = post_graphql(fake_github, {"query": query}, token=None)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["message"] == "Bad credentials"


def test_fake_graphql_refuses_what_it_cannot_answer(fake_github, token):
    response = post_graphql(fake_github, {"query": "{ viewer { login } }"}, token)
    assert response.status_code == 500
    assert fake_github.errors == ["POST /graphql: _CannotHandle: field Query.viewer"]
    fake_github.errors.clear()
