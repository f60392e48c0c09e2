"""bot.runtime.github against the fake GitHub: auth, reads, writes, pacing, retries, payloads."""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from githubkit import GitHub
from githubkit.cache import AsyncBaseCache, BaseCache, MemCacheStrategy
from githubkit.exception import RequestFailed

from bot.config import Settings
from bot.docstrings.diff import parse_patch
from bot.docstrings.models import Action, Suggestion
from bot.docstrings.render import review_comment
from bot.runtime import events
from bot.runtime.github.client import InstallationClients, PullRequestAPI
from bot.runtime.github.connection import make_app_github, shared_ssl_context
from bot.runtime.github.errors import (
    Forbidden,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    Unauthorized,
)
from bot.runtime.github.payloads import (
    GENERATE_ACTION,
    CheckRunAction,
    ReviewComment,
    check_run_create_payload,
    check_run_output,
    check_run_update_payloads,
    review_payload,
)
from bot.runtime.github.pulls import is_own_comment
from bot.runtime.github.sansio import API_VERSION
from tests.conftest import OWNER, REPO, FakeClock
from tests.fake_github import APP_ID, FakeGitHub, Fault

run = asyncio.run


def api_for(clients: InstallationClients, installation: int = 1) -> PullRequestAPI:
    return clients.api(installation, OWNER, REPO)


def module(n_funcs: int, prefix: str = "f") -> str:
    return "".join(f"def {prefix}{i}(x):\n    return x + {i}\n\n\n" for i in range(n_funcs))


class StampTransport(httpx.AsyncBaseTransport):
    """ASGI transport that notes (method, path, fake time) of every request."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.clock = clock
        self.log: list[tuple[str, str, float]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append((request.method, request.url.path, self.clock.now))
        return await self.inner.handle_async_request(request)


class ClockedCache(AsyncBaseCache, BaseCache):
    """githubkit's token cache, on the fake clock (MemCache reads the real one)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.items: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        value, expires = self.items.get(key, ("", 0.0))
        return value if value and expires > self.clock.now else None

    def set(self, key: str, value: str, ex: timedelta) -> None:
        self.items[key] = (value, self.clock.now + ex.total_seconds())

    async def aget(self, key: str) -> str | None:
        return self.get(key)

    async def aset(self, key: str, value: str, ex: timedelta) -> None:
        self.set(key, value, ex)


class ClockedCacheStrategy(MemCacheStrategy):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.cache = ClockedCache(clock)

    def get_cache_storage(self) -> ClockedCache:  # type: ignore[override]
        return self.cache

    async def get_async_cache_storage(self) -> ClockedCache:  # type: ignore[override]
        return self.cache


# ------------------------------------------------------------------------- auth


def test_jwt_exchanged_for_an_installation_token_once(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})

    async def go() -> None:
        for _ in range(3):
            await api_for(github_clients).get_pull(1)  # new API objects, same installation
        await api_for(github_clients).list_files(1)

    run(go())
    assert fake_github.token_requests == 1
    (token_call,) = fake_github.calls_to("tokens.create")
    scheme, _, credential = token_call.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(credential, options={"verify_signature": False})
    assert claims["iss"] == str(APP_ID)
    assert 0 < claims["exp"] - claims["iat"] <= 600
    (token,) = fake_github.tokens
    others = [c for c in fake_github.calls if c.route != "tokens.create"]
    assert len(others) == 4
    assert {c.headers["authorization"] for c in others} == {f"token {token}"}
    assert {c.headers["x-github-api-version"] for c in others} == {API_VERSION}


