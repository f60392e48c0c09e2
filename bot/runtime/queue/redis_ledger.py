"""The Redis store's token ledger and installation caps (invariant 3, ``docgen usage``).

A mixin of :class:`bot.runtime.queue.redis_store.RedisStore`: a hash per PR (its running
total), one per month (per installation and repository), and a counter per
installation and period for the caps, each expiring when no longer needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis
from redis.client import Pipeline

from bot.docstrings import quota
from bot.runtime.queue.store import RunSpend, Spend
from bot.runtime.usage import UsageRow, sort_rows

LEDGER_RETENTION = 90 * 24 * 3600  # a PR's spend, kept this long after its last run
USAGE_RETENTION = 400 * 24 * 3600  # a month's totals per installation and repository

T = TypeVar("T")


class RedisLedger:
    """What each run spent, per PR and per installation, and the installations' caps."""

    client: redis.Redis
    prefix: str
    clock: Callable[[], float]

    def _transaction(self, fn: Callable[[Pipeline], T]) -> T:
        raise NotImplementedError

    # ------------------------------------------------------------------ ledger

    def _ledger_key(self, key: str) -> str:
        return f"{self.prefix}:ledger:{key}"

    def add_spend(self, key: str, spend: RunSpend) -> None:
        """Add what one run of ``key`` (a PR) spent to the PR's totals, and to its
        installation's and repository's totals of the month (``docgen usage``)."""
        ledger = self._ledger_key(key)
        month = quota.Periods.at(self.clock()).month
        monthly = self._usage_key(month)
        inst = "" if spend.installation_id is None else str(spend.installation_id)
        field = f"{inst}|{spend.repo or key.partition('#')[0]}"
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(ledger, "prompt_tokens", spend.prompt_tokens)
            pipe.hincrby(ledger, "completion_tokens", spend.completion_tokens)
            pipe.hincrbyfloat(ledger, "cost_usd", spend.cost_usd)
            pipe.hincrby(ledger, "runs", 1)
            pipe.expire(ledger, LEDGER_RETENTION)
            pipe.hincrby(monthly, f"{field}|prompt_tokens", spend.prompt_tokens)
            pipe.hincrby(monthly, f"{field}|completion_tokens", spend.completion_tokens)
            pipe.hincrbyfloat(monthly, f"{field}|cost_usd", spend.cost_usd)
            pipe.hincrby(monthly, f"{field}|runs", 1)
            pipe.expire(monthly, USAGE_RETENTION)
            pipe.zadd(self._usage_months_key, {month: quota.month_bounds(month)[0]})
            pipe.execute()

    def _usage_key(self, month: str) -> str:
        return f"{self.prefix}:usage:{month}"

    @property
    def _usage_months_key(self) -> str:
        return f"{self.prefix}:usage:months"

    def usage(self, month: str | None = None) -> list[UsageRow]:
        """The ledger summed per installation, repository and UTC month (or one month).

        One hash per month: fields ``installation|owner/repo|total``.
        """
        cutoff = self.clock() - USAGE_RETENTION
        self.client.zremrangebyscore(self._usage_months_key, "-inf", cutoff)
        months = [month] if month else self.client.zrange(self._usage_months_key, 0, -1)
        rows: list[UsageRow] = []
        for m in months:
            sums: dict[tuple[str, str], dict[str, str]] = {}
            for name, value in self.client.hgetall(self._usage_key(m)).items():
                inst, repo, total = name.rsplit("|", 2)
                sums.setdefault((inst, repo), {})[total] = value
            for (inst, repo), f in sums.items():
                rows.append(
                    UsageRow(
                        int(inst) if inst else None,
                        repo,
                        m,
                        int(f.get("prompt_tokens", 0)),
                        int(f.get("completion_tokens", 0)),
                        float(f.get("cost_usd", 0.0)),
                        int(f.get("runs", 0)),
                    )
                )
        return sort_rows(rows)

    # ------------------------------------------------------- installation caps

    def _cap_key(self, installation_id: int, period: str) -> str:
        return f"{self.prefix}:cap:{installation_id}:{period}"

    def reserve_tokens(
        self, installation_id: int, tokens: int, caps: quota.Caps
    ) -> quota.Hold | quota.CapHit:
        """Count ``tokens`` against the installation's day and month, unless over a cap.

        WATCH both counters, decide with :func:`bot.docstrings.quota.check`, increment both in
        MULTI: a reservation made by another worker in between retries the decision.
        """
        now = self.clock()
        periods = quota.Periods.at(now)
        day = self._cap_key(installation_id, periods.day)
        month = self._cap_key(installation_id, periods.month)

        def take(pipe: Pipeline) -> quota.Hold | quota.CapHit:
            pipe.watch(day, month)
            used = quota.Used(int(pipe.get(day) or 0), int(pipe.get(month) or 0))
            hit = quota.check(used, tokens, caps, now)
            if hit is not None:
                pipe.unwatch()
                return hit
            pipe.multi()
            for key, window in ((day, "day"), (month, "month")):
                pipe.incrby(key, tokens)
                # Relative to our clock: the period's end, plus a day for late settles.
                ttl = quota.resets_at(window, now) - now + quota.GRACE  # type: ignore[arg-type]
                pipe.expire(key, int(ttl) + 1)
            pipe.execute()
            return quota.Hold(installation_id, periods, tokens)

        return self._transaction(take)

    def settle_tokens(self, hold: quota.Hold, actual: int) -> None:
        """Replace ``hold`` by ``actual`` tokens, in the periods the hold was counted in."""
        delta = max(0, actual) - hold.tokens
        if not delta:
            return
        with self.client.pipeline(transaction=True) as pipe:
            for period in (hold.periods.day, hold.periods.month):
                pipe.incrby(self._cap_key(hold.installation_id, period), delta)
            pipe.execute()

    def cap_used(self, installation_id: int) -> quota.Used:
        """Tokens counted against the installation's caps today and this month (UTC)."""
        periods = quota.Periods.at(self.clock())
        day, month = self.client.mget(
            self._cap_key(installation_id, periods.day),
            self._cap_key(installation_id, periods.month),
        )
        return quota.Used(max(0, int(day or 0)), max(0, int(month or 0)))

    def spent(self, key: str) -> Spend:
        """Everything runs of ``key`` (a PR) have spent so far."""
        row = self.client.hgetall(self._ledger_key(key))
        return Spend(
            int(row.get("prompt_tokens", 0)),
            int(row.get("completion_tokens", 0)),
            float(row.get("cost_usd", 0.0)),
            int(row.get("runs", 0)),
        )
