"""Per-installation token caps and the usage ledger: one contract, SQLite and Redis alike.

The pure rule (:func:`bot.docstrings.quota.check`, the periods) is tested against the calendar;
the stores are tested as the workers use them — several connections at once, a
reopen standing for a restart, a clock that crosses midnight.  The Redis half needs
a real Redis (``DOCGEN_TEST_REDIS_URL``, see ``tests/redis_helpers.py``) and skips
without one.
"""

from __future__ import annotations

import calendar
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config import RepoConfig, Settings
from bot.docstrings import quota
from bot.docstrings.budget import CapReached, InstallationQuota, TokenBudget
from bot.docstrings.quota import CapHit, Caps, Periods, Used
from bot.runtime.metrics import Metrics, usage_gauges
from bot.runtime.queue.redis_store import RedisStore
from bot.runtime.queue.sqlite_store import SqliteStore
from bot.runtime.usage import UsageRow
from tests import redis_helpers
from tests.factories import Clock, record_spend

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures

INST = 4242
# 2025-06-30 23:59:00 UTC: a minute before both a day and a month end.
EVE = calendar.timegm((2025, 6, 30, 23, 59, 0))


# ------------------------------------------------------------------ the pure rule


def test_periods_and_resets_follow_the_utc_calendar() -> None:
    assert Periods.at(EVE) == Periods("2025-06-30", "2025-06")
    assert quota.resets_at("day", EVE) == calendar.timegm((2025, 7, 1, 0, 0, 0))
    assert quota.resets_at("month", EVE) == calendar.timegm((2025, 7, 1, 0, 0, 0))
    december = calendar.timegm((2024, 12, 15, 12, 0, 0))
    assert quota.resets_at("month", december) == calendar.timegm((2025, 1, 1, 0, 0, 0))
    assert quota.month_bounds("2024-02") == (
        calendar.timegm((2024, 2, 1, 0, 0, 0)),
        calendar.timegm((2024, 3, 1, 0, 0, 0)),
    )


@pytest.mark.parametrize(
    ("used", "tokens", "caps", "window"),
    [
        pytest.param(Used(900, 900), 100, Caps(1000, 5000), None, id="exactly-fits"),
        pytest.param(Used(900, 900), 101, Caps(1000, 5000), "day", id="over-the-day"),
        pytest.param(Used(0, 4950), 100, Caps(1000, 5000), "month", id="over-the-month"),
        pytest.param(Used(999, 4999), 100, Caps(1000, 5000), "month", id="both-month-named"),
        pytest.param(Used(10**9, 10**9), 10**6, Caps(0, 0), None, id="zero-is-no-cap"),
        pytest.param(Used(10**9, 0), 1, Caps(0, 10), None, id="day-unlimited"),
    ],
)
def test_check_names_the_cap_a_call_would_cross(
    used: Used, tokens: int, caps: Caps, window: str | None
) -> None:
    hit = quota.check(used, tokens, caps, EVE)
    assert (hit.window if hit else None) == window
    if hit is not None:
        assert hit.used == used.of(hit.window) and hit.needed == tokens
        assert hit.limit == (caps.day if window == "day" else caps.month)


def test_a_cap_hit_says_which_cap_how_much_was_used_and_when_it_resets() -> None:
    hit = quota.check(Used(49_800, 49_800), 1_200, Caps(50_000, 0), EVE)
    assert hit is not None
    text = hit.message()
    assert "daily token cap" in text and "49,800 of 50,000 tokens used today" in text
    assert "resets at 2025-07-01 00:00 UTC" in text
    assert hit.title() == "Installation daily token cap reached"


def test_negative_caps_are_refused() -> None:
    with pytest.raises(ValueError):
        Caps(-1, 0)


# ------------------------------------------------------------------ fork PRs


@pytest.mark.parametrize(
    ("env", "repo", "fork", "expected"),
    [
        pytest.param({}, {}, False, 20_000, id="normal-pr"),
        pytest.param({}, {}, True, 5_000, id="fork-default-is-lower"),
        pytest.param({"docgen_fork_token_budget": 8_000}, {}, True, 8_000, id="admin-setting"),
        pytest.param({}, {"fork_budget": 2_000}, True, 2_000, id="repo-may-lower"),
        pytest.param({}, {"fork_budget": 50_000}, True, 5_000, id="repo-cannot-raise"),
        pytest.param({"docgen_token_budget": 3_000}, {}, True, 3_000, id="never-above-normal"),
        pytest.param({}, {"budget": 4_000}, True, 4_000, id="repo-budget-bounds-forks"),
    ],
)
def test_fork_prs_get_a_lower_budget(env, repo, fork, expected) -> None:
    settings = Settings(_env_file=None, **env)
    assert quota.pr_token_budget(settings, RepoConfig(**repo), fork=fork) == expected


