"""Child process for the kill -9 test in ``tests/test_jobs.py``.

Does what ``docgen serve`` does with one webhook: records the delivery and enqueues its
job in one commit, then runs a :class:`~bot.runtime.queue.pool.WorkerPool` whose handler opens a
"check run" (saves ``check_run_id`` 123), prints ``blocked`` and waits for ever — until
the test kills the process with SIGKILL.

Usage: ``python tests/jobs_crash_helper.py JOURNAL_PATH``
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.runtime.queue.pool import WorkerPool
from bot.runtime.queue.runner import JobContext
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.queue.store import Job

DELIVERY_ID = "crash-delivery-1"
KEY = "octo/hello#7"
CHECK_RUN_ID = 123


async def handler(job: Job, ctx: JobContext) -> None:
    ctx.save_data({"check_run_id": CHECK_RUN_ID})
    print("blocked", flush=True)
    await asyncio.Event().wait()


async def main(path: Path) -> None:
    store = SqliteStore(path)
    with store.atomic():
        if store.record_delivery(DELIVERY_ID, "pull_request", "opened", outcome="run"):
            payload = {"installation_id": 1, "head_sha": "a" * 40, "delivery_id": DELIVERY_ID}
            store.enqueue(KEY, "review", payload, delivery_id=DELIVERY_ID)
    pool = WorkerPool(store, handler, concurrency=1, poll_interval=0.05)
    await pool.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
