"""The processes: ``docgen serve`` (one process or several) and ``docgen worker``.

Their parts come from :mod:`bot.runtime.compose`; this module runs them (uvicorn, the
supervisor of web processes, arq's loop) and handles signals.

``docgen serve`` with several web processes (``DOCGEN_WEB_PROCESSES``, both modes):

One Python process acknowledges about 1,100-1,200 deliveries a second on two shared
cores (uvicorn on uvloop and httptools, group-committed store writes); with 50
deliveries in flight each then waits ~45 ms behind the others, and the reviews it runs
share its interpreter.  More processes answer more: this runs

* ``N`` web processes (spawned; restarted when one dies; SIGTERM/SIGINT stops them
  gracefully), each running uvicorn on its own ``SO_REUSEPORT`` socket on the same
  port, so the kernel spreads connections over them by address hash.  Each verifies,
  records and enqueues (``bot.runtime.web.Recorder``: group commit, polite waits for the
  write lock) through its own connection to the same SQLite store, and answers.  No
  job runs in them, so nothing competes with an acknowledgement.
* the job workers in the supervising process, in a thread with its own event loop
  (at nice ``DOCGEN_JOBS_NICE``): the one process holding the store's workers lock
  (:meth:`SqliteStore.lock_workers`), so start-up recovery stays right.  They find new
  jobs by polling the store; an installation deleted or suspended is recorded in
  the store by whichever web process got the event and read here before each job.
  They also checkpoint the store's WAL (the web processes' commits never do).
* Prometheus metrics in multiprocess mode: every process writes its samples to files
  under ``DOCGEN_DATA_DIR/metrics/<supervisor pid>``; ``/metrics`` on any web process
  adds them up.

With ``DOCGEN_WEB_PROCESSES=1`` (the default) none of this runs: one process serves
and works.  With ``REDIS_URL`` the web processes only enqueue and ``docgen worker``
processes run the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from starlette.applications import Starlette

from bot import logs
from bot.config import Settings, StartupError
from bot.runtime import compose, sentry
from bot.runtime.metrics import enable_multiprocess
from bot.runtime.queue.store import StoreError
from bot.runtime.secrets import secret_values

log = logging.getLogger(__name__)

METRICS_DIR = "metrics"
GAVE_UP = "the web processes kept exiting at start-up (their log lines say why)"


# ---------------------------------------------------------------- entry points


def serve(settings: Settings, host: str, port: int) -> None:
    """``docgen serve``: the web app (and, without REDIS_URL, the workers) until SIGTERM.

    Raises:
        StartupError: settings, data directory, store, Redis or port problems.
    """
    import uvicorn

    logs.setup(settings.log_level, secrets=secret_values(settings))
    sentry.init(settings)
    if settings.docgen_web_processes > 1:
        serve_processes(settings, host, port, settings.docgen_web_processes)
        return
    runtime = compose.build(settings)
    runtime.lock()
    uvicorn.run(
        runtime.app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging
        access_log=False,
        timeout_graceful_shutdown=30,
    )


def run_worker(settings: Settings) -> int:
    """``docgen worker``: run jobs from Redis until SIGTERM/SIGINT; the exit code."""
    # JSON lines only: drop the plain handler ``docgen``'s main() set up for other commands.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logs.setup(settings.log_level, secrets=secret_values(settings))
    sentry.init(settings)
    if settings.docgen_jobs_nice:
        # Before any thread starts: on Linux niceness is per thread, and inherited.
        with contextlib.suppress(OSError):
            os.nice(settings.docgen_jobs_nice)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # arq's Worker takes the current loop
    try:
        try:
            worker = compose.build_worker(settings)
        except StartupError as exc:
            print(f"docgen: {exc}", file=sys.stderr)
            return 2
        worker.run()  # returns after SIGTERM/SIGINT, running jobs drained or handed back
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0


# ---------------------------------------------------------------- web processes


def web_app() -> Starlette:
    """The app factory each web process calls (``uvicorn ... --factory``).

    Settings come from the environment the supervisor was started with (children are
    spawned: they inherit it).  Only verify, record, enqueue and answer here.
    """
    settings = Settings()
    logs.setup(settings.log_level, secrets=secret_values(settings))
    sentry.init(settings)
    try:
        return compose.build_web(settings).app
    except (StartupError, OSError, StoreError) as exc:
        log.error("web process cannot start: %s", exc)
        raise SystemExit(2) from None


def _metrics_dir(data_dir: Path) -> Path:
    """A fresh directory for this supervisor's metric files: ``metrics/<pid>``.

    Per supervisor, so that a second ``docgen serve`` on the same data directory
    (refused, or in Redis mode allowed) never wipes a running one's samples; the
    directories of supervisors that are gone are removed.
    """
    root = data_dir / METRICS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _listener(host: str, port: int) -> socket.socket:
    """A TCP socket on ``host:port`` with ``SO_REUSEPORT``: every web process binds its
    own, and the kernel spreads connections over them by address hash.

    One shared listening socket (uvicorn's ``workers=N``) lets whichever process is
    idle at ``accept`` take a connection: GitHub's and load balancers' keep-alive
    connections then pile onto one process while the other idles.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _web_process(host: str, port: int) -> None:
    """One web process (spawned): its own listening socket, uvicorn, the app factory."""
    import uvicorn

    sock = _listener(host, port)
    sock.listen(2048)
    config = uvicorn.Config(
        "bot.runtime.processes:web_app",
        factory=True,
        log_config=None,  # our JSON logging, set up by the factory
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=[sock])  # SIGTERM/SIGINT: graceful shutdown


class WebProcesses:
    """Start ``count`` web processes, restart one that dies, stop them all on request.

    A process that dies within ``QUICK`` seconds of its start counts as a failed start;
    after ``MAX_QUICK_DEATHS`` in a row the supervisor gives up (a broken setting, a
    port in use) instead of restarting forever.
    """

    QUICK = 10.0
    MAX_QUICK_DEATHS = 3

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self._ctx = multiprocessing.get_context("spawn")  # no state inherited but the env
        self._procs: list[tuple[multiprocessing.process.BaseProcess, float]] = []
        self.quick_deaths = 0

    def _start_one(self) -> tuple[multiprocessing.process.BaseProcess, float]:
        proc = self._ctx.Process(
            target=_web_process, args=(self.host, self.port), name="docgen-web", daemon=False
        )
        proc.start()
        return proc, time.monotonic()

    def start(self) -> None:
        self._procs = [self._start_one() for _ in range(self.count)]

    def check(self) -> bool:
        """Restart the dead; False when they keep dying at start-up (give up)."""
        for i, (proc, started) in enumerate(self._procs):
            if proc.is_alive():
                continue
            quick = time.monotonic() - started < self.QUICK
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            log.warning(
                "web process %s exited with %s%s",
                proc.pid,
                proc.exitcode,
                "" if self.quick_deaths < self.MAX_QUICK_DEATHS else "; giving up",
            )
            if self.quick_deaths >= self.MAX_QUICK_DEATHS:
                return False
            self._procs[i] = self._start_one()
        return True

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc, _ in self._procs if proc.pid is not None]

    def stop(self, timeout: float = 35.0) -> None:
        """SIGTERM to each (uvicorn finishes the requests in flight), then wait; kill
        what is still there after ``timeout``."""
        for proc, _ in self._procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc, _ in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("web process %s did not stop: killed", proc.pid)
                proc.kill()
                proc.join(5)


