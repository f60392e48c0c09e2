"""A pull request cannot make docgen download or parse more than it will use (issue 10).

The oracle is the fake GitHub's own count of the file bytes it sent
(:attr:`FakeGitHub.bytes_served`: GraphQL ``text``, contents and blobs), and GitHub's
documented shapes: a file GitHub shows no patch for, or one over a limit, costs no
download at all.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from bot.config import RepoConfig
from bot.docstrings import extract as extract_mod
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.deadline import Deadline, DeadlineExceeded
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.models import FileChange
from bot.docstrings.pipeline import run as run_pipeline
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding
from bot.runtime.github.client import InstallationClients, PullRequestAPI
from bot.runtime.github.heads import FetchLimits
from bot.runtime.review_job import style_sample
from tests.conftest import OWNER, REPO
from tests.fake_github import FakeGitHub, Fault

run = asyncio.run
MB = 1_000_000


def api_for(clients: InstallationClients) -> PullRequestAPI:
    return clients.api(1, OWNER, REPO)


def fetch(api: PullRequestAPI, limits: FetchLimits | None = None, wanted: Any = None) -> Any:
    async def go() -> Any:
        async with api:
            return await api.fetch_changes(await api.get_pull(1), wanted=wanted, limits=limits)

    return run(go())


def module_of(size: int, tag: str = "x") -> bytes:
    """A valid Python module of exactly ``size`` bytes (functions, then a comment pad)."""
    body = "".join(f"def {tag}{i}(a):\n    return a + {i}\n\n\n" for i in range(size // 80))
    data = body.encode()[: max(0, size - 2)]
    data = data[: data.rfind(b"\n") + 1] if b"\n" in data else b""
    return data + b"#" * (size - len(data) - 1) + b"\n"


def served_for(fake: FakeGitHub, name: str) -> int:
    return sum(n for _, what, n in fake.served if what.endswith(name))


def context(config: RepoConfig | None = None, deadline: Deadline | None = None) -> Context:
    return Context(
        config=config or RepoConfig(),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(20_000),
        deadline=deadline,
    )


# ------------------------------------------------------------- what is read at all


def test_files_without_a_patch_are_never_downloaded(github_clients, fake_github, make_pr):
    """The measured case: two 6 MB files GitHub shows no diff for cost nothing."""
    big = {f"gen/big{i}.py": module_of(6 * MB, f"g{i}_") for i in range(2)}
    small = module_of(2_000)
    make_pr({}, {**big, "app.py": small}, omit_patch=frozenset(big))
    result = fetch(api_for(github_clients), FetchLimits(10 * MB, 50 * MB))

    by_path = {c.path: c for c in result.changes}
    assert by_path["app.py"].head == small
    assert all(by_path[p].head is None and by_path[p].patch is None for p in big)
    assert fake_github.bytes_served == len(small)
    assert not any("big" in str(c.json) for c in fake_github.calls_to("graphql"))
    assert fake_github.calls_to("git.blob") == []

    # Downstream they are still reported, for what GitHub said of them.
    report = run(run_pipeline(result.changes, context())).report
    reasons = {s.path: s.reason for s in report.skips}
    assert all("no patch from GitHub" in reasons[p] for p in big)


def test_files_the_config_leaves_out_are_never_downloaded(github_clients, fake_github, make_pr):
    config = RepoConfig(exclude=("vendor/*",))
    make_pr({}, {"vendor/lib.py": module_of(50_000), "app.py": module_of(1_000)})
    fetch(api_for(github_clients), wanted=config.wants)
    assert served_for(fake_github, "vendor/lib.py") == 0
    assert fake_github.bytes_served == 1_000


@pytest.mark.parametrize("graphql", ["graphql", "graphql-refused"])
def test_a_file_over_max_file_bytes_is_skipped_by_its_size_unread(
    github_clients, fake_github, make_pr, graphql
):
    """GraphQL's byteSize (or the REST listing of its directory) decides, before any
    REST fallback and before GraphQL's text: none of its bytes travels."""
    big = {f"pkg/big{i}.py": module_of(60_000, f"b{i}_") for i in range(4)}
    ok = module_of(3_000)
    make_pr({}, {**big, "pkg/ok.py": ok})
    if graphql == "graphql-refused":  # e.g. an old GHES schema: REST only
        fake_github.fail(
            "graphql", Fault(200, {"errors": [{"message": "Field 'x' doesn't exist"}]})
        )
    result = fetch(api_for(github_clients), FetchLimits(max_file_bytes=50_000))

    assert fake_github.bytes_served == len(ok)
    by_path = {c.path: c for c in result.changes}
    for path in big:
        assert by_path[path].head is None
        assert by_path[path].skip_reason == (
            "too large: 60,000 bytes > limit 50,000 (max_file_bytes); not downloaded"
        )
    report = run(run_pipeline(result.changes, context(RepoConfig(max_file_bytes=50_000)))).report
    assert sorted(
        s.path for s in report.skips if s.reason.startswith("too large: 60,000")
    ) == sorted(big)


