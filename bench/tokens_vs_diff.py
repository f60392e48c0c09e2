"""Prompt tokens per documented function: docgen vs. sending the whole diff (PR-Agent).

Run by hand, from the repository root::

    python bench/tokens_vs_diff.py [--modules N] [--seed S] [--model gpt-4o-mini] [-v]

The target: docgen's prompt tokens per documented function are at most 0.5x those of
sending the PR's whole diff in one prompt, as PR-Agent's ``/add_docs`` does, on the same
PR.

**The PRs** (:mod:`corpus`, seeded): for each of ``--modules`` real stdlib modules,
base lacks four public functions the PR adds (head has them without docstrings), has an
older version of one line in each of three documented functions, and a small helper
the PR deletes.  Patches are ``difflib.unified_diff(n=3)`` hunks, as GitHub's ``patch``.

**Ours**: the real pipeline (:func:`bot.docstrings.pipeline.run`: diff → extract → triage →
``plan.plan`` → batched requests → validate) with a provider that records each
:class:`~bot.docstrings.llm.provider.GenerationRequest` it is sent and answers with valid parts.
Our tokens are :func:`bot.docstrings.llm.prompt.estimate_prompt_tokens` of those requests: system
prompt, plain-text items (a facts header, trimmed context and source in fences) and the
response schema (sent as ``json_schema``, as to OpenAI), o200k_base.
The budget is large enough that nothing is deferred (``--budget``).

**Theirs** (a lower bound, favouring PR-Agent): the diff rendered the way PR-Agent
renders it for its prompts — a ``## File: '...'`` line, then per hunk its ``@@`` line,
``__new hunk__`` (context and added lines, each prefixed with its new line number) and,
when lines were removed, ``__old hunk__`` (context and removed lines) — with its default
extra context (``patch_extra_lines_before=5``, ``patch_extra_lines_after=1`` on top of
GitHub's 3).  Its system prompt, the PR title/description and the answer format are
counted as **0** tokens, which favours PR-Agent.  Completion tokens are left out on
both sides.

Both sides are divided by the same number: the functions docgen documented (added or
updated) on that PR.  A "new file only" PR (the whole module added, no function
documented yet) is printed too, with the default config and with every skip rule off
(docgen then documents every function, private and trivial ones included, as a
whole-diff tool may): there the diff is almost all function code, which is where the
ratio is worst.  A last table varies the shape of the PR (how much of the diff is new,
undocumented function code), on which the ratio mostly depends.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import PullRequest, change_blocks, make_pr, new_file_pr

from bot.config import RepoConfig
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.llm.offline import offline_parts
from bot.docstrings.llm.prompt import estimate_prompt_tokens, prompt_source
from bot.docstrings.llm.provider import GenerationRequest, GenerationResult
from bot.docstrings.models import Action, DocParts, FileChange, Usage
from bot.docstrings.pipeline import run
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, encoding_for_model, load_encoding

# Real modules of various sizes and shapes (classes, functions, async, big and small).
MODULES = (
    "argparse.py",
    "textwrap.py",
    "difflib.py",
    "statistics.py",
    "shutil.py",
    "calendar.py",
    "configparser.py",
    "asyncio/base_events.py",
    "logging/__init__.py",
    "zipfile.py",
    "http/client.py",
    "urllib/parse.py",
    "pathlib.py",
    "inspect.py",
    "tarfile.py",
    "fractions.py",
    "pydoc.py",
    "subprocess.py",
    "email/message.py",
    "json/encoder.py",
)

PR_AGENT_EXTRA_BEFORE = 5  # configuration.toml: patch_extra_lines_before
PR_AGENT_EXTRA_AFTER = 1  # configuration.toml: patch_extra_lines_after
GITHUB_CONTEXT = 3


# ------------------------------------------------------------------------ theirs


def pr_agent_diff(pr: PullRequest) -> str:
    """The PR's diff as PR-Agent lays it out in a prompt (our approximation, see above)."""
    base = pr.base.splitlines()
    head = pr.head.splitlines()
    before = GITHUB_CONTEXT + PR_AGENT_EXTRA_BEFORE
    after = GITHUB_CONTEXT + PR_AGENT_EXTRA_AFTER
    out = [f"\n\n## File: '{pr.path}'\n"]
    for block in change_blocks(base, head, before, after):
        new_lines: list[str] = []
        old_lines: list[str] = []
        removed = False
        for tag, i1, i2, j1, j2 in block.ops:
            if tag == "equal":
                new_lines += [f"{j + 1}  {head[j]}" for j in range(j1, j2)]
                old_lines += [f" {base[i]}" for i in range(i1, i2)]
                continue
            new_lines += [f"{j + 1} +{head[j]}" for j in range(j1, j2)]
            old_lines += [f"-{base[i]}" for i in range(i1, i2)]
            removed = removed or i2 > i1
        out.append(
            f"\n@@ -{block.a1 + 1},{block.a2 - block.a1} +{block.b1 + 1},{block.b2 - block.b1} @@\n"
        )
        out.append("__new hunk__\n" + "".join(line + "\n" for line in new_lines))
        if removed:
            out.append("__old hunk__\n" + "".join(line + "\n" for line in old_lines))
    return "".join(out)


