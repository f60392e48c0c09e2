"""Progress on a terminal during ``docgen review`` (issue 13).

The terminal is real: a pseudo-terminal from ``os.openpty`` as the child's stderr,
so ``isatty()`` answers as it does for a person at a shell.  Without one (a pipe, CI)
and with ``--quiet``, stderr stays empty.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.sample import make_sample_repo
from bot.config import RepoConfig
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.llm.offline import OfflineProvider, offline_parts
from bot.docstrings.llm.provider import GenerationResult, ProviderError
from bot.docstrings.localgit import read_changes
from bot.docstrings.models import Usage
from bot.docstrings.pipeline import run
from bot.docstrings.progress import Progress, TerminalProgress, for_stream
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter

ROOT = Path(__file__).resolve().parents[1]
_OFFLINE = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "DOCGEN_PROVIDER")
CLEAR = "\r\x1b[K"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample_repo(tmp_path_factory.mktemp("progress") / "repo")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OFFLINE}
    env.pop("DOCGEN_DATA_DIR", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _review_cmd(repo: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "review", str(repo), "--base", "main",
            "--head", "feature", "--no-diff", *extra]  # fmt: skip


def _run_with_pty_stderr(cmd: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr on a new pseudo-terminal; (exit code, stdout, terminal)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError as exc:  # Linux: EIO once the child closed its end
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode()
    proc.stdout.close()
    code = proc.wait()
    os.close(master)
    return code, out, seen.decode()


def test_a_terminal_sees_counts_and_a_cleared_line(sample, tmp_path):
    cmd = _review_cmd(sample, "--offline", "--format", "json")
    code, out, tty = _run_with_pty_stderr(cmd, tmp_path)
    assert code == 0
    report = json.loads(out)  # stdout is the report alone
    written = sum(1 for o in report["outcomes"] if o["action"] in ("added", "updated"))
    assert written > 1
    assert "files parsed 0/1" in tty and "files parsed 1/1" in tty
    # The offline writer answers every definition it is sent, all of them documented.
    assert f"sent {written} · answered {written}" in tty
    assert tty.endswith(CLEAR)  # erased: what follows on the terminal starts clean


def test_quiet_keeps_the_terminal_silent(sample, tmp_path):
    code, out, tty = _run_with_pty_stderr(_review_cmd(sample, "--offline", "--quiet"), tmp_path)
    assert code == 0 and "Docstring coverage" in out
    assert tty == ""


def test_no_progress_when_stderr_is_not_a_terminal(sample, tmp_path):
    proc = subprocess.run(
        _review_cmd(sample, "--offline"), cwd=tmp_path, env=_env(), capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert proc.stderr == ""


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_counts_and_times():
    clock, stream = FakeClock(), io.StringIO()
    p = TerminalProgress(stream, clock=clock)
    try:
        p.start(3)
        p.file_parsed()
        p.file_parsed()
        assert p.line() == "docgen: files parsed 2/3 · 0.0s"
        p.items_sent(40)
        p.answers_received(12)
        clock.now += 4.25
        assert p.line() == "docgen: files parsed 2/3 · sent 40 · answered 12 · 4.2s"
    finally:
        p.close()
    written = stream.getvalue()
    assert written.endswith(CLEAR)
    p.file_parsed()  # after close: nothing more is drawn
    assert stream.getvalue() == written


def test_only_a_terminal_gets_a_line():
    assert type(for_stream(io.StringIO())) is Progress
    assert type(for_stream(sys.stderr, quiet=True)) is Progress
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            p = for_stream(tty)
            p.close()
        assert isinstance(p, TerminalProgress)
    finally:
        os.close(master)
        os.close(slave)


class _Counting(Progress):
    pass


class HalfAnswering:
    """An online provider (no network) that answers every other item, or fails."""

    name = "half"
    model = "gpt-4o-mini"
    offline = False
    concurrency = 1

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen = self.answered = 0

    async def generate(self, request):
        self.seen += len(request.items)
        if self.fail:
            request.spend.unanswered()
            raise ProviderError("could not connect")
        parts, errors = {}, {}
        for n, item in enumerate(request.items):
            if n % 2:
                errors[item.target.id] = "no entry"
            else:
                parts[item.target.id] = offline_parts(item.target)
        self.answered += len(parts)
        return GenerationResult(parts, errors, Usage(100, 50), self.model)


def _ctx(provider) -> Context:
    return Context(
        config=RepoConfig(),
        provider=provider,
        cache=MemoryCache(),
        counter=TokenCounter.lazy("o200k_base"),
        budget=TokenBudget(200_000),
        progress=_Counting(),
    )


def test_the_pipeline_reports_files_items_and_answers_offline(sample):
    changes = read_changes(sample, "main", "feature").changes
    ctx = _ctx(OfflineProvider())
    asyncio.run(run(changes, ctx))
    p = ctx.progress
    assert (p.files_total, p.files_done) == (len(changes), len(changes))
    assert p.sent == p.answered == 6  # the sample PR's six definitions to write


@pytest.mark.parametrize("fail", [False, True], ids=["model-answers-half", "model-unreachable"])
def test_the_pipeline_reports_what_the_model_was_sent_and_answered(sample, fail):
    changes = read_changes(sample, "main", "feature").changes
    provider = HalfAnswering(fail=fail)
    ctx = _ctx(provider)
    asyncio.run(run(changes, ctx))
    p = ctx.progress
    assert p.sent == provider.seen and p.sent >= 6
    assert p.answered == provider.answered
    assert p.answered == 0 if fail else 0 < p.answered < p.sent


def test_the_elapsed_time_moves_while_waiting_for_the_model(monkeypatch):
    import time

    from bot.docstrings import progress

    monkeypatch.setattr(progress, "REFRESH_S", 0.01)
    clock, stream = FakeClock(), io.StringIO()
    p = TerminalProgress(stream, clock=clock)
    try:
        p.start(1)
        p.items_sent(3)  # then nothing happens for a while: a slow model
        clock.now += 7.0
        deadline = time.monotonic() + 5
        while "7.0s" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        p.close()
    assert "docgen: files parsed 0/1 · sent 3 · answered 0 · 7.0s" in stream.getvalue()
