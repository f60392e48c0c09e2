"""Tokens per function: what the prompt and the answer cost, to calibrate the budget.

Run by hand::

    python bench/tokens_per_function.py [--root DIR] [--model gpt-4o-mini] [--max-files N]

Over every ``.py`` file under ``--root`` (default: the standard library, tests
excluded), every definition ``extract`` returns (no diff: all of them) that is not
skipped is measured:

* **prompt** — the definition's share of a request: the tokens of a one-item request
  minus those of an empty one (system prompt, schema, framing);
* **reserve** — :func:`bot.docstrings.plan.completion_reserve`, the ``max_tokens`` we hold back;
* **answer** — for definitions that already have a docstring, the tokens of the JSON
  answer that would carry it (summary, description, params, returns, yields, raises as
  ``docstring_parser`` reads them): a stand-in for what a model writes.

It prints percentiles, how often the reserve would have covered the answer, how many
definitions are too large for one request, and what a default budget buys.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sysconfig
import time
import warnings
from pathlib import Path

import docstring_parser

from bot.config import DEFAULT_TOKEN_BUDGET, RepoConfig
from bot.docstrings.budget import TokenBudget
from bot.docstrings.extract import extract
from bot.docstrings.llm.prompt import estimate_prompt_tokens
from bot.docstrings.llm.provider import GenerationItem, GenerationRequest
from bot.docstrings.models import Decision, Style, Target
from bot.docstrings.plan import PlanItem, completion_reserve, plan
from bot.docstrings.tokens import TokenCounter, encoding_for_model, load_encoding

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}


def files(root: Path, limit: int | None) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            if name.endswith(".py"):
                path = Path(folder, name)
                out.append((path.relative_to(root).as_posix(), path.read_bytes()))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def answer_json(target: Target, docstring: str) -> str | None:
    """The JSON answer that would carry ``docstring`` (None if it does not parse)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = docstring_parser.parse(docstring)
    except (docstring_parser.ParseError, ValueError):
        return None
    entry = {
        "id": "1",  # the short per-request id the model copies
        "summary": doc.short_description or "",
        "description": doc.long_description or "",
        "params": [{"name": p.arg_name, "description": p.description or ""} for p in doc.params],
        "returns": (doc.returns.description or "")
        if doc.returns and not doc.returns.is_generator
        else "",
        "yields": (doc.returns.description or "")
        if doc.returns and doc.returns.is_generator
        else "",
        "raises": [
            {"name": r.type_name or "", "description": r.description or ""} for r in doc.raises
        ],
    }
    return json.dumps(entry, ensure_ascii=False)


def pct(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--max-files", type=int, default=None)
    args = parser.parse_args()

    counter = TokenCounter(load_encoding(encoding_for_model(args.model)))
    config = RepoConfig(skip_private=False, skip_tests=False, skip_trivial=False)
    empty = estimate_prompt_tokens(GenerationRequest((), Style.GOOGLE), counter)

    started = time.perf_counter()
    prompt: list[int] = []
    reserve: list[int] = []
    answer: list[int] = []
    covered = 0
    items: list[PlanItem] = []
    corpus = files(args.root, args.max_files)
    for path, data in corpus:
        result = extract(path, data, None, config)
        for t in result.targets:
            if t.decision == Decision.SKIP:
                continue
            request = GenerationRequest((GenerationItem(t),), Style.GOOGLE)
            p = estimate_prompt_tokens(request, counter) - empty
            r = completion_reserve(t)
            prompt.append(p)
            reserve.append(r)
            items.append(PlanItem(t, p, r))
            if t.docstring:
                text = answer_json(t, t.docstring)
                if text is not None:
                    a = counter.count(text)
                    answer.append(a)
                    covered += a <= r
    elapsed = time.perf_counter() - started

    print(
        f"{len(corpus)} files, {len(prompt)} definitions, {elapsed:.1f} s ({args.model}, "
        f"{counter.name})"
    )
    print(f"request overhead (system prompt + schema + framing): {empty} tokens")
    print(f"{'':>10} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>7} {'mean':>7}")
    for name, values in (("prompt", prompt), ("reserve", reserve), ("answer", answer)):
        mean = statistics.fmean(values) if values else 0.0
        print(
            f"{name:>10} {pct(values, 0.5):>6} {pct(values, 0.9):>6} {pct(values, 0.99):>6} "
            f"{max(values, default=0):>7} {mean:>7.0f}"
        )
    if answer:
        print(
            f"reserve covered the answer for {100 * covered / len(answer):.1f} % "
            f"of {len(answer)} documented definitions"
        )
    too_large = sum(1 for p in prompt if p > 6000)
    print(f"too large for one request (> 6000 prompt tokens): {too_large}")
    sample = items[:100]
    if sample:
        result = plan(sample, TokenBudget(DEFAULT_TOKEN_BUDGET), overhead_tokens=empty)
        planned = sum(len(b.items) for b in result.batches)
        print(
            f"default budget ({DEFAULT_TOKEN_BUDGET} tokens, 15 % held back) over the first "
            f"{len(sample)} definitions: {planned} planned in {len(result.batches)} calls "
            f"({result.tokens} tokens reserved), {len(result.deferred)} deferred"
        )


if __name__ == "__main__":
    main()
