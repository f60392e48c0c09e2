"""A cache of generated docstring parts, so an unchanged function costs no tokens twice.

Keys (:func:`cache_key`) hash what determines the answer: the prompt version, model,
style, language, the definition's qualname and its source.  Values are
:class:`~bot.models.DocParts` as JSON.  The pipeline stores only parts that passed
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
import textwrap
import threading
import time
from collections import OrderedDict
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from redis.exceptions import RedisError

from bot.generate import PROMPT_VERSION
from bot.models import DocParts, Style, Target

log = logging.getLogger(__name__)


@runtime_checkable
class DocstringCache(Protocol):
    """Where generated parts are kept between runs."""

    def get(self, key: str) -> DocParts | None: ...

    def put(self, key: str, parts: DocParts) -> None: ...


def normalise_source(source: str) -> str:
    """The source as the key sees it: LF line endings, common indentation removed."""
    return textwrap.dedent(source.replace("\r\n", "\n").replace("\r", "\n"))


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

    def __len__(self) -> int:
        return len(self._data)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS docstrings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


class SqliteCache:
    """A persistent cache in one SQLite file (WAL mode), safe across threads.

    Each operation opens its own short-lived connection: no connection is shared
    between threads, and concurrent writers wait on SQLite's busy timeout.  A row
    that does not decode is treated as a miss, never as an error.
    """

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        with closing(self._connect()) as conn:
            # WAL: readers do not block the writer (the App's workers share the file).
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=self.timeout)

    def get(self, key: str) -> DocParts | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT value FROM docstrings WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return parts_from_json(row[0])
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable cache entry %s", key[:12])
            return None

    def put(self, key: str, parts: DocParts) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT OR REPLACE INTO docstrings (key, value, created_at) VALUES (?, ?, ?)",
                (key, parts_to_json(parts), time.time()),
            )

    def __len__(self) -> int:
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM docstrings").fetchone()[0])


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

    def get(self, key: str) -> DocParts | None:
        try:
            raw = self.client.get(self._key(key))
        except RedisError as exc:
            log.warning("docstring cache unavailable (a miss): %s", exc)
            return None
        if raw is None:
            return None
        try:
            return parts_from_json(raw)
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable cache entry %s", key[:12])
            return None

    def put(self, key: str, parts: DocParts) -> None:
        try:
            self.client.set(self._key(key), parts_to_json(parts), ex=self.ttl)
        except RedisError as exc:
            log.warning("docstring cache unavailable (not stored): %s", exc)
