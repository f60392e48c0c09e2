"""Cost of proving suggestions the way GitHub commits them, on big real files.

Run by hand::

    python bench/prove_github.py [--repeat 3]

For a few big stdlib modules, every docstring is stripped (so every definition is
MISSING) and the offline skeletons become edits, as the pipeline makes them; then
``bot.docstrings.proof.prove_module`` proves the first 200 (and all) of them: all together on
the file as GitHub would commit them (git's lines), each alone on its definition's
lines, the module's AST and its tokens outside docstrings (comments included).  The
figure to watch is the time per file against one ``ast.parse`` of it: linear in the
file, not in (file × suggestions).
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import read_text
from bot.config import RepoConfig
from bot.docstrings.edits import edit_region, make_edit
from bot.docstrings.extract import extract
from bot.docstrings.lines import python_lines
from bot.docstrings.llm.offline import offline_parts
from bot.docstrings.models import Decision, Style
from bot.docstrings.proof import Accepted, prove_module
from bot.docstrings.style import compose

FILES = ("tkinter/__init__.py", "argparse.py", "typing.py", "_pydecimal.py")
ALL = RepoConfig(skip_private=False, skip_dunder=False, skip_tests=False, skip_trivial=False)


def _stripped(text: str) -> str:
    """``text`` without docstrings (``ast.unparse`` would lose comments: cut lines)."""
    lines = python_lines(text)
    for node in sorted(
        (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef | ast.ClassDef)),
        key=lambda n: -n.lineno,
    ):
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
            and first.lineno > node.lineno
            and len(node.body) > 1
        ):
            del lines[first.lineno - 1 : first.end_lineno]
    return "".join(lines)


def edits(path: str, text: str) -> list[Accepted]:
    lines = [line.rstrip("\r\n") for line in python_lines(text)]
    out = []
    for target in extract(path, text.encode(), None, ALL).targets:
        if target.decision != Decision.MISSING or isinstance(edit_region(target), str):
            continue
        doc = compose(offline_parts(target), target, Style.GOOGLE)
        out.append(Accepted(target, make_edit(target, doc, lines)))
    return out


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'file':<22} {'lines':>6} {'edits':>6} {'ast.parse':>10} {'prove':>8} {'ratio':>7}")
    for path in FILES:
        text = _stripped(read_text(path))
        found = edits(path, text)
        parse_s = best(args.repeat, lambda text=text: ast.parse(text))
        for n in sorted({min(200, len(found)), len(found)}):
            chosen = found[:n]
            prove_s = best(args.repeat, lambda text=text, c=chosen: prove_module(text, c))
            rejected = prove_module(text, chosen)[1]
            assert not rejected, rejected[:3]
            print(
                f"{path:<22} {text.count(chr(10)):>6} {n:>6} {parse_s:>9.3f}s "
                f"{prove_s:>7.3f}s {prove_s / parse_s:>6.1f}x"
            )


if __name__ == "__main__":
    main()
