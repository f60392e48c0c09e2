"""The job queue: one store protocol (SQLite or Redis), one retry policy, one runner.

* :mod:`bot.runtime.queue.policy` — what happens to a job after an outcome (pure).
* :mod:`bot.runtime.queue.store` — the shared types and the :class:`~bot.runtime.queue.store.Store`
  protocol both stores implement.
"""
