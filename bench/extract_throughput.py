"""Throughput of ``bot.docstrings.extract.extract`` against a bare ``ast.parse``, over the stdlib.

Run by hand::

    python bench/extract_throughput.py [--include-tests] [--repeat 3] [--profile]

Every ``.py`` file of ``sysconfig.get_paths()["stdlib"]`` that parses is read once
(outside the timing); then the best of ``--repeat`` runs of ``ast.parse(bytes)`` over all
of them is compared with the best of ``extract(path, bytes, None, RepoConfig())``, which
returns every definition (no diff) and so does the most work.  The target is a ratio of
at most 1.5.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import os
import pstats
import sysconfig
import time
import warnings
from pathlib import Path

from bot.config import RepoConfig
from bot.docstrings.extract import extract

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_TEST_DIRS = {"test", "tests", "idle_test", "lib2to3_tests"}


def corpus(include_tests: bool) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every stdlib module that ``ast.parse`` accepts."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[tuple[str, bytes]] = []
    for folder, dirs, names in os.walk(root):
        skip = _SKIP_DIRS if include_tests else _SKIP_DIRS | _TEST_DIRS
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = Path(folder, name)
            data = path.read_bytes()
            try:
                ast.parse(data)
            except (SyntaxError, ValueError):
                continue
            files.append((path.relative_to(root).as_posix(), data))
    return files


def best_of(repeat: int, run: callable) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--include-tests", action="store_true", help="also Lib/test and co.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one extract pass")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # invalid escapes in old stdlib modules

    files = corpus(args.include_tests)
    config = RepoConfig(max_file_bytes=100_000_000)

    def parse_all() -> None:
        for _, data in files:
            ast.parse(data)

    def extract_all() -> None:
        for path, data in files:
            extract(path, data, None, config)

    results = [extract(path, data, None, config) for path, data in files]
    functions = sum(len(r.targets) for r in results)
    skipped = [r for r in results if r.skips]

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(extract_all)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    parse_s = best_of(args.repeat, parse_all)
    extract_s = best_of(args.repeat, extract_all)
    size = sum(len(data) for _, data in files)
    print(f"files       {len(files)} ({size / 1e6:.1f} MB), {len(skipped)} skipped by extract")
    print(f"definitions {functions}")
    print(f"ast.parse   {parse_s:.2f} s")
    print(f"extract     {extract_s:.2f} s")
    print(f"ratio       {extract_s / parse_s:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
