"""The docstring cache: keys, the in-memory and SQLite stores, and "a hit costs nothing"."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import httpx2
import openai
import pytest
import redis

from bot.docstrings import cache as cache_mod
from bot.docstrings.cache import (
    DocstringCache,
    MemoryCache,
    RedisCache,
    SqliteCache,
    cache_key,
    parts_from_json,
    parts_to_json,
)
from bot.docstrings.llm.openai_provider import OpenAIProvider
from bot.docstrings.llm.provider import GenerationItem, GenerationRequest
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import DocParts, Param, Style, Target
from tests import factories, redis_helpers
from tests.fake_openai import API_KEY, recorded

redis_url, ns = redis_helpers.redis_url, redis_helpers.ns  # fixtures: a real Redis

SOURCE = 'def add(a: int, b: int = 1) -> int:\n    """Old."""\n    return a + b\n'


def make_target(source: str = SOURCE, qualname: str = "add", path: str = "m.py") -> Target:
    return factories.make_target(
        path=path,
        qualname=qualname,
        end=source.count("\n"),
        params=(Param("a", "positional", "int"), Param("b", "positional", "int", "1")),
        returns="int",
        returns_value=True,
        source=source,
    )


PARTS = DocParts(
    summary="Sum two integers — «ünïcode» ok.",
    description="Line one.\n\nLine\ttwo.",
    params=(("a", "First."), ("b", "Second.")),
    returns="The sum.",
    raises=(("ValueError", "Never, really."),),
)


# --------------------------------------------------------------------------- keys


def test_key_is_stable_hex() -> None:
    key = cache_key(make_target(), Style.GOOGLE, "gpt-4o-mini", "English")
    assert key == cache_key(make_target(), Style.GOOGLE, "gpt-4o-mini", "English")
    assert len(key) == 64 and int(key, 16) >= 0


def test_key_ignores_line_endings_indentation_and_path() -> None:
    base = cache_key(make_target(), Style.GOOGLE, "m", "English")
    crlf = make_target(SOURCE.replace("\n", "\r\n"))
    indented = make_target("".join("    " + line for line in SOURCE.splitlines(keepends=True)))
    moved = make_target(path="other/place.py")
    for t in (crlf, indented, moved):
        assert cache_key(t, Style.GOOGLE, "m", "English") == base


@pytest.mark.parametrize(
    "change",
    [
        {"style": Style.NUMPY},
        {"model": "gpt-4o"},
        {"language": "French"},
        {"target": make_target(SOURCE.replace("a + b", "b + a"))},
        {"target": make_target(qualname="Calc.add")},
        {"target": make_target(SOURCE.replace("Old.", "Older."))},
    ],
)
def test_key_changes_with_what_matters(change: dict[str, object]) -> None:
    args: dict[str, object] = {
        "target": make_target(),
        "style": Style.GOOGLE,
        "model": "gpt-4o-mini",
        "language": "English",
    }
    base = cache_key(**args)  # type: ignore[arg-type]
    assert cache_key(**(args | change)) != base  # type: ignore[arg-type]


def test_key_changes_with_the_prompt_version(monkeypatch: pytest.MonkeyPatch) -> None:
    base = cache_key(make_target(), Style.GOOGLE, "m", "English")
    monkeypatch.setattr(cache_mod, "PROMPT_VERSION", "next")
    assert cache_key(make_target(), Style.GOOGLE, "m", "English") != base


# ------------------------------------------------------------------- serialisation


def test_parts_round_trip() -> None:
    assert parts_from_json(parts_to_json(PARTS)) == PARTS
    assert parts_from_json(parts_to_json(DocParts("Only."))) == DocParts("Only.")


@pytest.mark.parametrize(
    "bad", ["[]", '{"summary": 3}', '{"summary": "x", "params": [["a"]]}', '{"params": "a"}', "{"]
)
def test_parts_from_bad_json(bad: str) -> None:
    with pytest.raises(ValueError):
        parts_from_json(bad)


# ------------------------------------------------------------------------- stores


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DocstringCache:
    if request.param == "memory":
        return MemoryCache()
    return SqliteCache(tmp_path / "cache.sqlite3")


def test_store_get_put(store: DocstringCache) -> None:
    assert isinstance(store, DocstringCache)
    assert store.get("k") is None
    store.put("k", PARTS)
    assert store.get("k") == PARTS
    store.put("k", replace(PARTS, summary="Replaced."))
    assert store.get("k").summary == "Replaced."  # type: ignore[union-attr]


def test_memory_cache_is_lru_bounded() -> None:
    c = MemoryCache(max_entries=2)
    c.put("a", PARTS)
    c.put("b", PARTS)
    assert c.get("a") == PARTS  # a is now the most recent
    c.put("c", PARTS)
    assert c.get("b") is None and c.get("a") == PARTS and len(c) == 2


def test_sqlite_cache_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "data" / "cache.sqlite3"
    path.parent.mkdir()
    SqliteCache(path).put("k", PARTS)
    again = SqliteCache(path)
    assert again.get("k") == PARTS
    assert len(again) == 1
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(docstrings)")]
    assert columns == ["key", "value", "created_at"]


def test_sqlite_cache_treats_a_corrupt_row_as_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    c = SqliteCache(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO docstrings VALUES ('bad', 'not json', 0)")
    assert c.get("bad") is None


def test_sqlite_cache_is_safe_across_threads(tmp_path: Path) -> None:
    c = SqliteCache(tmp_path / "cache.sqlite3")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                key = f"{n}-{i}"
                c.put(key, replace(PARTS, summary=f"Item {key}."))
                assert c.get(key).summary == f"Item {key}."  # type: ignore[union-attr]
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(c) == 160


def test_many_at_once(store: DocstringCache) -> None:
    entries = [(f"k{i}", replace(PARTS, summary=f"Item {i}.")) for i in range(1200)]
    store.put_many(entries)
    store.put_many([])
    found = store.get_many([*(k for k, _ in entries), "missing", "k0"])
    assert found == dict(entries)  # duplicates and misses are fine; > SQL's variable cap
    assert store.get_many([]) == {}


def test_sqlite_cache_writes_a_run_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    c = SqliteCache(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO docstrings VALUES ('bad', 'not json', 0)")
    opened = 0
    statements: list[str] = []
    real = c._connect

    def traced() -> sqlite3.Connection:
        nonlocal opened
        opened += 1
        conn = real()
        conn.set_trace_callback(statements.append)
        return conn

    c._connect = traced  # type: ignore[method-assign]
    c.put_many([(f"k{i}", PARTS) for i in range(200)])
    assert opened == 1
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
    assert len(c.get_many([f"k{i}" for i in range(200)] + ["bad"])) == 200  # bad: a miss
    assert opened == 2


def test_redis_cache_many_at_once(redis_url: str, ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        cache = RedisCache(client, prefix=ns, ttl=60)
        cache.put_many([("a", PARTS), ("b", replace(PARTS, summary="Bee."))])
        client.set(f"{ns}:cache:bad", "{not json")
        found = cache.get_many(["a", "b", "bad", "missing"])
        assert found == {"a": PARTS, "b": replace(PARTS, summary="Bee.")}
        assert 0 < client.ttl(f"{ns}:cache:b") <= 60
        assert cache.get_many([]) == {}
        cache.put_many([])
    finally:
        client.close()


def test_store_keeps_model_profiles_merged(store: DocstringCache, tmp_path: Path) -> None:
    """Issue 9, item 4: the learned ratios outlive the run, and only grow."""
    assert store.get_profile("smollm2") is None
    store.put_profile("smollm2", ModelProfile(1.06, 1.2, 4))
    store.put_profile("smollm2", ModelProfile(1.03, 1.5, 9))  # another worker's
    assert store.get_profile("smollm2") == ModelProfile(1.06, 1.5, 9)
    assert store.get_profile("gpt-4o-mini") is None
    if isinstance(store, SqliteCache):  # and across processes: a new object, same file
        assert SqliteCache(store.path).get_profile("smollm2") == ModelProfile(1.06, 1.5, 9)


def test_sqlite_unreadable_profile_is_none(tmp_path: Path) -> None:
    c = SqliteCache(tmp_path / "c.sqlite3")
    with closing(sqlite3.connect(c.path)) as conn, conn:
        conn.execute("INSERT INTO model_profiles VALUES ('m', '{broken', 0)")
    assert c.get_profile("m") is None
    c.put_profile("m", ModelProfile(1.1, 0, 1))  # replaces the broken row
    assert c.get_profile("m") == ModelProfile(1.1, 0, 1)


def test_redis_keeps_model_profiles(redis_url: str, ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        cache = RedisCache(client, prefix=ns, ttl=60)
        assert cache.get_profile("m") is None
        cache.put_profile("m", ModelProfile(1.06, 1.2, 4))
        cache.put_profile("m", ModelProfile(1.03, 1.5, 9))
        assert RedisCache(client, prefix=ns).get_profile("m") == ModelProfile(1.06, 1.5, 9)
    finally:
        client.close()


def test_redis_trouble_is_misses_and_lost_puts(caplog: pytest.LogCaptureFixture) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    try:
        cache = RedisCache(client)
        assert cache.get_many(["a"]) == {}
        cache.put_many([("a", PARTS)])
        assert cache.get_profile("m") is None
        cache.put_profile("m", ModelProfile())
    finally:
        client.close()
    assert "docstring cache unavailable" in caplog.text


# ---------------------------------------------------------- a hit costs no tokens


def test_cache_hit_makes_no_call(tmp_path: Path) -> None:
    """Two runs over the same function: the second is served from the cache.

    This is the pipeline's pattern (look up, generate the misses, store): the fake API
    must see exactly one request, and a changed function must miss again.
    """
    changed = make_target(SOURCE.replace("a + b", "a + b + 0"))
    db = tmp_path / "cache.sqlite3"

    async def one_run(target: Target, origin: str, sent: list[httpx2.Request]) -> DocParts:
        store = SqliteCache(db)  # a fresh instance each run: persistence matters
        key = cache_key(target, Style.GOOGLE, "gpt-4o-mini", "English")
        hit = store.get(key)
        if hit is not None:
            return hit
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=origin + "/v1", max_retries=0)

        async def count(request: httpx2.Request) -> None:
            sent.append(request)

        client._client.event_hooks["request"].append(count)
        try:
            provider = OpenAIProvider(client, "gpt-4o-mini", timeout=10)
            request = GenerationRequest((GenerationItem(target),), Style.GOOGLE, "English", 300)
            result = await provider.generate(request)
        finally:
            await client.close()
        parts = result.parts[target.id]
        store.put(key, parts)
        return parts

    with recorded("cache_hit") as rec:
        sent: list[httpx2.Request] = []
        first = asyncio.run(one_run(make_target(), rec.origin, sent))
        second = asyncio.run(one_run(make_target(), rec.origin, sent))
        assert first == second
        assert len(sent) == 1
        asyncio.run(one_run(changed, rec.origin, sent))
        assert len(sent) == 2
        if rec.live:
            assert len(rec.fake.requests) == 2  # type: ignore[union-attr]
        else:
            assert rec.cassette.all_played and rec.cassette.play_count == 2
