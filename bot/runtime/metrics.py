"""Prometheus metrics for ``GET /metrics`` (web and worker).

One :class:`Metrics` object per process, with its own registry (no module-level
globals, so tests get fresh counters).  The web process serves them on its own port
(``bot.runtime.web``); ``docgen worker`` has no web app and serves them on
``DOCGEN_METRICS_PORT`` with :meth:`Metrics.serve`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from bot.docstrings.models import Usage
from bot.runtime.usage import UsageRow, per_installation

log = logging.getLogger(__name__)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: Path) -> None:
    """Keep this process's metrics in files under ``directory`` (prometheus_client's
    multiprocess mode), for every :class:`Metrics` made afterwards.

    Processes spawned afterwards inherit the environment variable and start in that
    mode on their own; this process imported prometheus_client before, so its value
    class is switched here too.
    """
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()


def _counter(name: str, doc: str, *labels: str) -> Callable[..., Counter]:
    return partial(Counter, name, doc, labels)


def _histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Callable[..., Histogram]:
    return partial(Histogram, name, doc, buckets=buckets)


def _gauge(name: str, doc: str, *labels: str, mode: str = "mostrecent") -> Callable[..., Gauge]:
    """A gauge; ``mode`` says how several processes' values add up when they share a
    PROMETHEUS_MULTIPROC_DIR (bot.runtime.processes), and is ignored otherwise."""
    return partial(Gauge, name, doc, labels, multiprocess_mode=mode)


# Every metric docgen exports, by its Metrics attribute.
_METRICS: dict[str, Callable[..., Any]] = {
    "deliveries": _counter(
        "docgen_webhook_deliveries", "Webhook deliveries by event and outcome", "event", "outcome"
    ),
    "ack_seconds": _histogram(
        "docgen_webhook_ack_seconds",
        "Time to acknowledge a webhook",
        (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10),
    ),
    "jobs": _gauge("docgen_jobs", "Jobs in the journal by state", "state"),
    "jobs_running": _gauge(
        "docgen_jobs_running", "Jobs running in this process now", mode="livesum"
    ),
    "job_results": _counter("docgen_job_results", "Finished job runs by result", "result"),
    "job_seconds": _histogram(
        "docgen_job_seconds", "Wall time of one job run", (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
    ),
    "tokens": _counter("docgen_llm_tokens", "LLM tokens spent", "kind"),
    "cost": _counter("docgen_llm_cost_usd", "LLM cost in US dollars"),
    "llm_seconds": _histogram(
        "docgen_llm_call_seconds", "Latency of one LLM call", (0.25, 0.5, 1, 2, 5, 10, 20, 40, 60)
    ),
    "github_calls": _counter("docgen_github_api_calls", "GitHub API calls by method", "method"),
    "rate_limit_remaining": _gauge(
        "docgen_github_rate_limit_remaining", "x-ratelimit-remaining last seen from GitHub"
    ),
    "suggestions": _counter("docgen_suggestions", "Docstring suggestions by action", "action"),
    # From the store's ledger at each scrape (usage_gauges): the same totals as
    # `docgen usage`, this UTC month.  Labels: installation ids only (bounded by the
    # installations of the App) and a fixed kind.
    "installation_tokens": _gauge(
        "docgen_installation_tokens",
        "LLM tokens spent this UTC month per installation",
        "installation",
        "kind",
    ),
    "installation_cost": _gauge(
        "docgen_installation_cost_usd",
        "LLM cost in US dollars this UTC month per installation",
        "installation",
    ),
}


class Metrics:
    """The counters, gauges and histograms docgen exports (:data:`_METRICS`)."""

    content_type = CONTENT_TYPE_LATEST

    deliveries: Counter
    ack_seconds: Histogram
    jobs: Gauge
    jobs_running: Gauge
    job_results: Counter
    job_seconds: Histogram
    tokens: Counter
    cost: Counter
    llm_seconds: Histogram
    github_calls: Counter
    rate_limit_remaining: Gauge
    suggestions: Counter
    installation_tokens: Gauge
    installation_cost: Gauge

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._collectors: list[Callable[[Metrics], None]] = []
        # First in the registry: the on_collect hooks run before any metric is read,
        # whoever scrapes (render() or the worker's server).
        self.registry.register(_Hooks(self))
        for attribute, make in _METRICS.items():
            setattr(self, attribute, make(registry=self.registry))

    def on_collect(self, fn: Callable[[Metrics], None]) -> None:
        """Run ``fn`` before each scrape (e.g. to read job counts from the store)."""
        self._collectors.append(fn)

    def record_usage(self, usage: Usage, cost_usd: float) -> None:
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)
        self.cost.inc(cost_usd)

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        # Several processes (bot.runtime.processes): every one writes its samples to files in
        # the directory; add them all up.  The hooks write this process's gauges first.
        self.run_collectors()
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)

    def run_collectors(self) -> None:
        for fn in self._collectors:
            try:
                fn(self)
            except Exception:  # a broken gauge must not break the scrape
                log.exception("metrics collector failed")

    def serve(self, port: int, host: str = "0.0.0.0") -> MetricsServer:
        """Serve ``GET /metrics`` on ``host:port`` from a thread; OSError if the port is taken."""
        return MetricsServer(self, port, host)


class UsageSource(Protocol):
    """What :func:`usage_gauges` reads: either store (SQLite or Redis)."""

    clock: Callable[[], float]

    def usage(self, month: str | None = None) -> list[UsageRow]: ...


def usage_gauges(source: UsageSource) -> Callable[[Metrics], None]:
    """An ``on_collect`` hook: this month's tokens and cost per installation.

    An installation seen earlier but not this month reads 0 (a new month), rather
    than keeping last month's figures.
    """
    seen: set[str] = set()

    def collect(m: Metrics) -> None:
        month = time.strftime("%Y-%m", time.gmtime(source.clock()))
        totals = per_installation(source.usage(month))
        current: set[str] = set()
        for inst, t in totals.items():
            label = "unknown" if inst is None else str(inst)
            current.add(label)
            m.installation_tokens.labels(label, "prompt").set(t.prompt_tokens)
            m.installation_tokens.labels(label, "completion").set(t.completion_tokens)
            m.installation_cost.labels(label).set(t.cost_usd)
        for label in seen - current:
            m.installation_tokens.labels(label, "prompt").set(0)
            m.installation_tokens.labels(label, "completion").set(0)
            m.installation_cost.labels(label).set(0)
        seen.update(current)

    return collect


class _Hooks:
    """A collector with no metrics of its own: it runs the ``on_collect`` hooks."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []  # registering must not run the hooks

    def collect(self) -> Iterable[Any]:
        self._metrics.run_collectors()
        return []


class MetricsServer:
    """prometheus_client's HTTP exposition server (a daemon thread) over one :class:`Metrics`.

    Any path answers with the metrics (``/metrics`` is what Prometheus asks for);
    requests are not logged, so the process's stderr stays JSON lines.
    """

    def __init__(self, metrics: Metrics, port: int, host: str = "0.0.0.0") -> None:
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.host = host
        self.port: int = self._server.server_address[1]
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