@pytest.mark.parametrize(
    ("setting", "repo", "expected"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_fork_prs_run_on_their_own_only_when_admin_and_repo_allow(setting, repo, expected) -> None:
    settings = Settings(_env_file=None, docgen_fork_auto_run=setting)
    assert quota.fork_runs_automatically(settings, RepoConfig(fork_auto_run=repo)) is expected


# ------------------------------------------------------------------ the stores


Store = SqliteStore | RedisStore


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Opens the store under test; calling it again is another process (or a restart)."""
    opened: list[Store] = []
    if request.param == "sqlite":

        def open_store(clock: Callable[[], float]) -> Store:
            store = SqliteStore(tmp_path / "journal.sqlite3", clock=clock)
            opened.append(store)
            return store

    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("ns")

        def open_store(clock: Callable[[], float]) -> Store:
            store = RedisStore.from_url(url, prefix=prefix, clock=clock)
            opened.append(store)
            return store

    yield open_store
    for store in opened:
        store.close()


def test_a_reservation_counts_in_the_day_and_the_month(opener) -> None:
    store = opener(Clock(EVE))
    hold = store.reserve_tokens(INST, 700, Caps(1000, 10_000))
    assert hold == quota.Hold(INST, Periods("2025-06-30", "2025-06"), 700)
    assert store.cap_used(INST) == Used(700, 700)
    assert store.cap_used(INST + 1) == Used(0, 0)  # installations are apart


def test_a_refused_reservation_counts_nothing_and_says_why(opener) -> None:
    store = opener(Clock(EVE))
    store.reserve_tokens(INST, 700, Caps(1000, 10_000))
    hit = store.reserve_tokens(INST, 301, Caps(1000, 10_000))
    assert hit == CapHit("day", 1000, 700, 301, calendar.timegm((2025, 7, 1, 0, 0, 0)))
    assert store.cap_used(INST) == Used(700, 700)
    assert isinstance(store.reserve_tokens(INST, 300, Caps(1000, 10_000)), quota.Hold)


def test_settling_replaces_the_hold_by_what_was_used(opener) -> None:
    store = opener(Clock(EVE))
    hold = store.reserve_tokens(INST, 900, Caps(1000, 0))
    store.settle_tokens(hold, 250)
    assert store.cap_used(INST) == Used(250, 250)
    store.settle_tokens(store.reserve_tokens(INST, 100, Caps(1000, 0)), 100)
    assert store.cap_used(INST) == Used(350, 350)


def test_a_call_settled_after_midnight_is_settled_in_its_own_day(opener) -> None:
    clock = Clock(EVE)
    store = opener(clock)
    hold = store.reserve_tokens(INST, 800, Caps(1000, 0))
    clock.now += 120  # 2025-07-01 00:01: a new day and a new month
    assert store.cap_used(INST) == Used(0, 0)
    new = store.reserve_tokens(INST, 1000, Caps(1000, 0))
    store.settle_tokens(hold, 300)
    assert store.cap_used(INST) == Used(1000, 1000)  # the new period is untouched
    store.settle_tokens(new, 10)
    clock.now -= 120
    assert store.cap_used(INST) == Used(300, 300)


def test_counters_survive_a_restart(opener) -> None:
    clock = Clock(EVE)
    opener(clock).reserve_tokens(INST, 600, Caps(1000, 0))
    again = opener(clock)
    assert again.cap_used(INST) == Used(600, 600)
    assert isinstance(again.reserve_tokens(INST, 401, Caps(1000, 0)), CapHit)


def test_processes_reserving_at_once_never_share_the_last_room(opener) -> None:
    """Eight workers, each with its own connection, race for a 5,000-token day."""
    clock = Clock(EVE)
    stores = [opener(clock) for _ in range(8)]
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def worker(store: Store) -> None:
        start.wait()
        for _ in range(20):
            if isinstance(store.reserve_tokens(INST, 100, Caps(5000, 0)), quota.Hold):
                with lock:
                    granted.append(100)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(granted) == 5000
    assert stores[0].cap_used(INST) == Used(5000, 5000)


def test_provider_usage_never_takes_an_installation_over_its_cap(opener) -> None:
    """Two PRs' budgets share one installation; every call uses at most what it held
    (the provider respects ``max_tokens``).  The count never passes the cap."""
    rng = random.Random(10)
    clock = Clock(EVE - 3600)
    store = opener(clock)
    caps = Caps(day=7_000, month=9_000)
    budgets = [
        TokenBudget(5_000, pool=InstallationQuota(store, INST, caps, clock)) for _ in range(2)
    ]
    refused = 0
    for _ in range(200):
        budget = rng.choice(budgets)
        try:
            reservation = budget.reserve(rng.randint(50, 600))
        except CapReached:
            refused += 1
            continue
        except Exception:  # the PR's own budget is spent
            continue
        budget.settle(reservation, rng.randint(0, reservation.tokens))
        used = store.cap_used(INST)
        assert used.day <= caps.day and used.month <= caps.month
    assert refused  # the caps did bite
    assert store.cap_used(INST).day == sum(b.spent for b in budgets)
    assert isinstance(budgets[0].refused or budgets[1].refused, CapReached)


def test_usage_sums_per_installation_repository_and_month(opener) -> None:
    clock = Clock(calendar.timegm((2025, 5, 31, 23, 0, 0)))
    store = opener(clock)

    record_spend(store, "octo/a#1", 1, 100, 10, 0.25)
    record_spend(store, "octo/a#2", 1, 200, 20, 0.5)
    record_spend(store, "octo/b#1", 1, 1, 1, 0.0)
    record_spend(store, "other/c#9", 2, 5, 5, 1.0)
    clock.now += 7200  # June
    record_spend(store, "octo/a#1", 1, 1000, 100, 2.0)
    record_spend(store, "legacy/x#3", None, 7, 3, 0.0)

    may = [
        UsageRow(1, "octo/a", "2025-05", 300, 30, 0.75, 2),
        UsageRow(1, "octo/b", "2025-05", 1, 1, 0.0, 1),
        UsageRow(2, "other/c", "2025-05", 5, 5, 1.0, 1),
    ]
    june = [
        UsageRow(1, "octo/a", "2025-06", 1000, 100, 2.0, 1),
        UsageRow(None, "legacy/x", "2025-06", 7, 3, 0.0, 1),
    ]
    assert _approx(store.usage()) == _approx(june + may)
    assert _approx(store.usage("2025-05")) == _approx(may)
    assert store.usage("2024-01") == []
    assert _approx(opener(clock).usage("2025-06")) == _approx(june)  # after a restart


def _approx(rows: list[UsageRow]) -> list[tuple]:
    return [
        (
            r.installation_id,
            r.repo,
            r.month,
            r.prompt_tokens,
            r.completion_tokens,
            round(r.cost_usd, 9),
            r.runs,
        )
        for r in rows
    ]


def test_metrics_carry_this_months_totals_per_installation(opener) -> None:
    clock = Clock(calendar.timegm((2025, 6, 10, 12, 0, 0)))
    store = opener(clock)

    record_spend(store, "octo/a#1", 7, 100, 10, 0.5)
    record_spend(store, "octo/b#1", 7, 1, 1, 0.25)
    record_spend(store, "x/y#1", 8, 5, 5, 1.0)
    metrics = Metrics()
    metrics.on_collect(usage_gauges(store))
    text = metrics.render().decode()
    assert 'docgen_installation_tokens{installation="7",kind="prompt"} 101.0' in text
    assert 'docgen_installation_tokens{installation="7",kind="completion"} 11.0' in text
    assert 'docgen_installation_cost_usd{installation="7"} 0.75' in text
    assert 'docgen_installation_cost_usd{installation="8"} 1.0' in text

    clock.now = calendar.timegm((2025, 7, 1, 8, 0, 0))  # a new month: only its own spend
    record_spend(store, "x/y#2", 8, 3, 0, 0.125)
    text = metrics.render().decode()
    assert 'docgen_installation_tokens{installation="7",kind="prompt"} 0.0' in text
    assert 'docgen_installation_tokens{installation="8",kind="prompt"} 3.0' in text
    assert 'docgen_installation_cost_usd{installation="8"} 0.125' in text
    labels = {
        line.split("{", 1)[1].split("}", 1)[0]
        for line in text.splitlines()
        if line.startswith("docgen_installation_tokens{")
    }
    assert {label.split(",")[0] for label in labels} == {'installation="7"', 'installation="8"'}
