"""A cache of generated docstring parts, so an unchanged function costs no tokens twice.

Keys (:func:`cache_key`) hash what determines the answer: the prompt version, model,
style, language, the definition's qualname and its source.  Values are
:class:`~bot.docstrings.models.DocParts` as JSON.  The pipeline stores only parts that passed
validation, so a hit can be used as is.

:class:`SqliteCache` persists across runs (``DOCGEN_DATA_DIR``); it opens one
connection per operation, which keeps it safe from any thread or event loop.
:class:`RedisCache` is the one ``docgen worker`` processes share (``REDIS_URL``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from bot.docstrings.llm.prompt import PROMPT_VERSION, normalise_source
from bot.docstrings.model_profile import ModelProfile
from bot.docstrings.models import DocParts, Style, Target

log = logging.getLogger(__name__)

T = TypeVar("T")


@runtime_checkable
class DocstringCache(Protocol):
    """Where generated parts are kept between runs."""

    def get(self, key: str) -> DocParts | None: ...

    def put(self, key: str, parts: DocParts) -> None: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, DocParts]:
        """The entries found among ``keys`` (one round trip where the store allows)."""
        ...

    def put_many(self, entries: Iterable[tuple[str, DocParts]]) -> None:
        """Store every entry (one transaction / round trip where the store allows)."""
        ...

    def get_profile(self, model: str) -> ModelProfile | None:
        """What earlier runs learned about ``model``'s token counts, if anything."""
        ...

    def put_profile(self, model: str, profile: ModelProfile) -> None:
        """Keep ``profile``, merged with the stored one (:meth:`ModelProfile.merge`)."""
        ...