def test_token_reissued_after_it_expires(fake_github, github_settings, fake_clock, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    app = make_app_github(
        github_settings, async_transport=httpx.ASGITransport(app=fake_github.app), clock=fake_clock
    )
    clients = InstallationClients(
        app, clock=fake_clock, cache_factory=lambda: ClockedCacheStrategy(fake_clock)
    )
    api = api_for(clients)
    run(api.get_pull(1))
    fake_clock.advance(3_000)  # a 1-hour token is still good
    run(api.get_pull(1))
    assert fake_github.token_requests == 1
    fake_clock.advance(600)  # githubkit drops it a minute before expires_at
    run(api.get_pull(1))
    assert fake_github.token_requests == 2


def test_token_expiring_within_a_minute_is_not_reused(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    fake_github.token_ttl = 30
    api = api_for(github_clients)
    run(api.get_pull(1))
    run(api.get_pull(1))
    assert fake_github.token_requests == 2


def test_installations_have_their_own_tokens_and_forget(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    other = fake_github.add_repo("acme", "tools", installation_id=2)
    fake_github.add_pull(other, 7, {"b.py": ""}, {"b.py": "y = 1\n"})
    run(api_for(github_clients).get_pull(1))
    run(github_clients.api(2, "acme", "tools").get_pull(7))
    assert fake_github.token_requests == 2
    assert len(github_clients) == 2
    # Installation 1 cannot read installation 2's repository, as on GitHub.
    with pytest.raises(NotFound):
        run(github_clients.api(1, "acme", "tools").get_pull(7))

    github_clients.forget(1)
    assert 1 not in github_clients and 2 in github_clients
    run(api_for(github_clients).get_pull(1))
    run(github_clients.api(2, "acme", "tools").get_pull(7))
    assert fake_github.token_requests == 3


def test_a_key_github_does_not_know_is_unauthorized(fake_github, fake_clock, make_pr):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    settings = Settings(github_app_id=APP_ID, github_private_key=pem)
    app = make_app_github(
        settings, async_transport=httpx.ASGITransport(app=fake_github.app), clock=fake_clock
    )
    with pytest.raises(Unauthorized) as caught:
        run(InstallationClients(app, clock=fake_clock).api(1, OWNER, REPO).get_pull(1))
    assert caught.value.status == 401
    assert "could not be decoded" in str(caught.value)
    assert fake_clock.sleeps == []  # no backoff; one fresh JWT, then give up
    assert fake_github.token_requests == 2


@pytest.mark.parametrize(
    ("app_id", "key", "message"),
    [
        (None, "irrelevant", "GITHUB_APP_ID"),
        (APP_ID, None, "GITHUB_PRIVATE_KEY"),
        (APP_ID, "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END", "not a PEM"),
    ],
    ids=["no-app-id", "no-key", "garbage-key"],
)
def test_app_settings_are_checked_up_front(app_id, key, message):
    settings = Settings(github_app_id=app_id, github_private_key=key)
    with pytest.raises(ValueError, match=message) as caught:
        make_app_github(settings)
    assert "c2VjcmV0LWJ5dGVz" not in str(caught.value)


def test_enterprise_server_base_url(rsa_private_key, private_key_pem, fake_clock):
    fake = FakeGitHub(rsa_private_key.public_key(), prefix="/api/v3")
    repo = fake.add_repo(OWNER, REPO)
    fake.add_pull(repo, 1, {}, {f"m{i}.py": f"x = {i}\n" for i in range(120)})
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=private_key_pem,
        github_api_url="https://ghe.example.com/api/v3/",  # the trailing / is dropped
    )
    assert settings.github_api_url == "https://ghe.example.com/api/v3"
    app = make_app_github(
        settings, async_transport=httpx.ASGITransport(app=fake.app), clock=fake_clock
    )
    api = InstallationClients(app, clock=fake_clock).api(1, OWNER, REPO)
    pull = run(api.get_pull(1))
    files = run(api.list_files(1))  # page 2 comes from the Link header, under /api/v3
    assert pull.number == 1 and len(files) == 120
    assert fake.errors == []
    assert [c.path for c in fake.calls] == [
        "/api/v3/app/installations/1/access_tokens",
        "/api/v3/repos/octo/demo/pulls/1",
        "/api/v3/repos/octo/demo/pulls/1/files",
        "/api/v3/repos/octo/demo/pulls/1/files",
    ]


def test_unpaced_clients_are_wrapped(fake_github, github_settings, fake_clock, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    app = make_app_github(github_settings)
    plain = GitHub(
        app.auth.as_installation(1), async_transport=httpx.ASGITransport(app=fake_github.app)
    )
    assert plain.config.auto_retry is not None  # githubkit's default
    api = PullRequestAPI(plain, OWNER, REPO, clock=fake_clock)
    fake_github.fail("pulls.get", Fault.server_error())
    assert run(api.get_pull(1)).number == 1
    assert fake_clock.sleeps == [1.0]  # our retry on the fake clock, not githubkit's


# -------------------------------------------------------- one HTTP client per job


def test_a_job_sends_every_request_through_one_client(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    gh = github_clients.client(1)
    api = api_for(github_clients)

    async def job() -> None:
        async with api:
            await api.get_pull(1)
            await api.list_files(1)
            shared = gh.shared_client
            assert shared is not None
            # A second API of the installation in the same time (another job) shares it.
            async with api_for(github_clients) as other:
                await other.get_pull(1)
                assert gh.shared_client is shared
        assert shared.is_closed and gh.shared_client is None  # the last holder closed it

    run(job())
    assert gh.clients_created == 1
    assert len(fake_github.calls) == 4  # token + three reads, all through that client

    run(api.get_pull(1))  # outside a job: githubkit's client per request
    run(api.get_pull(1))
    assert gh.clients_created == 3


def test_forget_closes_the_installation_client(github_clients, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    gh = github_clients.client(1)
    api = api_for(github_clients)

    async def job() -> None:
        async with api:
            await api.get_pull(1)
            shared = gh.shared_client
            assert shared is not None and not shared.is_closed
            github_clients.forget(1)  # from the webhook handler, synchronously
            assert 1 not in github_clients
            await asyncio.sleep(0)  # the scheduled close runs
            assert shared.is_closed and gh.shared_client is None
            assert (await api.get_pull(1)).number == 1  # the running job still works

    run(job())


def test_aclose_closes_every_installation_client(github_clients, fake_github, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    other = fake_github.add_repo("acme", "tools", installation_id=2)
    fake_github.add_pull(other, 7, {}, {"b.py": "y\n"})

    async def go() -> list[httpx.AsyncClient | None]:
        one, two = api_for(github_clients), github_clients.api(2, "acme", "tools")
        await one.__aenter__()
        await two.__aenter__()
        await one.get_pull(1)
        await two.get_pull(7)
        shared = [github_clients.client(i).shared_client for i in (1, 2)]
        await github_clients.aclose()
        await one.__aexit__(None, None, None)
        await two.__aexit__(None, None, None)
        return shared

    shared = run(go())
    assert all(c is not None and c.is_closed for c in shared)


def test_every_client_shares_one_ssl_context(github_settings, monkeypatch):
    context = shared_ssl_context()
    loads = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    clients = InstallationClients(make_app_github(github_settings))

    async def go() -> None:
        for installation in (1, 2):
            gh = clients.client(installation)
            assert gh.config.ssl_verify is context
            async with gh.pooled():
                assert gh.shared_client is not None

    run(go())
    assert loads == []  # no CA bundle loaded per client


# ------------------------------------------------------------------------ reads


def test_get_pull_fields(github_clients, make_pr):
    pr = make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"}, title="Docs", draft=True)
    pull = run(api_for(github_clients).get_pull(1))
    assert pull.number == 1 and pull.state == "open" and pull.draft
    assert (pull.head_sha, pull.base_sha) == (pr.head_sha, pr.base_sha)
    assert (pull.base_ref, pull.head_ref) == ("main", "feature-1")
    assert pull.head_repo_full_name == pull.base_repo_full_name == "octo/demo"
    assert (pull.author_login, pull.title, pull.changed_files) == ("octocat", "Docs", 1)
    assert not pull.is_fork


def test_fork_pull(github_clients, make_pr):
    make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"}, head_repo="someone/demo")
    pull = run(api_for(github_clients).get_pull(1))
    assert pull.head_repo_full_name == "someone/demo" and pull.is_fork


def test_list_files_paginates_100_per_page(github_clients, fake_github, make_pr):
    head = {f"pkg/m{i:03}.py": f"x = {i}\n" for i in range(250)}
    make_pr({}, head)
    api = api_for(github_clients)
    files = run(api.list_files(1))
    assert [f.filename for f in files] == sorted(head)
    assert files[0].status == "added" and files[0].patch == "@@ -0,0 +1 @@\n+x = 0"
    assert (files[0].additions, files[0].deletions) == (1, 0)
    pages = fake_github.calls_to("pulls.files")
    assert [c.query for c in pages] == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]
    assert api.calls["GET /repos/{owner}/{repo}/pulls/{pull_number}/files"] == 3


def test_github_lists_at_most_3000_files(github_clients, fake_github, make_pr):
    make_pr({}, {f"f{i:04}.txt": "x\n" for i in range(3_005)})
    api = api_for(github_clients)
    changes = run(api.fetch_changes(run(api.get_pull(1)), wanted=lambda path: False))
    assert len(changes.changes) == 3_000
    assert changes.pull.changed_files == 3_005
    assert changes.notes == [
        "GitHub lists only 3,000 of the 3,005 changed files; the others were not reviewed"
    ]
    assert len(fake_github.calls_to("pulls.files")) == 30
    assert fake_github.calls_to("graphql") == []  # nothing wanted, nothing read


def test_large_file_falls_back_to_the_blob(github_clients, fake_github, make_pr):
    big = ("# " + "x" * 97 + "\n").encode() * 11_000  # 1.1 MB
    pr = make_pr({"big.py": b""}, {"big.py": big})
    api = api_for(github_clients)
    assert run(api.get_file("big.py", pr.head_sha)) == big
    (contents,) = fake_github.calls_to("repos.contents")
    assert contents.headers["accept"] == "application/vnd.github.object+json"
    assert len(fake_github.calls_to("git.blob")) == 1


def test_missing_file_and_directory_are_none(github_clients, fake_github, make_pr):
    pr = make_pr({"pkg/a.py": "x = 1\n"}, {"pkg/a.py": "x = 2\n"})
    api = api_for(github_clients)
    assert run(api.get_file("nope.py", pr.head_sha)) is None
    assert run(api.get_file("pkg", pr.head_sha)) is None
    assert run(api.get_file("pkg/a.py", pr.base_sha)) == b"x = 1\n"
    assert run(api.get_file("pkg/a.py", None)) == b"x = 1\n"  # default branch


def test_paths_are_quoted(github_clients, make_pr):
    pr = make_pr({}, {"docs/a b#c?.py": "x = 1\n", "ünï.py": "y = 2\n", "#1.py": "z\n"})
    api = api_for(github_clients)
    assert run(api.get_file("docs/a b#c?.py", pr.head_sha)) == b"x = 1\n"
    assert run(api.get_file("ünï.py", pr.head_sha)) == b"y = 2\n"
    # '?' and '#' go through the directory listing (githubkit's App auth cannot route them)
    assert run(api.get_file("#1.py", pr.head_sha)) == b"z\n"
    assert run(api.get_file("docs/none#.py", pr.head_sha)) is None


def test_fetch_changes(github_clients, fake_github, make_pr):
    base = {"keep.py": "a = 1\n", "gone.py": "b = 2\n", "old.py": "c = 3\n", "img.png": b"\x89P"}
    head = {
        "keep.py": "a = 1\n\n\ndef f():\n    return a\n",
        "new.py": "d = 4\n",
        "moved.py": "c = 3\n",
        "img.png": b"\x89PNG\0",
    }
    pr = make_pr(base, head, renames={"moved.py": "old.py"})
    api = api_for(github_clients)
    pull = run(api.get_pull(1))
    result = run(api.fetch_changes(pull, wanted=lambda p: p.endswith(".py")))
    assert result.pull is pull
    by_path = {c.path: c for c in result.changes}
    assert sorted(by_path) == ["gone.py", "img.png", "keep.py", "moved.py", "new.py"]
    assert by_path["keep.py"].head == head["keep.py"].encode()
    assert parse_patch(by_path["keep.py"].patch)[0].added == frozenset({2, 3, 4, 5})
    assert (by_path["gone.py"].status, by_path["gone.py"].head) == ("removed", None)
    assert by_path["moved.py"].previous_path == "old.py"
    assert by_path["moved.py"].status == "renamed" and by_path["moved.py"].patch is None
    assert by_path["img.png"].patch is None and by_path["img.png"].head is None  # not wanted
    assert by_path["moved.py"].head is None  # a rename without a patch: nothing to read
    assert result.notes == []
    # One PR read (the caller's), one page of files, one GraphQL query for the sizes of
    # the two wanted heads with a patch, one for their text; no blob or contents request.
    assert [c.route for c in fake_github.calls if c.route != "tokens.create"] == [
        "pulls.get",
        "pulls.files",
        "graphql",
        "graphql",
    ]
    assert fake_github.graphql_objects == [
        f"{pr.head_sha}:{path}" for path in ("keep.py", "new.py")
    ]
    assert fake_github.bytes_served == len(head["keep.py"]) + len(head["new.py"])


CONFIG = b"budget: 5000\n"


@pytest.mark.parametrize(
    ("repo_base", "repo_head", "org_files", "expected"),
    [
        ({".github/docgen.yml": CONFIG}, {}, None, (CONFIG, ".github/docgen.yml")),
        ({".github/docgen.yaml": CONFIG}, {}, None, (CONFIG, ".github/docgen.yaml")),
        (
            {},
            {".github/docgen.yml": b"budget: 999999\n"},
            {".github/docgen.yml": CONFIG},
            (CONFIG, "octo/.github:.github/docgen.yml"),
        ),
        ({}, {}, {"docgen.yml": CONFIG}, (CONFIG, "octo/.github:docgen.yml")),
        ({}, {}, {"README.md": "hi"}, (None, "defaults")),
        ({}, {".github/docgen.yml": b"budget: 999999\n"}, None, (None, "defaults")),
    ],
    ids=["repo-yml", "repo-yaml", "head-ignored-org-used", "org-root", "org-empty", "no-org"],
)
def test_config_fallback_chain(
    github_clients, fake_github, make_pr, repo_base, repo_head, org_files, expected
):
    base = {"a.py": "x = 1\n", **repo_base}
    head = {"a.py": "x = 2\n", **repo_base, **repo_head}
    make_pr(base, head)
    if org_files is not None:
        fake_github.add_repo(OWNER, ".github", files=org_files)
    assert run(api_for(github_clients).get_config(OWNER)) == expected


def test_config_is_the_default_branchs_whatever_the_pr_targets(
    github_clients, fake_github, make_pr
):
    """A PR author picks the base branch: an old branch's config must not apply."""
    repo = fake_github.repo(f"{OWNER}/{REPO}")
    fake_github.add_commit(repo, {".github/docgen.yml": CONFIG}, branch="main")
    old = b"budget: 999999\nauto_run: true\n"
    pr = make_pr({"a.py": "x\n", ".github/docgen.yml": old}, {"a.py": "y\n"}, base_ref="v1")
    assert pr.base_ref == "v1" and repo.branches["main"] != pr.base_sha
    assert run(api_for(github_clients).get_config(OWNER)) == (CONFIG, ".github/docgen.yml")
    # Read without a ref: GitHub's contents API then answers from the default branch.
    assert all("ref" not in c.query for c in fake_github.calls_to("repos.contents"))


# ------------------------------------------------------------------- check runs


def annotation(i: int) -> dict[str, Any]:
    return {
        "path": "a.py",
        "start_line": i + 1,
        "end_line": i + 1,
        "annotation_level": "notice",
        "title": f"Missing docstring: f{i}",
        "message": f"f{i} has no docstring",
    }


def test_check_run_created_then_completed_with_120_annotations(
    github_clients, fake_github, fake_clock, make_pr
):
    pr = make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    api = api_for(github_clients)
    run_id = run(api.create_check_run(pr.head_sha, external_id="delivery-1"))
    check = fake_github.repo("octo/demo").check_runs[run_id]
    assert (check.name, check.status, check.external_id) == ("docgen", "in_progress", "delivery-1")
    assert check.started_at == "2023-11-14T22:13:20Z"  # the fake clock's 1_700_000_000

    patches = run(
        api.complete_check_run(
            run_id,
            conclusion="success",
            title="docgen: 3 added",
            summary="### done\n",
            annotations=[annotation(i) for i in range(120)],
            actions=[GENERATE_ACTION],
        )
    )
    assert patches == 3
    bodies = [c.json for c in fake_github.calls_to("checks.update")]
    assert [len(b["output"].get("annotations", [])) for b in bodies] == [50, 50, 20]
    assert bodies[0]["conclusion"] == "success" and "conclusion" not in bodies[1]
    assert check.status == "completed" and check.conclusion == "success"
    assert [a["start_line"] for a in check.annotations] == list(range(1, 121))
    assert check.actions == [GENERATE_ACTION.payload()]
    assert check.summary == "### done\n"


def test_summary_is_capped_at_github_limit(github_clients, fake_github, make_pr):
    pr = make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    api = api_for(github_clients)
    run_id = run(api.create_check_run(pr.head_sha, external_id="d"))
    run(api.complete_check_run(run_id, conclusion="neutral", title="t", summary="x" * 70_000))
    summary = fake_github.repo("octo/demo").check_runs[run_id].summary
    # "…" is three bytes: 65,533 characters make GitHub's 65,535 bytes.
    assert len(summary.encode("utf-8")) == 65_535
    assert summary.endswith("*… truncated (GitHub's size limit)*")


def test_multibyte_summary_and_text_are_capped_in_bytes(github_clients, fake_github, make_pr):
    """30,000 "—" are 30,000 characters but 90,000 bytes: GitHub counts the bytes."""
    pr = make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    api = api_for(github_clients)
    run_id = run(api.create_check_run(pr.head_sha, external_id="d"))
    big = "— 📝 " * 10_000
    run(
        api.complete_check_run(
            run_id, conclusion="neutral", title="t", summary=big, text=big, annotations=[]
        )
    )
    check = fake_github.repo("octo/demo").check_runs[run_id]
    for value in (check.summary, check.text):
        assert 65_535 - 4 < len(value.encode("utf-8")) <= 65_535
        assert value.endswith("*… truncated (GitHub's size limit)*")
        assert big.startswith(value[: -len("\n\n*… truncated (GitHub's size limit)*")])


@pytest.mark.parametrize("field", ["summary", "text"])
def test_fake_refuses_output_over_65535_bytes_as_github_does(github_clients, make_pr, field):
    """GitHub's answer, recorded in https://github.com/github/docs/issues/35252."""
    pr = make_pr({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    rest = github_clients.client(1).rest
    h = {"X-GitHub-Api-Version": API_VERSION}
    at_limit = "—" * 21_845  # 65,535 bytes in 21,845 characters

    async def update(value: str) -> Any:
        check = await rest.checks.async_create(
            OWNER, REPO, data={"name": "docgen", "head_sha": pr.head_sha}, headers=h
        )
        output = {"title": "t", "summary": "s", field: value}
        return await rest.checks.async_update(
            OWNER, REPO, check.parsed_data.id, data={"output": output}, headers=h
        )

    assert run(update(at_limit)).status_code == 200
    with pytest.raises(RequestFailed) as refused:
        run(update(at_limit + "x"))
    assert refused.value.response.status_code == 422
    assert refused.value.response.json()["errors"] == [
        {
            "resource": "CheckRun",
            "code": "custom",
            "field": field,
            "message": f"{field} exceeds a maximum bytesize of 65535",
        }
    ]


def test_check_run_payloads():
    assert check_run_create_payload(
        "abc123", external_id="d-1", started_at="2026-01-01T00:00:00Z", actions=[GENERATE_ACTION]
    ) == {
        "name": "docgen",
        "head_sha": "abc123",
        "status": "in_progress",
        "started_at": "2026-01-01T00:00:00Z",
        "external_id": "d-1",
        "output": {
            "title": "docgen is writing docstrings",
            "summary": "Reading the changed files of this pull request…",
        },
        "actions": [
            {
                "label": "Generate docstrings",
                "description": "Suggest docstrings for this PR",
                "identifier": "generate",
            }
        ],
    }
    notes = [annotation(i) for i in range(51)]
    assert check_run_update_payloads(
        conclusion="failure",
        title="T",
        summary="S",
        annotations=notes,
        text="details",
        completed_at="2026-01-01T00:01:00Z",
    ) == [
        {
            "status": "completed",
            "conclusion": "failure",
            "completed_at": "2026-01-01T00:01:00Z",
            "output": {"title": "T", "summary": "S", "text": "details", "annotations": notes[:50]},
        },
        {"output": {"title": "T", "summary": "S", "text": "details", "annotations": notes[50:]}},
    ]
    assert check_run_output("T", "S") == {"title": "T", "summary": "S"}
    with pytest.raises(ValueError, match="50 annotations"):
        check_run_output("T", "S", notes)
    with pytest.raises(ValueError, match="details_url"):
        check_run_update_payloads(
            conclusion="action_required", title="T", summary="S", completed_at="x"
        )


def test_generate_action_matches_events():
    assert GENERATE_ACTION.identifier == events.ACTION_IDENTIFIER
    with pytest.raises(ValueError, match="label"):
        CheckRunAction("Generate all the docstrings", "d", "generate")
    with pytest.raises(ValueError, match="description"):
        CheckRunAction("Go", "x" * 41, "generate")


# ---------------------------------------------------------------------- reviews


def test_review_payload():
    comments = [
        ReviewComment("a.py", "one", 4),
        ReviewComment("b.py", "many", 9, start_line=7),
        ReviewComment("c.py", "same line", 3, start_line=3),
    ]
    assert review_payload("sha1", comments, body="B") == {
        "commit_id": "sha1",
        "event": "COMMENT",
        "body": "B",
        "comments": [
            {"path": "a.py", "body": "one", "line": 4, "side": "RIGHT"},
            {
                "path": "b.py",
                "body": "many",
                "line": 9,
                "side": "RIGHT",
                "start_line": 7,
                "start_side": "RIGHT",
            },
            {"path": "c.py", "body": "same line", "line": 3, "side": "RIGHT"},
        ],
    }
    assert review_payload("s", comments[:1])["body"] == (
        "📝 docgen suggests a docstring. Commit the suggestions you want to keep."
    )


def test_review_comment_from_suggestion():
    one = Suggestion("a.py", 3, 3, ('    """Doc."""',), "a.py::f@3", "h1")
    many = Suggestion("a.py", 3, 5, ("x", "y", "z"), "a.py::f@3", "h1")
    assert ReviewComment.from_suggestion(one, "B") == ReviewComment("a.py", "B", 3, None)
    assert ReviewComment.from_suggestion(many, "B") == ReviewComment("a.py", "B", 5, 3)


def suggestion_body(target_id: str, line: int) -> str:
    s = Suggestion("mod.py", line, line, (f"def f{line}(x):",), target_id, f"h{line}")
    return review_comment.suggestion_comment(s, offline=True, action=Action.ADDED)


def two_hunk_pr(make_pr: Callable[..., Any]) -> Any:
    """mod.py with changes near line 3 and near line 40: lines 20-30 are outside the diff."""
    base = [f"x{i} = {i}\n" for i in range(1, 51)]
    head = list(base)
    head[2] = "x3 = 'three'\n"
    head[39] = "x40 = 'forty'\n"
    return make_pr({"mod.py": "".join(base)}, {"mod.py": "".join(head)})


def test_review_is_one_submitted_review(github_clients, fake_github, make_pr):
    pr = two_hunk_pr(make_pr)
    comments = [
        ReviewComment("mod.py", suggestion_body("mod.py::a@3", 3), 3),
        ReviewComment("mod.py", suggestion_body("mod.py::b@5", 5), 5, start_line=2),
        ReviewComment("mod.py", suggestion_body("mod.py::c@40", 40), 40),
    ]
    result = run(api_for(github_clients).create_review(1, pr.head_sha, comments))
    assert result.posted == comments and result.rejected == []
    (review,) = fake_github.repo("octo/demo").pulls[1].reviews
    assert review["state"] == "COMMENTED" and result.review_id == review["id"]
    assert len(fake_github.calls_to("reviews.create")) == 1
    stored = fake_github.repo("octo/demo").pulls[1].comments
    assert [(c["start_line"], c["line"]) for c in stored] == [(None, 3), (2, 5), (None, 40)]
    assert stored[0]["diff_hunk"].startswith("@@ -1,6 +1,6 @@") and stored[0]["diff_hunk"].endswith(
        "+x3 = 'three'"
    )


def test_review_bisects_around_lines_outside_the_diff(github_clients, fake_github, make_pr):
    pr = two_hunk_pr(make_pr)
    lines = [3, 25, 40, 20, 5]  # 25 and 20 are outside both hunks
    comments = [ReviewComment("mod.py", suggestion_body(f"t{n}", n), n) for n in lines]
    result = run(api_for(github_clients).create_review(1, pr.head_sha, comments))
    assert [c.line for c in result.posted] == [3, 40, 5]
    assert [(c.line, reason) for c, reason in result.rejected] == [
        (25, "pull_request_review_thread.line must be part of the diff"),
        (20, "pull_request_review_thread.line must be part of the diff"),
    ]
    reviews = fake_github.repo("octo/demo").pulls[1].reviews
    assert [r["state"] for r in reviews] == ["COMMENTED"] * 3  # never PENDING
    assert result.review_ids == [r["id"] for r in reviews]
    # [3 25 40 20 5] → [3 25] → [3] [25] ; [40 20 5] → [40] ; [20 5] → [20] [5]
    assert len(fake_github.calls_to("reviews.create")) == 9
    assert len(fake_github.repo("octo/demo").pulls[1].comments) == 3


def test_multiline_comment_across_hunks_is_rejected(github_clients, fake_github, make_pr):
    pr = two_hunk_pr(make_pr)
    comment = ReviewComment("mod.py", "body", 40, start_line=3)
    result = run(api_for(github_clients).create_review(1, pr.head_sha, [comment]))
    assert result.posted == []
    assert result.rejected == [
        (
            comment,
            "pull_request_review_thread.start_line must be part of the same hunk as the line.",
        )
    ]


def test_no_comments_no_request(github_clients, fake_github, make_pr):
    pr = two_hunk_pr(make_pr)
    result = run(api_for(github_clients).create_review(1, pr.head_sha, []))
    assert (result.posted, result.rejected, result.review_id) == ([], [], None)
    assert fake_github.calls == []


def test_existing_markers_round_trip(github_clients, fake_github, make_pr):
    pr = make_pr({"mod.py": ""}, {"mod.py": module(75)})  # 300 commentable lines
    ids = [(f"mod.py::f{i}@{4 * i + 1}", f"{i:04x}") for i in range(150)]
    comments = [
        ReviewComment(
            "mod.py",
            review_comment.suggestion_comment(
                Suggestion("mod.py", 2 * i + 1, 2 * i + 1, ("x",), target, digest),
                offline=False,
                action=Action.ADDED,
            ),
            2 * i + 1,
        )
        for i, (target, digest) in enumerate(ids)
    ]
    api = api_for(github_clients)
    run(api.create_review(1, pr.head_sha, comments))
    run(api.post_issue_comment(1, "not a review comment"))
    assert run(api.existing_markers(1)) == set(ids)
    assert len(fake_github.calls_to("comments.list")) == 2  # 150 comments, 100 per page


def _marker_comment(path: str, line: int, target: str, digest: str) -> ReviewComment:
    body = review_comment.suggestion_comment(
        Suggestion(path, line, line, ("x",), target, digest),
        offline=False,
        action=Action.ADDED,
    )
    return ReviewComment(path, body, line)


def test_only_the_apps_own_comments_count_as_already_suggested(
    github_clients, fake_github, make_pr
):
    """Issue 10: a marker pasted into anyone else's comment must not stop a suggestion."""
    pr = make_pr({"mod.py": ""}, {"mod.py": module(3)})
    api = api_for(github_clients)
    own = ("mod.py::f0@1", "aaaa")
    run(api.create_review(1, pr.head_sha, [_marker_comment("mod.py", 1, *own)]))
    pasted = {
        ("mallory", "User"): ("mod.py::f1@5", "bbbb"),
        ("other-app[bot]", "Bot"): ("mod.py::f2@9", "cccc"),
        ("docgen", "User"): ("mod.py::f1@5", "dddd"),  # the slug, but a person's account
    }
    for (author, kind), marker in pasted.items():
        body = _marker_comment("mod.py", 5, *marker).body
        fake_github.add_review_comment(pr, body, author=author, kind=kind, line=5)
    assert run(api.existing_markers(1)) == {own}
    assert run(api.existing_markers(1)) == {own}
    # Who the App is was read once, with the App's JWT (the fake refuses anything else).
    assert len(fake_github.calls_to("apps.get_authenticated")) == 1


def test_the_apps_login_follows_its_slug(github_clients, fake_github, make_pr):
    fake_github.app_slug = "docgen-acme"  # registered under another name
    pr = make_pr({"mod.py": ""}, {"mod.py": module(2)})
    api = api_for(github_clients)
    marker = ("mod.py::f0@1", "aaaa")
    run(api.create_review(1, pr.head_sha, [_marker_comment("mod.py", 1, *marker)]))
    body = _marker_comment("mod.py", 1, "mod.py::f1@5", "bbbb").body
    fake_github.add_review_comment(pr, body, author="docgen[bot]", kind="Bot")  # not this App
    assert run(api.app_login()) == "docgen-acme[bot]"
    assert run(api.existing_markers(1)) == {marker}


@pytest.mark.parametrize(
    ("comment", "own"),
    [
        ({"user": {"login": "docgen[bot]", "type": "Bot"}}, True),
        ({"user": {"login": "Docgen[bot]", "type": "Bot"}}, True),  # logins ignore case
        ({"user": {"login": "docgen[bot]", "type": "User"}}, False),
        ({"user": {"login": "docgen", "type": "Bot"}}, False),
        ({"user": None}, False),  # a deleted account ("ghost")
        ({}, False),
    ],
    ids=["own", "case", "not-a-bot", "bare-slug", "ghost", "no-user"],
)
def test_is_own_comment(comment, own):
    assert is_own_comment(comment, "docgen[bot]") is own


def test_review_that_failed_after_github_stored_it_is_not_reposted(
    github_clients, fake_github, make_pr
):
    pr = two_hunk_pr(make_pr)
    comments = [ReviewComment("mod.py", suggestion_body("t3", 3), 3)]
    fake_github.fail("reviews.create", Fault.server_error(502, process=True))
    result = run(api_for(github_clients).create_review(1, pr.head_sha, comments))
    assert result.posted == comments and result.review_ids == []
    assert len(fake_github.repo("octo/demo").pulls[1].reviews) == 1
    assert len(fake_github.calls_to("reviews.create")) == 1


def test_review_that_failed_before_github_stored_it_is_resent(
    github_clients, fake_github, fake_clock, make_pr
):
    pr = two_hunk_pr(make_pr)
    comments = [ReviewComment("mod.py", suggestion_body("t3", 3), 3)]
    fake_github.fail("reviews.create", Fault.server_error(503))
    result = run(api_for(github_clients).create_review(1, pr.head_sha, comments))
    assert result.posted == comments and len(result.review_ids) == 1
    assert len(fake_github.repo("octo/demo").pulls[1].reviews) == 1
    assert fake_clock.sleeps == [1.0]


def test_reaction_and_issue_comment(github_clients, fake_github, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    repo = fake_github.repo("octo/demo")
    comment_id = fake_github.add_issue_comment(repo, 1, "/docgen")
    api = api_for(github_clients)
    run(api.add_reaction(comment_id))
    run(api.add_reaction(comment_id))  # GitHub answers 200 with the existing reaction
    assert [r["content"] for r in repo.issue_comments[comment_id]["reactions"]] == ["eyes"]
    new_id = run(api.post_issue_comment(1, "Usage: /docgen"))
    assert repo.issue_comments[new_id]["body"] == "Usage: /docgen"
    with pytest.raises(NotFound):
        run(api.add_reaction(999_999))


# ------------------------------------------------------------ pacing and retries


def stamped_api(fake: FakeGitHub, settings: Settings, clock: FakeClock):
    transport = StampTransport(fake.app, clock)
    app = make_app_github(settings, async_transport=transport, clock=clock)
    return InstallationClients(app, clock=clock).api(1, OWNER, REPO), transport


def test_writes_are_paced_one_second_apart_reads_are_not(
    fake_github, github_settings, fake_clock, make_pr
):
    pr = make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    comment_id = fake_github.add_issue_comment(fake_github.repo("octo/demo"), 1, "/docgen")
    api, transport = stamped_api(fake_github, github_settings, fake_clock)

    async def go() -> None:
        run_id = await api.create_check_run(pr.head_sha, external_id="d")
        await api.get_pull(1)
        await api.list_files(1)
        await api.add_reaction(comment_id)
        await api.complete_check_run(run_id, conclusion="success", title="t", summary="s")
        await asyncio.gather(*(api.post_issue_comment(1, f"c{i}") for i in range(3)))
        await asyncio.gather(*(api.get_file("a.py", pr.head_sha) for _ in range(3)))

    run(go())
    writes = [t for m, p, t in transport.log if m != "GET" and "access_tokens" not in p]
    reads = [t for m, p, t in transport.log if m == "GET"]
    assert len(writes) == 6
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(writes))
    assert len(reads) == 5 and reads[-3:] == [writes[-1]] * 3  # no pause for reads


def test_secondary_rate_limit_waits_retry_after(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.get", Fault.secondary_rate_limit(retry_after=7))
    api = api_for(github_clients)
    assert run(api.get_pull(1)).number == 1
    assert fake_clock.sleeps == [7.0] and api.waited == 7.0
    assert api.calls["GET /repos/{owner}/{repo}/pulls/{pull_number}"] == 2


def test_429_waits_retry_after(github_clients, fake_github, fake_clock, make_pr):
    pr = make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("checks.create", Fault.too_many_requests(retry_after=2))
    run(api_for(github_clients).create_check_run(pr.head_sha, external_id="d"))
    assert fake_clock.sleeps == [2.0]
    assert len(fake_github.repo("octo/demo").check_runs) == 1


def test_secondary_rate_limit_without_header_waits_a_minute(
    github_clients, fake_github, fake_clock, make_pr
):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.get", Fault.secondary_rate_limit(retry_after=None))
    run(api_for(github_clients).get_pull(1))
    assert fake_clock.sleeps == [60.0]


def test_primary_rate_limit_waits_until_reset(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.get", Fault.primary_rate_limit(reset=fake_clock.now + 30))
    run(api_for(github_clients).get_pull(1))
    assert fake_clock.sleeps == [31.0]


def test_long_rate_limit_hands_back_retry_at(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    reset = fake_clock.now + 1_800
    fake_github.fail("pulls.get", Fault.primary_rate_limit(reset=reset))
    api = api_for(github_clients)
    with pytest.raises(GitHubUnavailable) as caught:
        run(api.get_pull(1))
    assert caught.value.retry_at == reset + 1 and fake_clock.sleeps == []
    # The whole installation is blocked: the next call does not even reach GitHub.
    sent = len(fake_github.calls)
    with pytest.raises(GitHubUnavailable):
        run(api_for(github_clients).list_files(1))
    assert len(fake_github.calls) == sent


def test_server_errors_are_retried_with_backoff(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.files", Fault.server_error(502), Fault.server_error(503))
    assert len(run(api_for(github_clients).list_files(1))) == 1
    assert fake_clock.sleeps == [1.0, 2.0]


def test_persistent_server_errors_give_up(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.get", *[Fault.server_error(500)] * 4)
    with pytest.raises(GitHubUnavailable) as caught:
        run(api_for(github_clients).get_pull(1))
    assert fake_clock.sleeps == [1.0, 2.0, 4.0]
    assert caught.value.retry_at == fake_clock.now + 8.0
    assert caught.value.status == 500
    assert str(caught.value) == (
        "GET /repos/{owner}/{repo}/pulls/{pull_number}: 500 Server Error;"
        " giving up after 4 attempt(s)"
    )


class DroppingTransport(StampTransport):
    """Drops the first ``drops`` connections to one path, as a flaky network does."""

    def __init__(self, app: Any, clock: FakeClock, path: str, drops: int) -> None:
        super().__init__(app, clock)
        self.path, self.drops = path, drops

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.drops > 0:
            self.drops -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await super().handle_async_request(request)


@pytest.mark.parametrize(("drops", "answered"), [(2, True), (4, False)])
def test_network_errors_are_retried_with_backoff_then_handed_back(
    fake_github, github_settings, fake_clock, make_pr, drops, answered
):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    transport = DroppingTransport(
        fake_github.app, fake_clock, f"/repos/{OWNER}/{REPO}/pulls/1", drops
    )
    app = make_app_github(github_settings, async_transport=transport, clock=fake_clock)
    api = InstallationClients(app, clock=fake_clock).api(1, OWNER, REPO)
    if answered:
        assert run(api.get_pull(1)).number == 1
        assert fake_clock.sleeps == [1.0, 2.0]
        return
    with pytest.raises(GitHubUnavailable) as caught:
        run(api.get_pull(1))
    assert "network error (ConnectError)" in str(caught.value) and caught.value.status is None
    assert fake_clock.sleeps == [1.0, 2.0, 4.0]


def test_token_request_failures_are_retried(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("tokens.create", Fault.server_error(502))
    assert run(api_for(github_clients).get_pull(1)).number == 1
    assert fake_clock.sleeps == [1.0]


def test_client_errors_are_typed_and_not_retried(github_clients, fake_github, fake_clock, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    api = api_for(github_clients)
    with pytest.raises(NotFound) as caught:
        run(api.get_pull(2))
    assert caught.value.status == 404 and caught.value.route.endswith("{pull_number}")
    fake_github.fail("pulls.get", Fault(403, {"message": "Resource not accessible by integration"}))
    with pytest.raises(Forbidden, match="Resource not accessible by integration"):
        run(api.get_pull(1))
    assert fake_clock.sleeps == []
    assert api.last_rate_limit_remaining == 5_000 - fake_github.rate_used[1]


def test_malformed_answers_are_github_errors(github_clients, fake_github, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    fake_github.fail("pulls.get", Fault(200, {"message": "not a pull request"}))
    with pytest.raises(GitHubError, match="unexpected answer from GitHub"):
        run(api_for(github_clients).get_pull(1))


def test_pagination_never_leaves_the_api_host(github_clients, fake_github, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    link = '<https://evil.example/repos/octo/demo/pulls/1/comments?page=2>; rel="next"'
    fake_github.fail("comments.list", Fault(200, [], {"link": link}, process=True))
    with pytest.raises(GitHubError, match="pagination link points away"):
        run(api_for(github_clients).existing_markers(1))


def test_revoked_token_is_replaced_once(github_clients, fake_github, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    api = api_for(github_clients)
    run(api.get_pull(1))
    fake_github.expire_tokens()  # GitHub stops accepting the token githubkit cached
    assert run(api.get_pull(1)).number == 1
    assert fake_github.token_requests == 2
    fake_github.expire_tokens()
    fake_github.fail("tokens.create", Fault(401, {"message": "Bad credentials"}))
    with pytest.raises(Unauthorized, match="401 Bad credentials"):
        run(api.get_pull(1))


def test_secrets_never_reach_messages_or_logs(
    github_clients, fake_github, private_key_pem, caplog, make_pr
):
    caplog.set_level(logging.DEBUG)
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    api = api_for(github_clients)
    messages = []

    def expect(error: type[Exception], call: Callable[[], Any]) -> None:
        with pytest.raises(error) as caught:
            run(call())
        messages.extend([str(caught.value), repr(caught.value)])

    run(api.get_pull(1))
    expect(NotFound, lambda: api.get_pull(404))
    fake_github.expire_tokens()
    fake_github.fail("tokens.create", Fault(401, {"message": "Bad credentials"}))
    expect(Unauthorized, lambda: api.get_pull(1))
    fake_github.fail("pulls.get", *[Fault.server_error()] * 4)
    expect(GitHubUnavailable, lambda: api.get_pull(1))
    fake_github.fail("tokens.create", Fault.secondary_rate_limit(retry_after=3600))
    github_clients.forget(1)
    expect(GitHubUnavailable, lambda: api_for(github_clients).get_pull(1))

    secrets = list(fake_github.tokens)
    secrets += [
        c.headers["authorization"].split()[1] for c in fake_github.calls_to("tokens.create")
    ]
    secrets += [line for line in private_key_pem.splitlines() if "PRIVATE KEY" not in line]
    assert len(secrets) > 25
    text = "\n".join(messages) + caplog.text
    assert "retrying" in caplog.text and "Bad credentials" in text
    for secret in secrets:
        assert secret not in text


# ----------------------------------------------------------------- the fake itself


def test_fake_answers_parse_with_githubkit_models(github_clients, fake_github, make_pr):
    """githubkit's own models accept every shape the fake sends (it is faithful)."""
    pr = make_pr({"a.py": "x = 1\n", "d/b.py": "y\n"}, {"a.py": "x = 2\n", "d/b.py": "y\n"})
    repo = fake_github.repo("octo/demo")
    comment_id = fake_github.add_issue_comment(repo, 1, "/docgen")
    rest = github_clients.client(1).rest
    h = {"X-GitHub-Api-Version": API_VERSION}

    async def go() -> list[Any]:
        check = await rest.checks.async_create(
            OWNER, REPO, data={"name": "docgen", "head_sha": pr.head_sha}, headers=h
        )
        return [
            await rest.repos.async_get(OWNER, REPO, headers=h),
            await rest.pulls.async_get(OWNER, REPO, 1, headers=h),
            await rest.pulls.async_list_files(OWNER, REPO, 1, headers=h),
            await rest.repos.async_get_content(OWNER, REPO, "a.py", ref=pr.head_sha, headers=h),
            await rest.repos.async_get_content(OWNER, REPO, "d", headers=h),
            await rest.git.async_get_blob(OWNER, REPO, pr.files[0]["sha"], headers=h),
            check,
            await rest.checks.async_update(
                OWNER,
                REPO,
                check.parsed_data.id,
                data={"conclusion": "success", "output": {"title": "t", "summary": "s"}},
                headers=h,
            ),
            await rest.pulls.async_create_review(
                OWNER,
                REPO,
                1,
                data={
                    "commit_id": pr.head_sha,
                    "event": "COMMENT",
                    "body": "b",
                    "comments": [{"path": "a.py", "body": "c", "line": 1, "side": "RIGHT"}],
                },
                headers=h,
            ),
            await rest.pulls.async_list_reviews(OWNER, REPO, 1, headers=h),
            await rest.pulls.async_list_review_comments(OWNER, REPO, 1, headers=h),
            await rest.reactions.async_create_for_issue_comment(
                OWNER, REPO, comment_id, data={"content": "eyes"}, headers=h
            ),
            await rest.issues.async_create_comment(OWNER, REPO, 1, data={"body": "hi"}, headers=h),
        ]

    for response in run(go()):
        assert response.parsed_data is not None


def test_fake_records_unknown_routes_as_errors(fake_github):
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fake_github.app), base_url="https://api.github.com"
        ) as client:
            return await client.get("/repos/octo/demo/branches")

    assert run(go()).status_code == 500
    assert fake_github.errors == ["unknown route: GET /repos/octo/demo/branches"]
    fake_github.errors.clear()  # the fixture would fail the test otherwise


def test_fake_serves_over_a_socket(fake_github, github_settings, make_pr):
    make_pr({"a.py": ""}, {"a.py": "x = 1\n"})
    with fake_github.serve() as url:
        settings = github_settings.model_copy(update={"github_api_url": url})
        clients = InstallationClients(make_app_github(settings))
        api = clients.api(1, OWNER, REPO)
        assert run(api.get_pull(1)).number == 1

        async def job() -> bytes | None:
            async with api:  # one pooled client over a real socket, closed at the end
                pull = await api.get_pull(1)
                changes = await api.fetch_changes(pull)
            return changes.changes[0].head

        assert run(job()) == b"x = 1\n"
    assert clients.client(1).clients_created == 2 and clients.client(1).shared_client is None
