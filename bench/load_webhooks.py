"""Load on the acknowledgement path: signed deliveries against a real ``docgen serve``.

The issue's target: 2,000 signed ``pull_request`` deliveries at concurrency 50 against
``docgen serve`` (embedded mode: SQLite store, in-process workers) — p99
acknowledgement latency < 50 ms (GitHub gives up after 10 s), no errors, every
delivery journaled once, memory flat.

What runs (all on 127.0.0.1, nothing else is contacted):

* the fake GitHub (``tests/fake_github.py``) in a child process, holding ``--prs``
  small pull requests, so the workers behind the web handler have real (cheap) work
  while the load runs — this is the embedded mode, where they share the event loop;
* ``python -m bot.cli serve`` as a subprocess with a fresh ``DOCGEN_DATA_DIR``, the
  offline provider, ``DOCGEN_WORKERS`` (default 1) and JSON logs at INFO to a file;
* this process: a warm-up, then ``--rounds`` rounds of ``--deliveries`` requests with
  ``--concurrency`` in flight (closed loop, or ``--rate N`` per second), each a
  ~``--payload-kb`` body signed with ``X-Hub-Signature-256`` and a unique
  ``X-GitHub-Delivery``, spread over the PRs (so the store coalesces), of which
  ``--redeliveries`` (a fraction) repeat an earlier delivery byte for byte, as GitHub's
  "Redeliver" does.  The client is a minimal HTTP/1.1 one on asyncio streams
  (:class:`RawConnection`): ``httpx.AsyncClient`` (``--client httpx``) costs ~10 ms of
  CPU per request at 50 connections, which on a small machine measures the client.

After each round it waits for the queue to drain.  Then it reads the store (SQLite,
read-only; or Redis with ``--redis``): one ``deliveries`` row per unique id, one job per
accepted (202) delivery and none for a redelivery, at most one queued and one running
job per PR; and it samples the server's RSS (``/proc/PID/status``) at idle, after the
warm-up, during the load (peak), after it and once the queue drained.  Memory is
"flat" when RSS does not grow from the end of round 1 to the end of the last round.

Run from the repository root: ``python bench/load_webhooks.py`` (~2.5 min).  Exit
status 1 when a target is missed.  Options: ``--deliveries``, ``--rounds``,
``--concurrency``, ``--prs``, ``--workers``, ``--payload-kb``, ``--rate N``,
``--client``, ``--python`` (another interpreter for the server), ``--log-level``,
``--no-drain``, ``--web-processes N`` (``DOCGEN_WEB_PROCESSES``: N web processes, the
jobs in their supervisor; CPU and RSS are then the whole process tree's), ``--redis
URL`` (Redis mode: serve only enqueues, ``--redis-workers`` ``docgen worker``
processes run the jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `tests` (the fakes) is not an installed package

import httpx  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from githubkit.webhooks import sign  # noqa: E402

OWNER, REPO = "octo", "demo"
SECRET = "load-bench-webhook-secret-51c0"
TARGET_P99_MS = 50.0
GITHUB_TIMEOUT_S = 10.0  # GitHub's limit for the answer to a delivery
PATH = "shop/inventory.py"


# ------------------------------------------------------------------- fake GitHub


def _fake_github_main(public_pem: bytes, prs: int, conn: Any) -> None:
    """Child process: the fake GitHub with ``prs`` small PRs, until told to stop."""
    from bot.cli.sample import BASE, HEAD
    from tests.fake_github import FakeGitHub

    fake = FakeGitHub(serialization.load_pem_public_key(public_pem))
    repo = fake.add_repo(OWNER, REPO)
    heads = {}
    for number in range(1, prs + 1):
        pull = fake.add_pull(repo, number, {PATH: BASE}, {PATH: HEAD + f"\n# PR {number}\n"})
        heads[number] = (pull.base_sha, pull.head_sha)
    with fake.serve() as url:
        conn.send((url, heads))
        conn.recv()  # "stop"
        runs = list(repo.check_runs.values())
        conn.send(
            {
                "calls": dict(Counter(c.route or "unknown" for c in fake.calls)),
                "errors": fake.errors[:5],
                "check_runs": len(runs),
                "completed": sum(1 for r in runs if r.status == "completed"),
                "reviews": sum(len(p.reviews) for p in repo.pulls.values()),
            }
        )


# ---------------------------------------------------------------------- payloads


def _repo_json(owner: str, name: str, repo_id: int) -> dict[str, Any]:
    """A repository object with the fields (and bulk) of GitHub's webhook payloads."""
    api = f"https://api.github.com/repos/{owner}/{name}"
    user_api = f"https://api.github.com/users/{owner}"
    urls = {
        f"{kind}_url": f"{api}/{kind}{{/id}}"
        for kind in (
            "archive assignees blobs branches collaborators comments commits compare "
            "contents contributors deployments downloads events forks git_commits git_refs "
            "git_tags hooks issue_comment issue_events issues keys labels languages merges "
            "milestones notifications pulls releases stargazers statuses subscribers "
            "subscription tags teams trees"
        ).split()
    }
    return {
        "id": repo_id,
        "node_id": "R_kgDO" + "x" * 8,
        "name": name,
        "full_name": f"{owner}/{name}",
        "private": False,
        "owner": {
            "login": owner,
            "id": 9919,
            "type": "Organization",
            "url": user_api,
            "html_url": f"https://github.com/{owner}",
            "avatar_url": "https://avatars.githubusercontent.com/u/9919?v=4",
            "repos_url": f"{user_api}/repos",
            "events_url": f"{user_api}/events{{/privacy}}",
        },
        "html_url": f"https://github.com/{owner}/{name}",
        "description": "Demo repository for docgen's load bench",
        "fork": False,
        "url": api,
        **urls,
        "created_at": "2024-01-05T12:00:00Z",
        "updated_at": "2026-01-05T12:00:00Z",
        "pushed_at": "2026-01-05T12:00:00Z",
        "default_branch": "main",
        "size": 1234,
        "stargazers_count": 42,
        "language": "Python",
        "topics": ["docs", "python"],
        "visibility": "public",
    }


