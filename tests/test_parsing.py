"""Quiet parses from many threads leave the process's warning filters as they were."""

from __future__ import annotations

import threading
import warnings

import pytest

from bot.docstrings import extract, proof
from bot.docstrings.parsing import parse_quietly

# An invalid escape sequence: a SyntaxWarning (DeprecationWarning before 3.12) on parse.
NOISY = 'def f():\n    return "\\d+"\n'


def test_their_warnings_are_not_raised_even_under_error_filters() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = parse_quietly(NOISY, filename="noisy.py")
    assert tree.body[0].name == "f"  # type: ignore[attr-defined]


def test_syntax_errors_still_raise() -> None:
    with pytest.raises(SyntaxError):
        parse_quietly("def f(:\n")


def test_parsing_in_threads_leaves_the_warning_filters_as_they_were() -> None:
    """Without the lock, interleaved ``catch_warnings`` blocks restore each other's
    filter lists and can leave "ignore" installed process-wide."""
    before = list(warnings.filters)
    source = NOISY * 200
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work() -> None:
        try:
            start.wait()
            for _ in range(40):
                parse_quietly(source)
                proof.parse(source)
                extract.collect_docstrings(source.encode())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert warnings.filters == before
