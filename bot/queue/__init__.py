"""The job queue: one store protocol (SQLite or Redis), one retry policy, one runner.

* :mod:`bot.queue.policy` — what happens to a job after an outcome (pure).
* :mod:`bot.queue.store` — the shared types and the :class:`~bot.queue.store.Store`
  protocol both stores implement.
"""
