"""The SQLite store's token ledger and installation caps (invariant 3, ``docgen usage``).

A mixin of :class:`bot.runtime.queue.sqlite_store.SqliteStore`: the same file, connections and
write transactions (``atomic``), so a run's spend and a cap reservation are as durable
as its job.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

from bot.docstrings import quota
from bot.runtime.queue.store import RunSpend, Spend
from bot.runtime.usage import UsageRow, sort_rows


class SqliteLedger:
    """What each run spent, per PR and per installation, and the installations' caps."""

    clock: Callable[[], float]

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def atomic(self, *, wait: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def add_spend(self, key: str, spend: RunSpend) -> None:
        """Record what one run of ``key`` (a PR) spent on the LLM.

        ``spend.repo`` defaults to the ``owner/name`` part of the key.
        """
        with self.atomic() as conn:
            conn.execute(
                "INSERT INTO ledger (key, job_id, head_sha, model, prompt_tokens,"
                " completion_tokens, cost_usd, created, installation_id, repo)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    spend.job_id,
                    spend.head_sha,
                    spend.model,
                    spend.prompt_tokens,
                    spend.completion_tokens,
                    spend.cost_usd,
                    self.clock(),
                    spend.installation_id,
                    spend.repo or key.partition("#")[0],
                ),
            )

    def spent(self, key: str) -> Spend:
        """Everything runs of ``key`` (a PR) have spent so far."""
        row = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
                " COALESCE(SUM(cost_usd), 0), COUNT(*) FROM ledger WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        return Spend(int(row[0]), int(row[1]), float(row[2]), int(row[3]))

    def usage(self, month: str | None = None) -> list[UsageRow]:
        """The ledger summed per installation, repository and UTC month (or one month)."""
        where, params = "", ()
        if month is not None:
            where, params = "WHERE created >= ? AND created < ?", quota.month_bounds(month)
        rows = self._conn().execute(
            "SELECT installation_id, COALESCE(repo, substr(key, 1, instr(key || '#', '#') - 1)),"
            " strftime('%Y-%m', created, 'unixepoch'), SUM(prompt_tokens),"
            f" SUM(completion_tokens), SUM(cost_usd), COUNT(*) FROM ledger {where}"
            " GROUP BY 1, 2, 3",
            params,
        )
        return sort_rows(
            UsageRow(row[0], row[1], row[2], int(row[3]), int(row[4]), float(row[5]), int(row[6]))
            for row in rows
        )

    # ------------------------------------------------------- installation caps

    def reserve_tokens(
        self, installation_id: int, tokens: int, caps: quota.Caps
    ) -> quota.Hold | quota.CapHit:
        """Count ``tokens`` against the installation's day and month, unless over a cap.

        One write transaction: concurrent reservations (any thread or process on this
        file) are serialised by SQLite's write lock, so none can take room another took.
        """
        now = self.clock()
        periods = quota.Periods.at(now)
        with self.atomic() as conn:
            hit = quota.check(self._cap_used(conn, installation_id, periods), tokens, caps, now)
            if hit is not None:
                return hit
            for period, window in ((periods.day, "day"), (periods.month, "month")):
                conn.execute(
                    "INSERT INTO cap_counters VALUES (?, ?, ?, ?) ON CONFLICT (installation_id,"
                    " period) DO UPDATE SET tokens = tokens + excluded.tokens",
                    (installation_id, period, tokens, quota.resets_at(window, now)),
                )
        return quota.Hold(installation_id, periods, tokens)

    def settle_tokens(self, hold: quota.Hold, actual: int) -> None:
        """Replace ``hold`` by ``actual`` tokens, in the periods the hold was counted in."""
        delta = max(0, actual) - hold.tokens
        if not delta:
            return
        with self.atomic() as conn:
            conn.execute(
                "UPDATE cap_counters SET tokens = MAX(0, tokens + ?)"
                " WHERE installation_id = ? AND period IN (?, ?)",
                (delta, hold.installation_id, hold.periods.day, hold.periods.month),
            )

    def cap_used(self, installation_id: int) -> quota.Used:
        """Tokens counted against the installation's caps today and this month (UTC)."""
        return self._cap_used(self._conn(), installation_id, quota.Periods.at(self.clock()))

    @staticmethod
    def _cap_used(
        conn: sqlite3.Connection, installation_id: int, periods: quota.Periods
    ) -> quota.Used:
        rows = dict(
            conn.execute(
                "SELECT period, tokens FROM cap_counters"
                " WHERE installation_id = ? AND period IN (?, ?)",
                (installation_id, periods.day, periods.month),
            ).fetchall()
        )
        return quota.Used(int(rows.get(periods.day, 0)), int(rows.get(periods.month, 0)))
