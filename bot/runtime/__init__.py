"""The App runtime: the other half of docgen, around the docstring pipeline.

Webhooks arrive at :mod:`~bot.runtime.web` (bounded by :mod:`~bot.runtime.intake`,
routed by :mod:`~bot.runtime.events`), are recorded with their job in the queue
(:mod:`~bot.runtime.queue`: one store protocol, a SQLite and a Redis store, one runner),
and run as review jobs (:mod:`~bot.runtime.review_job`) that talk to GitHub only
through :mod:`~bot.runtime.github`.  :mod:`~bot.runtime.compose` is the one place that
turns settings into these parts; :mod:`~bot.runtime.processes` runs them.
"""