# -------------------------------------------------------------------------- ours


@dataclass
class RecordingProvider:
    """A stand-in for the model: records what the pipeline sends, answers validly.

    Answers are the offline skeleton's parts with a summary that does not restate the
    name (so no repair round is triggered by the answer itself); ``usage`` reports the
    prompt as we count it.
    """

    counter: TokenCounter
    model: str = "gpt-4o-mini"
    name: str = "recording"
    offline: bool = False
    requests: list[GenerationRequest] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        # What OpenAI is sent (strict structured output): without a mode the estimate is
        # the dearest of all modes (text mode spells the schema out), a budget's worst case.
        tokens = estimate_prompt_tokens(request, self.counter, "json_schema")
        self.prompt_tokens.append(tokens)
        parts: dict[str, DocParts] = {}
        for item in request.items:
            skeleton = offline_parts(item.target)
            parts[item.target.id] = DocParts(
                summary="Carry out the documented behaviour for the caller.",
                description="",
                params=skeleton.params,
                returns=skeleton.returns,
                yields=skeleton.yields,
                raises=skeleton.raises,
            )
        return GenerationResult(parts, {}, Usage(tokens, 0), self.model)


@dataclass
class Row:
    path: str
    documented: int
    sent: int  # definitions sent to the model (a repair round counts again)
    calls: int
    ours: int
    theirs: int
    overhead: int = 0  # ours: system prompt + schema + framing, once per call
    sources: int = 0  # ours: the definitions' sources (raw text, as sent)
    new_code: int = 0  # tokens of the added functions' code (what any tool must send)

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("inf")

    def __add__(self, other: Row) -> Row:
        return Row(
            "TOTAL",
            self.documented + other.documented,
            self.sent + other.sent,
            self.calls + other.calls,
            self.ours + other.ours,
            self.theirs + other.theirs,
            self.overhead + other.overhead,
            self.sources + other.sources,
            self.new_code + other.new_code,
        )


def measure(
    pr: PullRequest,
    counter: TokenCounter,
    budget: int,
    model: str,
    config: RepoConfig | None = None,
) -> Row:
    status = "added" if not pr.base else "modified"
    change = FileChange(pr.path, status, pr.patch, pr.head.encode("utf-8"))
    provider = RecordingProvider(counter, model)
    ctx = Context(
        config=config or RepoConfig(),
        provider=provider,
        cache=MemoryCache(),
        counter=counter,
        budget=TokenBudget(budget),
    )
    result = asyncio.run(run([change], ctx))
    documented = sum(
        1 for o in result.report.outcomes if o.action in (Action.ADDED, Action.UPDATED)
    )
    overhead = sum(
        estimate_prompt_tokens(GenerationRequest((), r.style, r.language), counter, "json_schema")
        for r in provider.requests
    )
    sources = sum(
        counter.count(prompt_source(i.target)) for r in provider.requests for i in r.items
    )
    return Row(
        pr.path,
        documented,
        sum(len(r.items) for r in provider.requests),
        len(provider.requests),
        sum(provider.prompt_tokens),
        counter.count(pr_agent_diff(pr)),
        overhead,
        sources,
        counter.count(pr.added_code),
    )


# ------------------------------------------------------------------------ report


def per_function(tokens: int, documented: int) -> str:
    return f"{tokens / documented:,.0f}" if documented else "-"