def payload_for(
    number: int, base_sha: str, head_sha: str, action: str, pad_kb: float
) -> dict[str, Any]:
    repo = _repo_json(OWNER, REPO, 1001)
    body = "This change adds inventory helpers.\n\n" + "- keeps the shop's stock in sync\n" * max(
        0, int(pad_kb * 1024 / 34)
    )
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"{repo['url']}/pulls/{number}",
            "id": 100_000 + number,
            "number": number,
            "state": "open",
            "locked": False,
            "title": f"Add inventory helpers ({number})",
            "user": {"login": "octocat", "id": 583231, "type": "User"},
            "body": body,
            "draft": False,
            "head": {
                "label": f"{OWNER}:feature-{number}",
                "ref": f"feature-{number}",
                "sha": head_sha,
                "repo": repo,
            },
            "base": {"label": f"{OWNER}:main", "ref": "main", "sha": base_sha, "repo": repo},
            "author_association": "MEMBER",
            "commits": 1,
            "additions": 60,
            "deletions": 0,
            "changed_files": 1,
        },
        "repository": repo,
        "installation": {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
    }


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    body: bytes
    headers: dict[str, str]
    redelivery: bool


def make_deliveries(
    n: int,
    heads: dict[int, tuple[str, str]],
    *,
    redeliveries: float,
    concurrency: int,
    pad_kb: float,
    rng: random.Random,
) -> list[Delivery]:
    """``n`` deliveries; a fraction repeat (same id, same bytes) one sent well before."""
    out: list[Delivery] = []
    numbers = sorted(heads)
    redelivered = set(
        rng.sample(range(4 * concurrency, n), int(n * redeliveries)) if n > 4 * concurrency else ()
    )
    for i in range(n):
        if i in redelivered:
            # An id sent at least 2×concurrency requests earlier: its first answer is in.
            original = out[rng.randrange(0, i - 2 * concurrency)]
            while original.redelivery:
                original = out[rng.randrange(0, i - 2 * concurrency)]
            out.append(Delivery(original.delivery_id, original.body, original.headers, True))
            continue
        number = rng.choice(numbers)
        action = rng.choices(["synchronize", "opened", "reopened"], [8, 1, 1])[0]
        body = json.dumps(payload_for(number, *heads[number], action, pad_kb)).encode()
        delivery_id = str(uuid.uuid4())
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": "123456",
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature-256": sign(SECRET, body, "sha256"),
            "User-Agent": "GitHub-Hookshot/abc1234",
            "Content-Type": "application/json",
        }
        out.append(Delivery(delivery_id, body, headers, False))
    return out