def cache_key(target: Target, style: Style, model: str, language: str) -> str:
    """A sha256 hex key over everything that determines the generated parts.

    The source is taken as is (an existing docstring included: a stale one is part of
    what the model sees), with line endings and indentation normalised so that a
    CRLF checkout or a method moved into another block hits the same entry.  The
    path is left out on purpose: a moved function keeps its docstring.
    """
    material = [
        PROMPT_VERSION,
        model,
        Style(style).value,
        language,
        target.kind,
        target.qualname,
        normalise_source(target.source),
    ]
    blob = json.dumps(material, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parts_to_json(parts: DocParts) -> str:
    return json.dumps(
        {
            "summary": parts.summary,
            "description": parts.description,
            "params": [list(p) for p in parts.params],
            "returns": parts.returns,
            "yields": parts.yields,
            "raises": [list(r) for r in parts.raises],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    out = []
    for pair in value:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        ):
            raise ValueError("not a pair of strings")
        out.append((pair[0], pair[1]))
    return tuple(out)


def parts_from_json(text: str) -> DocParts:
    """Inverse of :func:`parts_to_json`; ``ValueError`` on anything else."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    strings = {}
    for name in ("summary", "description", "returns", "yields"):
        value = data.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"{name} is not a string")
        strings[name] = value
    return DocParts(
        params=_pairs(data.get("params", [])),
        raises=_pairs(data.get("raises", [])),
        **strings,
    )


class MemoryCache:
    """An in-process cache (the default without ``DOCGEN_DATA_DIR``), LRU-bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, DocParts] = OrderedDict()
        self._profiles: dict[str, ModelProfile] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> DocParts | None:
        with self._lock:
            parts = self._data.get(key)
            if parts is not None:
                self._data.move_to_end(key)
            return parts

    def put(self, key: str, parts: DocParts) -> None:
        with self._lock:
            self._data[key] = parts
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def get_many(self, keys: Iterable[str]) -> dict[str, DocParts]:
        found = {}
        for key in keys:
            parts = self.get(key)
            if parts is not None:
                found[key] = parts
        return found

    def put_many(self, entries: Iterable[tuple[str, DocParts]]) -> None:
        for key, parts in entries:
            self.put(key, parts)

    def get_profile(self, model: str) -> ModelProfile | None:
        with self._lock:
            return self._profiles.get(model)

    def put_profile(self, model: str, profile: ModelProfile) -> None:
        with self._lock:
            old = self._profiles.get(model)
            self._profiles[model] = old.merge(profile) if old else profile

    def __len__(self) -> int:
        return len(self._data)


_SQL_VARIABLES = 500  # per IN (...) list; SQLite allows 32,766 since 3.32, 999 before

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docstrings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""
_PROFILES = """
CREATE TABLE IF NOT EXISTS model_profiles (
    model TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""


class SqliteCache:
    """A persistent cache in one SQLite file (WAL mode), safe across threads.

    Each operation opens its own short-lived connection: no connection is shared
    between threads, and concurrent writers wait on SQLite's busy timeout.  A run
    reads its entries with one :meth:`get_many` and writes them with one
    :meth:`put_many` (one transaction; ``synchronous=NORMAL``: a power cut may lose
    the last entries, which only costs tokens to regenerate).  A row that does not
    decode is treated as a miss, never as an error.
    """

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        with closing(self._connect()) as conn:
            # WAL: readers do not block the writer (the App's workers share the file).
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.execute(_SCHEMA)
                conn.execute(_PROFILES)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: no fsync per commit
        return conn

    def get(self, key: str) -> DocParts | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, parts: DocParts) -> None:
        self.put_many([(key, parts)])

    def get_many(self, keys: Iterable[str]) -> dict[str, DocParts]:
        wanted = list(dict.fromkeys(keys))
        rows: list[tuple[str, str]] = []
        with closing(self._connect()) as conn:
            for start in range(0, len(wanted), _SQL_VARIABLES):
                chunk = wanted[start : start + _SQL_VARIABLES]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(
                    f"SELECT key, value FROM docstrings WHERE key IN ({marks})", chunk
                ).fetchall()
        return _decoded_entries(rows)

    def put_many(self, entries: Iterable[tuple[str, DocParts]]) -> None:
        now = time.time()
        rows = [(key, parts_to_json(parts), now) for key, parts in entries]
        if not rows:
            return
        with closing(self._connect()) as conn, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO docstrings (key, value, created_at) VALUES (?, ?, ?)",
                rows,
            )

    def get_profile(self, model: str) -> ModelProfile | None:
        with closing(self._connect()) as conn:
            return _read_profile(conn, model)

    def put_profile(self, model: str, profile: ModelProfile) -> None:
        with closing(self._connect()) as conn:
            conn.isolation_level = None
            # IMMEDIATE: the read-merge-write cannot interleave with another worker's.
            conn.execute("BEGIN IMMEDIATE")
            try:
                old = _read_profile(conn, model)
                merged = old.merge(profile) if old else profile
                conn.execute(
                    "INSERT OR REPLACE INTO model_profiles (model, value, updated_at) "
                    "VALUES (?, ?, ?)",
                    (model, merged.to_json(), time.time()),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM docstrings").fetchone()[0])


def _read_profile(conn: sqlite3.Connection, model: str) -> ModelProfile | None:
    row = conn.execute("SELECT value FROM model_profiles WHERE model = ?", (model,)).fetchone()
    return _decoded_profile(row[0] if row else None, model)


def _decoded(raw: Any, parse: Callable[[Any], T], what: str) -> T | None:
    """``parse(raw)``; None for nothing stored, and for a value that does not decode
    (logged): an unreadable entry is a miss, never an error."""
    if raw is None:
        return None
    try:
        return parse(raw)
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable %s", what)
        return None


def _decoded_profile(raw: Any, model: str) -> ModelProfile | None:
    return _decoded(raw, ModelProfile.from_json, f"model profile for {model!r}")


def _decoded_entries(rows: Iterable[tuple[str, Any]]) -> dict[str, DocParts]:
    """The cache entries among ``(key, stored value)`` rows that decode."""
    found = {}
    for key, raw in rows:
        parts = _decoded(raw, parts_from_json, f"cache entry {key[:12]}")
        if parts is not None:
            found[key] = parts
    return found


def _redis_error() -> type[Exception]:
    # Imported when an exception is being matched, not with this module: a local
    # `docgen review` uses this module without Redis, and redis pulls in jwt and
    # cryptography (about 60 ms of start-up, issue 13).
    from redis.exceptions import RedisError

    return RedisError


class RedisCache:
    """The cache in Redis, shared by every worker process; entries expire after ``ttl`` s.

    ``client`` is a synchronous ``redis.Redis``.  Redis trouble never fails a run: the
    cache only saves tokens, so an error is logged and counts as a miss (or a lost put).
    """

    def __init__(self, client: Any, *, prefix: str = "docgen", ttl: int = 30 * 24 * 3600) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def _key(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    def _fetch(self, key: str, trouble: str) -> Any:
        """The stored value at ``key``; None when there is none or Redis fails (logged)."""
        try:
            return self.client.get(key)
        except _redis_error() as exc:
            log.warning("%s: %s", trouble, exc)
            return None

    def get(self, key: str) -> DocParts | None:
        raw = self._fetch(self._key(key), "docstring cache unavailable (a miss)")
        return _decoded(raw, parts_from_json, f"cache entry {key[:12]}")

    def put(self, key: str, parts: DocParts) -> None:
        try:
            self.client.set(self._key(key), parts_to_json(parts), ex=self.ttl)
        except _redis_error() as exc:
            log.warning("docstring cache unavailable (not stored): %s", exc)

    def get_many(self, keys: Iterable[str]) -> dict[str, DocParts]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        try:
            raws = self.client.mget([self._key(k) for k in wanted])
        except _redis_error() as exc:
            log.warning("docstring cache unavailable (misses): %s", exc)
            return {}
        return _decoded_entries(zip(wanted, raws, strict=True))

    def put_many(self, entries: Iterable[tuple[str, DocParts]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for key, parts in entries:
            pipe.set(self._key(key), parts_to_json(parts), ex=self.ttl)
            count += 1
        if not count:
            return
        try:
            pipe.execute()
        except _redis_error() as exc:
            log.warning("docstring cache unavailable (not stored): %s", exc)

    def _profile_key(self, model: str) -> str:
        digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:32]
        return f"{self.prefix}:profile:{digest}"

    def get_profile(self, model: str) -> ModelProfile | None:
        raw = self._fetch(self._profile_key(model), "model profile unavailable")
        return _decoded_profile(raw, model)

    def put_profile(self, model: str, profile: ModelProfile) -> None:
        # Read, merge, write: a race between two workers can only lose one run's
        # learning (both ratios only grow), never make a reservation smaller.
        old = self.get_profile(model)
        merged = old.merge(profile) if old else profile
        try:
            self.client.set(self._profile_key(model), merged.to_json(), ex=self.ttl)
        except _redis_error() as exc:
            log.warning("model profile not stored: %s", exc)