def table(title: str, rows: list[Row]) -> Row:
    print(f"\n{title}")
    print(
        f"{'file':<26} {'docs':>4} {'calls':>5} {'ours':>8} {'theirs':>8} "
        f"{'ours/fn':>8} {'theirs/fn':>9} {'ratio':>6}"
    )
    total = Row("TOTAL", 0, 0, 0, 0, 0)
    for r in [*rows, None]:
        if r is None:
            r = total
        else:
            total += r
        print(
            f"{r.path:<26} {r.documented:>4} {r.calls:>5} {r.ours:>8,} "
            f"{r.theirs:>8,} {per_function(r.ours, r.documented):>8} "
            f"{per_function(r.theirs, r.documented):>9} {r.ratio:>6.2f}"
        )
    rest = total.ours - total.overhead - total.sources
    print(
        f"ours = {total.overhead:,} per-call overhead (system prompt, schema; "
        f"{100 * total.overhead / max(1, total.ours):.0f} %) + {total.sources:,} sources, raw "
        f"text ({100 * total.sources / max(1, total.ours):.0f} %) + {rest:,} item headers, "
        f"fences and context ({100 * rest / max(1, total.ours):.0f} %); "
        f"the new functions' code alone is {100 * total.new_code / max(1, total.theirs):.0f} % "
        "of theirs"
    )
    return total


# Shapes of PR: (functions added, documented functions edited, lines changed in each).
MIXES = ((4, 3, 1), (4, 3, 3), (2, 6, 3), (1, 8, 3))


def typical(relpaths, args, counter, mix) -> list[Row]:
    added, edited, edit_lines = mix
    rng = random.Random(args.seed)
    rows = []
    for relpath in relpaths:
        pr = make_pr(relpath, rng, added=added, edited=edited, edit_lines=edit_lines)
        if pr is None:
            continue
        if args.verbose:
            print(f"{relpath}: adds {', '.join(pr.added)}; edits {', '.join(pr.edited)}")
        rows.append(measure(pr, counter, args.budget, args.model))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=len(MODULES), help="how many PRs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--budget", type=int, default=10_000_000, help="per-PR token budget")
    parser.add_argument("--new-files", type=int, default=6, help="new-file-only PRs to show")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each PR's changes")
    args = parser.parse_args()

    started = time.perf_counter()
    counter = TokenCounter(load_encoding(encoding_for_model(args.model)))
    relpaths = MODULES[: args.modules]
    print(
        f"tokens: {counter.name} ({args.model}); theirs = whole diff in PR-Agent's layout "
        f"with +{PR_AGENT_EXTRA_BEFORE}/+{PR_AGENT_EXTRA_AFTER} extra context, system "
        "prompt counted as 0 (favours PR-Agent)"
    )
    added, edited, edit_lines = MIXES[0]
    by_mix = {MIXES[0]: typical(relpaths, args, counter, MIXES[0])}
    total = table(
        f"Typical PRs ({added} new undocumented functions, {edited} documented ones with "
        f"{edit_lines} line edited, 1 deleted helper)",
        by_mix[MIXES[0]],
    )
    new_rows = [
        measure(new_file_pr(relpath), counter, args.budget, args.model)
        for relpath in relpaths[: args.new_files]
    ]
    new_total = table(
        "New-file-only PRs (the whole module added, no function documented; default "
        "config: private, dunder and trivial functions are not documented)",
        new_rows,
    )
    every = RepoConfig(
        skip_private=False, skip_dunder=False, skip_trivial=False, max_functions=100_000
    )
    every_rows = [
        measure(new_file_pr(relpath), counter, args.budget, args.model, every)
        for relpath in relpaths[: args.new_files]
    ]
    every_total = table(
        "The same new-file-only PRs with every skip rule off (every function documented)",
        every_rows,
    )

    print("\nOther shapes of PR (same modules and seed; TOTAL rows only)")
    print(
        f"{'added':>5} {'edited':>6} {'lines':>5} {'docs':>5} {'ours/fn':>8} {'theirs/fn':>9} "
        f"{'new code':>8} {'ratio':>6}"
    )
    for mix in MIXES:
        t = Row("TOTAL", 0, 0, 0, 0, 0)
        rows = by_mix.get(mix) or typical(relpaths, args, counter, mix)
        for r in rows:
            t += r
        print(
            f"{mix[0]:>5} {mix[1]:>6} {mix[2]:>5} {t.documented:>5} "
            f"{per_function(t.ours, t.documented):>8} {per_function(t.theirs, t.documented):>9} "
            f"{100 * t.new_code / max(1, t.theirs):>7.0f}% {t.ratio:>6.2f}"
        )

    verdict = "meets" if total.ratio <= 0.5 else "misses"
    print(
        f"\nratio ours/theirs on typical PRs: {total.ratio:.2f} ({verdict} the target <= 0.5); "
        f"new-file-only PRs: {new_total.ratio:.2f} (every function documented: "
        f"{every_total.ratio:.2f})"
    )
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