def _run_web(host: str, port: int, processes: int) -> bool:
    """Supervise ``processes`` web processes until SIGTERM/SIGINT; False if they could
    not stay up (each one logs why)."""
    # Hold the port while the processes come and go: a bound, non-listening member
    # of the SO_REUSEPORT group takes no connections but keeps others off the port.
    try:
        holder = _listener(host, port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    web = WebProcesses(host, holder.getsockname()[1], processes)
    healthy = True
    try:
        web.start()
        log.info("web processes started", extra={"pids": web.pids, "port": web.port})
        while not stop.wait(0.5):
            if not web.check():
                healthy = False
                break
    finally:
        web.stop()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return healthy


def serve_processes(settings: Settings, host: str, port: int, processes: int) -> None:
    """Run ``processes`` web processes and this process's job workers until SIGTERM.

    Raises:
        StartupError: settings, data directory, store or lock problems, before any
            process is started.
    """
    jobs = compose.supervisor_jobs(settings)
    jobs.open()  # first: a refused second instance touches nothing
    try:
        # Multiprocess metrics: set before the first metric of this process and before
        # the web processes are spawned (they read it when prometheus_client is imported).
        metrics_dir = _metrics_dir(compose.data_dir(settings))
        enable_multiprocess(metrics_dir)
    except OSError as exc:
        jobs.stop()
        raise StartupError(f"DOCGEN_DATA_DIR is not usable ({exc})") from None
    try:
        jobs.start()
        log.info(
            "docgen started",
            extra={
                "web_processes": processes,
                "workers": settings.docgen_workers,
                "data_dir": str(compose.data_dir(settings)),
            },
        )
        healthy = _run_web(host, port, processes)
    finally:
        jobs.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("docgen stopped")
    if not healthy:
        raise StartupError(GAVE_UP)
