"""The exported metrics: every typed attribute of Metrics is made, registered, once.

The oracle is prometheus_client's own registry (what ``/metrics`` would show), not the
table in bot.runtime.metrics that builds it.
"""

from __future__ import annotations

import typing

from prometheus_client import Counter, Gauge, Histogram

from bot.runtime.metrics import Metrics


def test_every_declared_metric_is_made_and_registered():
    metrics = Metrics()
    declared = {
        name: kind
        for name, kind in typing.get_type_hints(Metrics).items()
        if kind in (Counter, Gauge, Histogram)
    }
    assert len(declared) >= 14
    registered = {family.name for family in metrics.registry.collect()}
    for name, kind in declared.items():
        metric = getattr(metrics, name)
        assert isinstance(metric, kind), name
        assert metric._name in registered, name  # the family name /metrics shows


def test_a_scrape_names_each_metric_once():
    text = Metrics().render().decode()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert all(name.startswith("docgen_") for name in types)