# ------------------------------------------------------------------------ firing


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # exceptions (no answer)
    by_id: dict[str, list[int]] = field(default_factory=dict)
    rss_kb: list[int] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0  # seconds the server process ran during the load
    client_cpu: float = 0.0  # and this process


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``DOCGEN_WEB_PROCESSES`` > 1: the web processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams).

    httpx's pool costs this process ~10 ms of CPU per request at 50 connections, which
    on a 2-core machine measures the client, not docgen; this costs ~0.1 ms.  It only
    understands what uvicorn answers here: a status line, headers, Content-Length.
    """

    def __init__(self, host: str, port: int, *, reuse: bool = True) -> None:
        self.host, self.port, self.reuse = host, port, reuse
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += [f"Content-Length: {len(body)}"]
        if not self.reuse:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        status = int((await reader.readline()).split(b" ", 2)[1])
        length, close = 0, not self.reuse
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def fire(
    url: str,
    deliveries: list[Delivery],
    *,
    concurrency: int,
    rate: float | None,
    pid: int,
    max_seconds: float,
    client: str = "raw",
) -> Result:
    """Send ``deliveries`` with ``concurrency`` in flight; latencies, statuses, RSS samples."""
    result = Result()
    queue = iter(enumerate(deliveries))
    target = httpx.URL(url)
    cpu0, own0 = cpu_seconds(pid), time.process_time()
    started = time.perf_counter()

    async def sender(post: Any) -> None:
        for i, d in queue:
            if rate:  # open loop: delivery i is due at i / rate
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(GITHUB_TIMEOUT_S):
                    status = await post(d)
            except (httpx.HTTPError, OSError, TimeoutError, ValueError, IndexError) as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] += 1
            result.by_id.setdefault(d.delivery_id, []).append(status)

    async def sampler() -> None:
        while True:
            result.rss_kb.append(rss_kb(pid))
            await asyncio.sleep(0.25)

    async def run_all(posts: list[Any]) -> None:
        sampling = asyncio.create_task(sampler())
        try:
            async with asyncio.timeout(max_seconds):
                await asyncio.gather(*(sender(post) for post in posts))
        finally:
            sampling.cancel()

    if client == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=GITHUB_TIMEOUT_S, limits=limits) as http:

            async def post_httpx(d: Delivery) -> int:
                r = await http.post(url, content=d.body, headers=d.headers)
                return r.status_code

            await run_all([post_httpx] * concurrency)
    else:
        conns = [
            RawConnection(target.host, target.port or 80, reuse=client == "raw")
            for _ in range(concurrency)
        ]
        try:
            await run_all(
                [lambda d, c=c: c.post(target.raw_path.decode(), d.body, d.headers) for c in conns]
            )
        finally:
            for c in conns:
                await c.close()
    result.wall = time.perf_counter() - started
    result.server_cpu = cpu_seconds(pid) - cpu0
    result.client_cpu = time.process_time() - own0
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# ------------------------------------------------------------------------ server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(api_url: str, private_pem: str, data_dir: Path, args: argparse.Namespace) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "OPENAI_", "AZURE_", "DOCGEN_", "SENTRY_", "REDIS_"))
    }
    env.update(
        GITHUB_APP_ID="4242",
        GITHUB_PRIVATE_KEY=private_pem,
        GITHUB_WEBHOOK_SECRET=SECRET,
        GITHUB_API_URL=api_url,
        DOCGEN_DATA_DIR=str(data_dir),
        DOCGEN_WORKERS=str(args.workers),
        DOCGEN_WEB_PROCESSES=str(args.web_processes),
        LOG_LEVEL=args.log_level,
    )
    if args.redis:
        env["REDIS_URL"] = args.redis
        env["DOCGEN_REDIS_PREFIX"] = args.redis_prefix
    return env


def wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"docgen serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("docgen serve did not become healthy")


def server_ack_histogram(base: str) -> dict[str, Any]:
    """``docgen_webhook_ack_seconds`` from /metrics: count, mean and bucket counts."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    buckets, total, count = {}, 0.0, 0
    for line in text.splitlines():
        if line.startswith("docgen_webhook_ack_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("docgen_webhook_ack_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("docgen_webhook_ack_seconds_count"):
            count = int(float(line.rsplit(" ", 1)[1]))
    return {"count": count, "mean": total / count if count else 0.0, "buckets": buckets}


def server_quantile(hist: dict[str, Any], q: float) -> str:
    """The smallest bucket bound holding a fraction q of the server-side acks."""
    need = q * hist["count"]
    for le, n in sorted(hist["buckets"].items(), key=lambda kv: float(kv[0])):
        if n >= need:
            return f"<= {float(le) * 1000:g} ms"
    return "?"


# ----------------------------------------------------------------------- store


class SqliteView:
    """The embedded store, read-only: job counts and the consistency checks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def counts(self) -> dict[str, int]:
        conn = self._connect()
        try:
            return dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        finally:
            conn.close()

    def checks(self, sent_unique: set[str], accepted: list[str]) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) rows about what the store holds."""
        conn = self._connect()
        try:
            ids = {r[0] for r in conn.execute("SELECT delivery_id FROM deliveries")}
            jobs = conn.execute("SELECT key, state, delivery_id FROM jobs").fetchall()
            outcomes = dict(
                conn.execute("SELECT outcome, COUNT(*) FROM deliveries GROUP BY outcome")
            )
        finally:
            conn.close()
        job_ids = [d for _, _, d in jobs]
        per_key: Counter[tuple[str, str]] = Counter((k, s) for k, s, _ in jobs)
        doubles = [k for (k, s), n in per_key.items() if s in ("queued", "running") and n > 1]
        return [
            (
                "one deliveries row per unique id",
                ids == sent_unique,
                f"{len(ids):,} rows, {len(sent_unique):,} unique ids sent ({outcomes})",
            ),
            (
                "one job per accepted delivery",
                sorted(job_ids) == sorted(accepted),
                f"{len(jobs):,} jobs, {len(accepted):,} deliveries answered 202, "
                f"{len(set(job_ids)):,} distinct delivery ids on jobs",
            ),
            (
                "at most one queued and one running job per PR",
                not doubles,
                f"{len({k for k, _, _ in jobs})} PRs; violations: {doubles or 'none'}",
            ),
        ]


class RedisView:
    """The Redis store (``bot.runtime.queue.redis_store``'s key layout): counts and the same checks."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        from bot.runtime.queue.redis_store import RedisStore

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.store = RedisStore.from_url(url, prefix=prefix)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.store.counts().items() if v}

    def checks(self, sent_unique: set[str], accepted: list[str]) -> list[tuple[str, bool, str]]:
        marker = f"{self.prefix}:delivery:"
        ids = {k.removeprefix(marker) for k in self.client.scan_iter(f"{marker}*", count=1000)}
        jobs = [
            self.client.hget(k, "delivery_id")
            for k in self.client.scan_iter(f"{self.prefix}:job:*", count=1000)
            if self.client.type(k) == "hash"
        ]
        return [
            (
                "one delivery key per unique id",
                ids == sent_unique,
                f"{len(ids):,} keys, {len(sent_unique):,} unique ids sent",
            ),
            (
                "one job per accepted delivery",
                sorted(j for j in jobs if j) == sorted(accepted),
                f"{len(jobs):,} jobs, {len(accepted):,} deliveries answered 202",
            ),
        ]


# -------------------------------------------------------------------------- main


@dataclass
class Round:
    result: Result
    rss_before: int
    rss_after: int
    rss_drained: int
    drain_s: float | None
    counts_after_load: dict[str, int]


def drain(store: SqliteView | RedisView, seconds: float) -> float | None:
    """Wait until no job is queued or running; the time it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        counts = store.counts()
        if not counts.get("queued") and not counts.get("running"):
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def latency_row(label: str, result: Result) -> str:
    ms = [x * 1000 for x in result.latencies]
    over = sum(1 for x in ms if x >= TARGET_P99_MS)
    return (
        f"{label:<8} {len(ms):>6,} {len(ms) / result.wall:>7,.0f} "
        f"{percentile(ms, 50):>7.1f} {percentile(ms, 90):>7.1f} {percentile(ms, 99):>7.1f} "
        f"{max(ms):>7.1f} {statistics.fmean(ms):>7.1f} {over / len(ms):>7.1%} "
        f"{result.server_cpu / len(ms) * 1000:>8.2f} {result.client_cpu / len(ms) * 1000:>8.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="per round")
    parser.add_argument("--rounds", type=int, default=2, help="memory: RSS must not grow")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--prs", type=int, default=20)
    parser.add_argument("--redeliveries", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="DOCGEN_WORKERS")
    parser.add_argument(
        "--web-processes", type=int, default=1, help="DOCGEN_WEB_PROCESSES (embedded mode)"
    )
    parser.add_argument("--payload-kb", type=float, default=12.0, help="PR body padding")
    parser.add_argument("--rate", type=float, default=None, help="open loop: deliveries/s")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--client",
        choices=["raw", "raw-close", "httpx"],
        default="raw",
        help="raw: keep-alive asyncio streams; raw-close: a new connection per delivery",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the server")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on each round")
    parser.add_argument("--drain-seconds", type=float, default=240.0)
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument("--rss-tolerance-mb", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis", metavar="URL", help="Redis mode: REDIS_URL for serve")
    parser.add_argument(
        "--redis-workers", type=int, default=1, help="`docgen worker` processes in Redis mode"
    )
    args = parser.parse_args(argv)
    args.redis_prefix = f"loadbench{uuid.uuid4().hex[:8]}"  # a namespace of its own

    if args.redis:
        from bot.config import Settings

        if "redis_url" not in Settings.model_fields:
            print("--redis: this docgen has no Redis mode yet (Settings has no REDIS_URL)")
            return 2

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe()
    github = mp.Process(target=_fake_github_main, args=(public_pem, args.prs, child), daemon=True)
    github.start()
    api_url, heads = parent.recv()

    rng = random.Random(args.seed)

    def deliveries(n: int, redeliveries: float) -> list[Delivery]:
        return make_deliveries(
            n,
            heads,
            redeliveries=redeliveries,
            concurrency=args.concurrency,
            pad_kb=args.payload_kb,
            rng=rng,
        )

    warmup = deliveries(args.warmup, 0.0)
    loads = [deliveries(args.deliveries, args.redeliveries) for _ in range(args.rounds)]

    tmp = Path(tempfile.mkdtemp(prefix="docgen-load-"))
    data_dir, log_path = tmp / "data", tmp / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/webhook"
    rounds: list[Round] = []
    env = server_env(api_url, private_pem, data_dir, args)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [args.python, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers = [
            subprocess.Popen(
                [args.python, "-m", "bot.cli", "worker"],
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(args.redis_workers if args.redis else 0)
        ]
    try:
        wait_healthy(base, proc, log_path)
        store: SqliteView | RedisView = (
            RedisView(args.redis, args.redis_prefix)
            if args.redis
            else SqliteView(data_dir / "journal.sqlite3")
        )
        rss_idle = rss_kb(proc.pid)
        warm = asyncio.run(
            fire(
                url,
                warmup,
                concurrency=min(10, args.concurrency),
                rate=None,
                pid=proc.pid,
                max_seconds=60,
                client=args.client,
            )
        )
        time.sleep(1.0)
        rss_warm = rss_kb(proc.pid)
        for load in loads:
            before = rss_kb(proc.pid)
            result = asyncio.run(
                fire(
                    url,
                    load,
                    concurrency=args.concurrency,
                    rate=args.rate,
                    pid=proc.pid,
                    max_seconds=args.max_seconds,
                    client=args.client,
                )
            )
            after = rss_kb(proc.pid)
            counts = store.counts()
            drained = None if args.no_drain else drain(store, args.drain_seconds)
            rounds.append(Round(result, before, after, rss_kb(proc.pid), drained, counts))
        hist = server_ack_histogram(base)
        final_counts = store.counts()
        checks = store.checks(
            {d.delivery_id for d in warmup + [d for load in loads for d in load]},
            [
                d
                for run in (warm, *(r.result for r in rounds))
                for d, codes in run.by_id.items()
                for c in codes
                if c == 202
            ],
        )
    finally:
        for p in (proc, *workers):
            p.send_signal(signal.SIGTERM)
        for p in (proc, *workers):
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        parent.send("stop")
        github_stats = parent.recv() if parent.poll(10) else {}
        github.join(timeout=10)

    # ---------------------------------------------------------------- report
    results = [r.result for r in rounds]
    all_loads = [d for load in loads for d in load]
    sent = len(all_loads)
    answered = sum(len(r.latencies) for r in results)
    statuses: Counter[int] = sum((r.statuses for r in results), Counter())
    no_answer: Counter[str] = sum((r.errors for r in results), Counter())
    unexpected = {s: n for s, n in statuses.items() if s not in (200, 202)}
    by_id: dict[str, list[int]] = {}
    for run in (warm, *results):
        for d, codes in run.by_id.items():
            by_id.setdefault(d, []).extend(codes)
    redelivered = sum(1 for d in all_loads if d.redelivery)
    twice_accepted = [d for d, codes in by_id.items() if codes.count(202) > 1]
    log_text = log_path.read_text(errors="replace")
    log_lines = [line for line in log_text.splitlines() if line.strip()]
    error_lines = [line for line in log_lines if '"level": "error"' in line]
    leaked = [s for s in (SECRET, private_pem.splitlines()[1]) if s in log_text]
    server_python = subprocess.run(
        [
            args.python,
            "-c",
            "import sys, importlib.util as u; print(sys.version.split()[0], "
            "'uvloop' if u.find_spec('uvloop') else 'asyncio', "
            "'httptools' if u.find_spec('httptools') else 'h11')",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()

    mode = (
        f"Redis mode, {args.redis_workers} `docgen worker` process(es)"
        if args.redis
        else f"embedded: SQLite journal, {args.workers} job worker(s)"
        + (
            f" in the supervisor of {args.web_processes} web processes"
            if args.web_processes > 1
            else " in the web process"
        )
    )
    print(
        f"docgen serve ({mode}); Python {server_python[0]}, uvicorn on "
        f"{' + '.join(server_python[1:])}; {os.cpu_count()} cores"
    )
    print(
        f"{args.rounds} round(s) of {args.deliveries:,} deliveries ({redelivered // args.rounds} "
        f"redeliveries of earlier ids each) over {args.prs} PRs, ~{len(all_loads[0].body) / 1024:.1f}"
        f" KB each, concurrency {args.concurrency}, client {args.client}"
        + (f", open loop at {args.rate:g}/s" if args.rate else ", closed loop")
        + f"; warm-up {len(warmup)}"
    )
    print(f"statuses {dict(sorted(statuses.items()))}; no answer {dict(no_answer) or 0}")
    print()
    print("ack latency, client side (ms)                                    CPU ms/delivery")
    print("round    acks      /s     p50     p90     p99     max    mean  >=50ms   server   client")
    for i, r in enumerate(results, 1):
        print(latency_row(f"{i}", r))
    every = Result(latencies=[x for r in results for x in r.latencies])
    every.wall = sum(r.wall for r in results)
    every.server_cpu = sum(r.server_cpu for r in results)
    every.client_cpu = sum(r.client_cpu for r in results)
    if len(results) > 1:
        print(latency_row("all", every))
    print(
        f"server side (docgen_webhook_ack_seconds, {hist['count']:,} acks incl. warm-up): "
        f"mean {hist['mean'] * 1000:.2f} ms, p50 {server_quantile(hist, 0.5)}, "
        f"p99 {server_quantile(hist, 0.99)}"
    )
    print()
    mb = 1024
    print(f"server RSS (MB): idle {rss_idle / mb:.1f}, after warm-up {rss_warm / mb:.1f}")
    for i, r in enumerate(rounds, 1):
        print(
            f"  round {i}: before {r.rss_before / mb:.1f}, peak {max(r.result.rss_kb) / mb:.1f}, "
            f"after the load {r.rss_after / mb:.1f} ({(r.rss_after - r.rss_before) / mb:+.1f}), "
            + (
                f"queue drained in {r.drain_s:.1f} s: {r.rss_drained / mb:.1f}"
                if r.drain_s is not None
                else f"not drained: {r.rss_drained / mb:.1f}"
            )
        )
    # Steady state: from the end of round 1 (worker code paths and caches warm) to the end.
    if len(rounds) > 1:
        growth_mb = (rounds[-1].rss_drained - rounds[0].rss_drained) / mb
        growth_what = "from the end of round 1 to the end"
    else:
        growth_mb = (rounds[0].rss_after - rss_warm) / mb
        growth_what = "over the load"
    print()
    checks.append(("no delivery accepted twice", not twice_accepted, f"{len(twice_accepted)}"))
    checks.append(
        (
            "every redelivery answered 200 (duplicate)",
            statuses.get(200, 0) == redelivered,
            f"{statuses.get(200, 0)} of {redelivered}",
        )
    )
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    for i, r in enumerate(rounds, 1):
        print(f"jobs right after round {i}: {r.counts_after_load}")
    print(f"jobs at the end: {final_counts}")
    print(
        f"fake GitHub: {github_stats.get('check_runs')} check runs "
        f"({github_stats.get('completed')} completed), {github_stats.get('reviews')} reviews, "
        f"{sum((github_stats.get('calls') or {}).values())} calls, "
        f"errors {github_stats.get('errors') or 'none'}"
    )
    print(
        f"server log: {len(log_lines):,} JSON lines, {len(error_lines)} at error level; "
        f"secrets in the log: {leaked or 'none'}; exit code {proc.returncode}"
    )

    p99 = percentile(every.latencies, 99) * 1000
    failures = []
    if p99 >= TARGET_P99_MS:
        failures.append(f"p99 {p99:.1f} ms >= {TARGET_P99_MS:g} ms")
    if unexpected or no_answer or answered != sent:
        failures.append(f"errors: statuses {unexpected}, no answer {dict(no_answer)}")
    if not all(ok for _, ok, _ in checks):
        failures.append("journal checks failed")
    if growth_mb > args.rss_tolerance_mb:
        failures.append(f"RSS grew {growth_mb:.1f} MB {growth_what}")
    if not args.no_drain and any(r.drain_s is None for r in rounds):
        failures.append(f"the queue did not drain within {args.drain_seconds:g} s")
    if final_counts.get("failed"):
        failures.append(f"{final_counts['failed']} jobs failed")
    print()
    print(
        f"p99 {p99:.1f} ms (target < {TARGET_P99_MS:g} ms), "
        f"errors {sum(unexpected.values()) + sum(no_answer.values())}, "
        f"RSS {growth_mb:+.1f} MB {growth_what} (tolerance {args.rss_tolerance_mb:g}) -> "
        + ("MEETS the target" if not failures else "MISSES: " + "; ".join(failures))
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
