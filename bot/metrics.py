"""Prometheus metrics for ``GET /metrics`` (web and worker).

One :class:`Metrics` object per process, with its own registry (no module-level
globals, so tests get fresh counters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bot.models import Usage

log = logging.getLogger(__name__)


class Metrics:
    """The counters, gauges and histograms docgen exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "docgen_webhook_deliveries",
            "Webhook deliveries by event and outcome",
            ["event", "outcome"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "docgen_webhook_ack_seconds",
            "Time to acknowledge a webhook",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10),
            registry=r,
        )
        self.jobs = Gauge("docgen_jobs", "Jobs in the journal by state", ["state"], registry=r)
        self.job_results = Counter(
            "docgen_job_results", "Finished job runs by result", ["result"], registry=r
        )
        self.job_seconds = Histogram(
            "docgen_job_seconds",
            "Wall time of one job run",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.tokens = Counter("docgen_llm_tokens", "LLM tokens spent", ["kind"], registry=r)
        self.cost = Counter("docgen_llm_cost_usd", "LLM cost in US dollars", registry=r)
        self.llm_seconds = Histogram(
            "docgen_llm_call_seconds",
            "Latency of one LLM call",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 40, 60),
            registry=r,
        )
        self.github_calls = Counter(
            "docgen_github_api_calls", "GitHub API calls by method", ["method"], registry=r
        )
        self.rate_limit_remaining = Gauge(
            "docgen_github_rate_limit_remaining",
            "x-ratelimit-remaining last seen from GitHub",
            registry=r,
        )
        self.suggestions = Counter(
            "docgen_suggestions", "Docstring suggestions by action", ["action"], registry=r
        )
        self._collectors: list[Callable[[Metrics], None]] = []

    def on_collect(self, fn: Callable[[Metrics], None]) -> None:
        """Run ``fn`` before each scrape (e.g. to read job counts from the journal)."""
        self._collectors.append(fn)

    def record_usage(self, usage: Usage, cost_usd: float) -> None:
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)
        self.cost.inc(cost_usd)

    def render(self) -> bytes:
        for fn in self._collectors:
            try:
                fn(self)
            except Exception:  # a broken gauge must not break the scrape
                log.exception("metrics collector failed")
        return generate_latest(self.registry)
