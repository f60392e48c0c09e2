"""End to end on a big PR: one signed delivery → a completed check run, and what it cost.

The issue's target: on a PR adding ~200 undocumented functions, with a zero-latency
local LLM and a fake GitHub — wall time from the delivery to the completed check run,
and the GitHub API calls used: O(1) + files/100 reads, ≤ 3 writes besides pacing.
The reads are 5 per PR, 2 per 100 files (sizes, then contents) and 1 per installation
client (the App's slug, cached after).

* **PR**: ``--files`` real stdlib modules (seeded); in each, ``--functions / --files``
  public, documented functions are the PR's new code — base lacks them, head has them
  with their docstrings stripped (``bench/corpus.make_pr``) — and two documented
  functions get a line edited.  The base branch has a ``.github/docgen.yml`` raising
  ``max_functions`` and ``budget`` so that the whole PR is in scope.
* **GitHub**: ``tests/fake_github.py`` in-process (``httpx.ASGITransport``), with its
  checks (App JWT, installation token, review lines inside the diff, 50 annotations
  per request).  Every request it gets is counted by route; a GraphQL query is a read
  (a POST, but no mutation), shown with the number of files it read.
* **LLM**: ``tests/fake_openai.py`` on a loopback port (zero latency, valid structured
  answers, real token counts), reached through the real OpenAI provider.
* **docgen**: ``bot.runtime.compose.build`` — the app, the SQLite store and the in-process
  worker, exactly as ``docgen serve`` wires them; the delivery is posted to
  ``/webhook`` signed.  Each run gets a fresh data dir (cold docstring cache).

Runs twice by default: without write pacing (``write_interval=0``: docgen's own time)
and with GitHub's 1 s between content-creating requests (what a user waits).

Run from the repository root: ``python bench/e2e_pr.py`` (~30 s).
Options: ``--functions``, ``--files``, ``--pacing 0|1|both``, ``--seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `tests` (the fakes) is not an installed package

import corpus  # noqa: E402  (bench/, the script's folder)
import httpx  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.docstrings.llm.factory import make_provider  # noqa: E402
from bot.runtime import compose  # noqa: E402
from bot.runtime.github import sansio  # noqa: E402
from tests import fake_openai  # noqa: E402
from tests.fake_github import APP_ID, FakeGitHub, signed_delivery  # noqa: E402

OWNER, REPO = "octo", "bigpr"
SECRET = "e2e-bench-webhook-secret-9a1b"
CONFIG = "max_functions: 1000\nbudget: 5000000\n"
READS_O1 = 5  # what "O(1)" is taken to mean: PR, config, existing comments, ...
# Per 100 files: their sizes first (GraphQL byteSize), then the contents of those within
# the limits (issue 10: a file over max_file_bytes is never downloaded).
READS_PER_100_FILES = 2
# Once per installation client, not per PR: GET /app for the App's slug (only
# "<slug>[bot]" comments count as docgen's own).  Every run here starts a fresh process.
READS_PER_CLIENT = 1
MAX_WRITES = 3  # check run created, review, check run completed
WRITE_ROUTES = {"checks.create", "checks.update", "reviews.create", "issue_comments.create"}


def is_write(call: Any) -> bool:
    """Whether a call to the fake wrote: a GraphQL POST is a read unless it is a mutation
    (classified as docgen's write pacer does), REST by route."""
    if call.route == "graphql":
        request = httpx.Request(call.method, f"https://api.github.com{call.path}", json=call.json)
        return sansio.is_write(request)
    return call.route in WRITE_ROUTES


def _fake_openai_main(conn: Any) -> None:
    """Child process: the fake OpenAI on loopback until told to stop (its CPU is not ours)."""
    with fake_openai.serve() as (origin, fake):
        conn.send(origin)
        while conn.recv() == "count":
            conn.send(len(fake.requests))


class TimedApp:
    """ASGI wrapper: time spent answering inside the fake GitHub (GitHub's share)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - started


def build_pr(functions: int, files: int, seed: int) -> tuple[dict[str, str], dict[str, str], int]:
    """(base files, head files, functions added) over real stdlib modules."""
    rng = random.Random(seed)
    candidates = corpus.stdlib_files()
    rng.shuffle(candidates)
    base: dict[str, str] = {}
    head: dict[str, str] = {}
    added = 0
    for relpath in candidates:
        if len(head) == files:
            break
        want = math.ceil((functions - added) / (files - len(head)))
        try:
            pr = corpus.make_pr(relpath, rng, added=want, edited=2, deleted_helpers=0)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        if pr is None:
            continue
        path = f"src/{relpath}"
        base[path], head[path] = pr.base, pr.head
        added += len(pr.added)
    return base, head, added


def delivery_for(pull: Any) -> tuple[bytes, dict[str, str]]:
    return signed_delivery(SECRET, "pull_request", pull.webhook_payload("opened"))


def run_once(
    key: rsa.RSAPrivateKey,
    base: dict[str, str],
    head: dict[str, str],
    *,
    write_interval: float,
    llm_origin: str,
    llm_requests: Any,
    timeout: float,
) -> dict[str, Any]:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    fake = FakeGitHub(key.public_key())
    repo = fake.add_repo(OWNER, REPO)
    # docgen reads the config at the base sha (a PR cannot raise its own limits); it is
    # in head too, so that it is not one of the PR's files.
    pull = fake.add_pull(
        repo, 1, {**base, ".github/docgen.yml": CONFIG}, {**head, ".github/docgen.yml": CONFIG}
    )
    data_dir = Path(tempfile.mkdtemp(prefix="docgen-e2e-"))
    settings = Settings(
        github_app_id=APP_ID,
        github_private_key=pem,
        github_webhook_secret=SECRET,
        github_api_url="https://api.github.com",
        openai_api_key="sk-bench-" + "0" * 24,
        openai_base_url=f"{llm_origin}/v1",
        docgen_data_dir=data_dir,
        docgen_workers=1,
    )
    requests_before = llm_requests()
    provider = make_provider(settings)  # the OpenAI provider, as serve would make it
    timed = TimedApp(fake.app)
    runtime = compose.build(
        settings,
        github_transport=httpx.ASGITransport(app=timed),
        provider=provider,
        poll_interval=0.01,
        write_interval=write_interval,
    )
    body, headers = delivery_for(pull)
    lags: list[float] = []
    probing = True

    async def probe_loop() -> None:
        # How late a 5 ms timer fires in the app's event loop: how long a webhook
        # arriving then would wait for the job's synchronous work (embedded mode).
        while probing:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    with TestClient(runtime.app) as client:
        client.portal.start_task_soon(probe_loop)
        started = time.perf_counter()
        answer = client.post("/webhook", content=body, headers=headers)
        if answer.status_code != 202:
            raise SystemExit(f"webhook answered {answer.status_code}: {answer.text}")
        run = None
        while time.perf_counter() - started < timeout:
            done = [r for r in repo.check_runs.values() if r.status == "completed"]
            if done:
                run = done[0]
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        probing = False
        # The server does not close the provider's HTTP client at shutdown; close it in
        # the app's event loop, or its connections complain once that loop is gone.
        client.portal.call(provider.client.close)
        metrics = client.get("/metrics").text
    runtime.store.close()
    if run is None:
        raise SystemExit(f"no completed check run after {timeout:.0f} s")
    return {
        "wall": wall,
        "run": run,
        "pull": pull,
        "calls": list(fake.calls),
        "graphql_files": len(fake.graphql_objects),
        "errors": list(fake.errors),
        "llm_requests": llm_requests() - requests_before,
        "llm_seconds": metric(metrics, "docgen_llm_call_seconds_sum"),
        "github_seconds": timed.seconds,
        "lags": lags,
    }


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def summary_field(summary: str, name: str) -> str:
    match = re.search(rf"^- {name}: (.+)$", summary or "", re.M)
    return match.group(1) if match else "?"


def report(label: str, out: dict[str, Any], files: int, added: int) -> list[str]:
    """Print one run; returns the ways it misses the target."""
    calls = [c for c in out["calls"] if c.route != "tokens.create"]
    auth = len(out["calls"]) - len(calls)
    writes = Counter(c.route or "unknown" for c in calls if is_write(c))
    reads = Counter(c.route or "unknown" for c in calls if not is_write(c))
    n_reads, n_writes = sum(reads.values()), sum(writes.values())
    read_target = READS_O1 + READS_PER_100_FILES * math.ceil(files / 100) + READS_PER_CLIENT
    run, pull = out["run"], out["pull"]
    comments = [c for r in pull.reviews for c in r.get("comments", [])] or pull.comments
    summary = run.summary or ""
    print(f"--- {label}")
    print(
        f"wall time, delivery -> completed check run: {out['wall']:.2f} s; waiting on the LLM "
        f"{out['llm_seconds']:.2f} s, inside the fake GitHub {out['github_seconds']:.2f} s, "
        f"the rest is docgen (elapsed in the summary: {summary_field(summary, 'Elapsed')})"
    )
    lags = sorted(out["lags"])
    if lags:
        print(
            f"event-loop stalls while the job ran (a webhook would wait this long): "
            f"p50 {lags[len(lags) // 2] * 1000:.1f} ms, p99 {lags[int(len(lags) * 0.99)] * 1000:.1f} ms,"
            f" max {lags[-1] * 1000:.0f} ms; {sum(lag for lag in lags if lag > 0.05):.2f} s in "
            f"{sum(1 for lag in lags if lag > 0.05)} stalls over 50 ms"
        )
    print(f"check run: {run.conclusion}; {run.title}")
    print(
        f"review: {len(pull.reviews)} with {len(comments)} suggestions; "
        f"{len(run.annotations)} annotations on the check run"
    )
    print(
        f"LLM: {out['llm_requests']} requests; tokens {summary_field(summary, 'Tokens')}; "
        f"cost {summary_field(summary, 'Cost')}"
    )
    print(f"GitHub API calls: {n_reads + n_writes} (+{auth} installation token)")
    print(
        f"  reads  {n_reads:>4}  "
        + ", ".join(
            f"{r} {n}" + (f" ({out['graphql_files']} files)" if r == "graphql" else "")
            for r, n in sorted(reads.items())
        )
    )
    print(f"  writes {n_writes:>4}  " + ", ".join(f"{r} {n}" for r, n in sorted(writes.items())))
    if out["errors"]:
        print(f"  fake GitHub errors: {out['errors'][:3]}")
    misses = []
    if n_reads > read_target:
        misses.append(
            f"reads {n_reads} > {read_target} (O(1) = {READS_O1} per PR + {READS_PER_100_FILES}"
            f" per {files} files/100 rounded up + {READS_PER_CLIENT} per installation client)"
        )
    if n_writes > MAX_WRITES:
        misses.append(f"writes {n_writes} > {MAX_WRITES}")
    if len(comments) < added:
        misses.append(f"{len(comments)} suggestions for {added} added functions")
    return misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=200)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--pacing", choices=["0", "1", "both"], default="both")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    base, head, added = build_pr(args.functions, args.files, args.seed)
    lines = sum(text.count("\n") for text in head.values())
    print(
        f"PR: {len(head)} files ({lines:,} lines at head) adding {added} undocumented "
        f"functions taken from the stdlib (seed {args.seed}); {sys.version.split()[0]}"
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    runs = [("first PR after start-up (cold: imports, encodings), write pacing 0 s", 0.0)]
    if args.pacing in ("0", "both"):
        runs.append(("write pacing 0 s (docgen's own time)", 0.0))
    if args.pacing in ("1", "both"):
        runs.append(("write pacing 1 s (GitHub's best practice)", 1.0))
    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe()
    llm = mp.Process(target=_fake_openai_main, args=(child,), daemon=True)
    llm.start()
    origin = parent.recv()

    def llm_requests() -> int:
        parent.send("count")
        return parent.recv()

    misses: dict[str, list[str]] = {}
    try:
        for label, interval in runs:
            out = run_once(
                key,
                base,
                head,
                write_interval=interval,
                llm_origin=origin,
                llm_requests=llm_requests,
                timeout=args.timeout,
            )
            misses[label] = report(label, out, len(head), added)
    finally:
        parent.send("stop")
        llm.join(timeout=10)
    print()
    for label, missed in misses.items():
        print(f"{label}: " + ("MEETS the target" if not missed else "MISSES: " + "; ".join(missed)))
    return 0 if not any(misses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