def test_graphql_text_is_asked_only_for_files_that_fit(github_clients, fake_github, make_pr):
    """The sizes query carries blob ids and asks ``byteSize`` only; the text query
    names only files within the limits."""
    pr = make_pr({}, {"big.py": module_of(20_000), "a.py": module_of(500)})
    fetch(api_for(github_clients), FetchLimits(max_file_bytes=10_000))
    sizes, _text = fake_github.calls_to("graphql")
    assert "text" not in sizes.json["query"] and "byteSize" in sizes.json["query"]
    assert "object(oid:" in sizes.json["query"]
    assert fake_github.graphql_objects == [f"{pr.head_sha}:a.py"]


# ------------------------------------------------------------------- the run's cap


def test_the_run_stops_downloading_at_its_byte_cap_and_names_what_it_left(
    github_clients, fake_github, make_pr
):
    files = {f"m{i}.py": module_of(30_000, f"m{i}_") for i in range(5)}
    files["z_small.py"] = module_of(5_000)  # after the cap is reached: still fits
    make_pr({}, files)
    result = fetch(api_for(github_clients), FetchLimits(max_run_bytes=100_000))

    assert fake_github.bytes_served == 3 * 30_000 + 5_000 <= 100_000
    read = sorted(c.path for c in result.changes if c.head is not None)
    assert read == ["m0.py", "m1.py", "m2.py", "z_small.py"]
    left = {c.path: c.skip_reason for c in result.changes if c.head is None}
    assert sorted(left) == ["m3.py", "m4.py"]
    assert all("100,000-byte download cap (DOCGEN_MAX_RUN_BYTES)" in r for r in left.values())
    [note] = result.notes
    assert "DOCGEN_MAX_RUN_BYTES" in note and "`m3.py`" in note and "`m4.py`" in note

    report = run(run_pipeline(result.changes, context())).report
    assert {s.path for s in report.skips if "DOCGEN_MAX_RUN_BYTES" in s.reason} == set(left)


# --------------------------------------------------------------- the style sample


def change(path: str, data: bytes | None) -> FileChange:
    return FileChange(path, "added", "@@ -0,0 +1 @@\n+x", data)


def test_the_style_sample_reads_at_most_its_cap_and_names_what_it_left():
    doc = (
        b'def f():\n    """Return one.\n\n    Returns:\n        int: one.\n    """\n    return 1\n'
    )
    changes = [
        change("a.py", doc + b"#" * 400 + b"\n"),
        change("big.py", doc + b"#" * 5_000 + b"\n"),
        change("gone.py", None),
        change("b.py", doc),
    ]
    sample = style_sample(changes, 1_000)
    assert sample.read_bytes == len(changes[0].head) + len(doc) <= 1_000
    assert sample.left_out == ("big.py",)
    assert sample.docstrings == ["Return one.\n\n    Returns:\n        int: one.\n    "] * 2
    [note] = sample.notes()
    assert "1,000-byte cap (DOCGEN_STYLE_SAMPLE_BYTES)" in note and "`big.py`" in note
    assert style_sample(changes, 10_000).notes() == []


# ------------------------------------------------------------------- the deadline


class StepClock:
    """A monotonic clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> float:
        return float(next(self.ticks))


def test_parsing_stops_at_the_deadline_between_files(monkeypatch):
    parsed: list[str] = []
    real = extract_mod.extract

    def counting(path: str, *args: Any, **kw: Any) -> Any:
        parsed.append(path)
        return real(path, *args, **kw)

    monkeypatch.setattr(extract_mod, "extract", counting)
    src = b"def f(a):\n    return a\n"
    changes = [
        FileChange(f"m{i}.py", "added", "@@ -0,0 +1,2 @@\n+def f(a):\n+    return a", src)
        for i in range(10)
    ]
    # Created at t=0, due at t=3.5: checks at t=1, 2, 3 pass, the one at t=4 stops.
    deadline = Deadline(3.5, clock=StepClock(), label="the test's limit")
    with pytest.raises(DeadlineExceeded, match=r"stopped at the test's limit while parsing m3\.py"):
        run(run_pipeline(changes, context(deadline=deadline)))
    assert parsed == ["m0.py", "m1.py", "m2.py"]


def test_a_cancelled_deadline_stops_the_style_sample_at_once():
    deadline = Deadline(3_600)
    deadline.cancel()  # the job was cancelled: the thread stops at its next check
    with pytest.raises(DeadlineExceeded, match=r"while reading a\.py for the style sample"):
        style_sample([change("a.py", b"x = 1\n")], 1_000, deadline)
    assert style_sample([change("a.py", b"x = 1\n")], 1_000, Deadline(3_600)).read_bytes == 6
