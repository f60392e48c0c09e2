"""Start-up cost of ``docgen review`` on a one-file change, offline (issue 13).

Builds a throw-away repository (a copy of this package's source as the "repository",
so the style scan would have real files to read) with one changed file, then times,
in the same run and on the same machine:

- ``python -c pass``            the interpreter's own floor
- ``git diff``                  what any git-based tool pays at least
- ``python -m bot.cli review``  the whole command, offline

Each is run ``--repeat`` times; the median and the minimum are printed.  Target:
review under 0.5 s here.

    python bench/startup.py [--repeat 7] [--code /path/to/another/checkout]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.5
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
CHANGE = '''

def cheapest(prices: dict[str, float], limit: int = 3) -> list[str]:
    """Return the names of the ``limit`` cheapest items.

    Args:
        prices: Price per item name.
        limit: How many names to return.
    """
    return sorted(prices, key=prices.__getitem__)[:limit]


def dearest(prices: dict[str, float], limit: int = 3) -> list[str]:
    return sorted(prices, key=prices.__getitem__, reverse=True)[:limit]
'''


def make_repo(where: Path) -> Path:
    """A git repository holding a copy of bot/'s sources, plus one changed file.

    The copy is not called ``bot``: ``python -m`` puts the working directory first
    on sys.path, and the review would import the copy instead of the code timed.
    """
    repo = where / "repo"
    src = repo / "src" / "shop"
    shutil.copytree(ROOT / "bot", src, ignore=shutil.ignore_patterns("data", "__pycache__"))
    env = {**os.environ, **_GIT_ENV}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    with open(src / "usage.py", "a", encoding="utf-8") as fh:
        fh.write(CHANGE)
    return repo


def timed(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose docgen to time (a/b runs)"
    )
    args = parser.parse_args()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "DOCGEN_"))
    }
    env["PYTHONPATH"] = str(args.code.resolve())
    with tempfile.TemporaryDirectory(prefix="docgen-startup-") as tmp:
        repo = make_repo(Path(tmp))
        runs = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "git diff": ["git", "diff", "main", "--", "src/shop/usage.py"],
            "docgen review --offline": [
                sys.executable, "-m", "bot.cli", "review", ".", "--base", "main", "--offline",
            ],
        }
        print(f"docgen from {args.code.resolve()}")
        print(f"{'command':<28} {'median s':>9} {'min s':>7}")
        results = {}
        for name, cmd in runs.items():
            t = timed(cmd, repo, env, args.repeat)
            results[name] = statistics.median(t)
            print(f"{name:<28} {statistics.median(t):>9.3f} {min(t):>7.3f}")
    review = results["docgen review --offline"]
    verdict = "under" if review < TARGET_S else "OVER"
    print(f"\nreview median {review:.3f} s: {verdict} the {TARGET_S} s target")
    return 0 if review < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
