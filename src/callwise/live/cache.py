"""A durable, content-addressed cache of LLM responses in one SQLite file.

A live backend asks :func:`request_key` for the key of a call (model, messages, the parameters
that change the generation, and the sample number), looks it up with :meth:`ResponseCache.get`
(or :meth:`ResponseCache.get_many` for a batch) and stores a fresh answer with
:meth:`ResponseCache.put`. Re-running an experiment then costs nothing and reproduces the same
answers: the first answer stored under a key wins (``INSERT OR IGNORE``), and ``sample`` is part of
the key so that several samples of one prompt stay distinct.

Why SQLite: one file, transactions, and safe concurrent use. The database runs in WAL mode with a
busy timeout, so several processes can write to the same file at once (writers queue, readers never
block); one :class:`ResponseCache` object can be shared by threads (calls are serialised by a lock).
Each :meth:`~ResponseCache.put` is committed before it returns: with ``synchronous=NORMAL`` in WAL
mode a committed entry survives the process being killed right after (a power loss may drop the
last commits, never corrupt the file).

Secrets never reach the file: the key ignores credentials and transport settings
(:data:`NON_GENERATION_PARAMS` and any parameter named like a credential), and the stored request
has every field named like a credential or header removed, recursively.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import CallwiseError

__all__ = [
    "KEY_VERSION",
    "NON_GENERATION_PARAMS",
    "SCHEMA_VERSION",
    "CacheError",
    "CachedResponse",
    "ResponseCache",
    "default_cache_path",
    "request_key",
    "scrub_secrets",
]

#: Bumped when the key recipe changes, so old entries are never served for a new recipe.
KEY_VERSION = 1
#: Version of the SQLite layout; a file with another version is refused, never silently migrated.
SCHEMA_VERSION = 1
#: What ``meta.kind`` holds in every callwise response cache (tells our files from other SQLite files).
CACHE_KIND = "callwise-responses"
#: File name of the cache inside ``$CALLWISE_CACHE_DIR`` (or ``~/.cache/callwise``).
CACHE_FILE = "responses.sqlite"
#: Seconds a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: Most keys bound in one ``IN (...)`` query (old SQLite builds allow only 999 variables).
CHUNK = 500

#: Call parameters that do not change what the model generates: transport, credentials, retries,
#: bookkeeping. They are dropped before hashing, so changing them never misses the cache.
NON_GENERATION_PARAMS: frozenset[str] = frozenset({
    "stream", "stream_options",
    "timeout", "request_timeout", "max_retries", "num_retries",
    "api_key", "api_base", "base_url", "organization",
    "extra_headers", "headers",
    "metadata", "user", "tags",
    "litellm_call_id", "logger_fn", "callbacks",
})

#: Field names treated as credentials: dropped from stored requests (at any depth) and from keys.
#: Matched against the lower-cased name with ``-`` read as ``_``; ``max_tokens`` is *not* matched.
_SECRET_NAME = re.compile(r"api_?key|authorization|header|secret|password|passwd|credential|private_key|cookie"
                          r"|(^|_)token$")

_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_EXACT_INT = 2 ** 53

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    ("CREATE TABLE responses ("
     " key TEXT PRIMARY KEY,"
     " model TEXT NOT NULL,"
     " request TEXT NOT NULL,"
     " response TEXT NOT NULL,"
     " cost REAL NOT NULL,"
     " latency REAL,"
     " cost_source TEXT,"
     " created REAL NOT NULL)"),
    "CREATE INDEX responses_model ON responses(model)",
)
_COLUMNS = "key, model, response, cost, latency, created, cost_source"


class CacheError(CallwiseError):
    """The response cache cannot be used: a bad file, a value that cannot be hashed or stored, or
    a write to a cache opened read-only. The message names the file or parameter and what was expected."""


@dataclass(frozen=True)
class CachedResponse:
    """One stored answer.

    ``response`` is the provider's OpenAI-format response JSON; ``cost`` is in dollars (what a
    re-run saves); ``latency`` is the seconds the original call took (None when unknown);
    ``created`` is the unix time it was stored; ``cost_source`` says where ``cost`` came from
    (e.g. the provider's usage or a price table).
    """

    key: str
    model: str
    response: dict[str, Any]
    cost: float
    latency: float | None
    created: float
    cost_source: str | None


#: A row for :meth:`ResponseCache.put_many`: a mapping with :meth:`ResponseCache.put`'s argument
#: names, or a tuple in its argument order ``(key, model, request, response, cost, latency, cost_source)``.
Row = Mapping[str, Any] | Sequence[Any]
_ROW_FIELDS = ("key", "model", "request", "response", "cost", "latency", "cost_source")


def default_cache_path() -> Path:
    """``$CALLWISE_CACHE_DIR/responses.sqlite`` when that variable is set, else
    ``~/.cache/callwise/responses.sqlite`` (the same folder the feature cache uses)."""
    env = os.environ.get("CALLWISE_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "callwise"
    return root / CACHE_FILE


def _is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.lower().replace("-", "_")))


def scrub_secrets(value: Any) -> Any:
    """A copy of ``value`` with every dict entry whose key is named like a credential or header
    (``api_key``, ``Authorization``, ``extra_headers``, ``client_secret``, ``access_token``, ...)
    removed, at any depth (inside lists too). Used on every request before it is stored."""
    if isinstance(value, Mapping):
        return {k: scrub_secrets(v) for k, v in value.items() if not (isinstance(k, str) and _is_secret(k))}
    if isinstance(value, (list, tuple)):
        return [scrub_secrets(v) for v in value]
    return value


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types, in a canonical form so that equal requests hash equally.

    numpy scalars and arrays become Python numbers and lists (a numpy float becomes the float
    its shortest repr names, so ``np.float32(0.7)`` hashes like ``0.7``), tuples become lists,
    integral floats become ints (``temperature=1.0`` and ``1`` are the same request), ``-0.0``
    becomes ``0``. NaN and infinities, non-string dict keys, sets, bytes and any other object
    raise :class:`CacheError` naming ``where``: they have no single JSON form.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.generic):
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return _plain(float(str(value)), where)
        if isinstance(value, np.str_):
            return str(value)
        raise CacheError(f"{where}: numpy {type(value).__name__} value {value!r} has no JSON form; "
                         f"expected a number, string, bool, list or dict")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CacheError(f"{where}: {value!r} is not a finite number; expected a JSON number")
        if value.is_integer() and abs(value) < _MAX_EXACT_INT:
            return int(value)
        return value
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CacheError(f"{where}: dict key {k!r} is a {type(k).__name__}; "
                                 f"expected string keys (JSON objects)")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, type):
        what = f"the class {value.__name__}"
    else:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        what = f"a {type(value).__name__} ({shown})"
    raise CacheError(f"{where}: {what} cannot be hashed into a cache key; expected JSON values "
                     f"(numbers, strings, bools, None, lists, dicts)")


def _dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, compact separators, UTF-8 text kept as is, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any], sample: int) -> str:
    """The cache key of one call: SHA-256 (hex) of the canonical JSON of the model, the messages
    (as given: role, content, name, tool fields), the parameters that change the generation, the
    sample number and :data:`KEY_VERSION`.

    Dropped before hashing: :data:`NON_GENERATION_PARAMS`, parameters named like credentials, and
    parameters set to None (LiteLLM reads None as "not set"). Parameter order never matters. Values
    are canonicalised as :func:`_plain` says; a value with no JSON form raises :class:`CacheError`
    naming the parameter.
    """
    if not isinstance(model, str) or not model:
        raise CacheError(f"model {model!r}: expected a non-empty model name")
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 0:
        raise CacheError(f"sample {sample!r}: expected a non-negative integer")
    if not isinstance(params, Mapping):
        raise CacheError(f"params: expected a mapping of parameter names to values, got {type(params).__name__}")
    if not isinstance(messages, (list, tuple)):
        raise CacheError(f"messages: expected a list of message dicts, got {type(messages).__name__}")
    kept: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise CacheError(f"parameter {name!r}: expected a string name")
        if name in NON_GENERATION_PARAMS or _is_secret(name) or value is None:
            continue
        kept[name] = _plain(value, f"parameter {name!r}")
    payload = {
        "v": KEY_VERSION,
        "model": model,
        "messages": _plain(list(messages), "messages"),
        "params": kept,
        "sample": int(sample),
    }
    return hashlib.sha256(_dumps(payload).encode("utf-8")).hexdigest()


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


class ResponseCache:
    """LLM responses on disk in one SQLite file, keyed by :func:`request_key`.

    Safe for several processes writing the same file (WAL journal, busy wait of
    :data:`BUSY_TIMEOUT_S`) and for several threads sharing this object (every call holds a lock).
    The first answer stored under a key wins. ``readonly=True`` opens an existing cache for reading
    only (for reports); writes then raise :class:`CacheError`. Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.readonly = readonly
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._check_file()
        try:
            self._conn = self._connect()
            self._init_schema()
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise CacheError(f"{self.path}: cannot open as a callwise response cache ({e}); "
                             f"expected a SQLite file made by callwise") from None
        except BaseException:
            self._close_quietly()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Refuse what cannot be a cache before SQLite touches it (clearer than SQLite's errors)."""
        p = self.path
        if p.is_dir():
            raise CacheError(f"{p}: is a directory; expected a SQLite response cache file")
        if p.exists():
            try:
                with open(p, "rb") as f:
                    head = f.read(len(_SQLITE_MAGIC))
            except OSError as e:
                raise CacheError(f"{p}: cannot read the response cache: {e.strerror or e}") from None
            if head and head != _SQLITE_MAGIC:
                raise CacheError(f"{p}: not a callwise response cache: not a SQLite database (starts with "
                                 f"{head[:8]!r}); expected a SQLite file made by callwise, or no file")
        elif self.readonly:
            raise CacheError(f"{p}: no response cache there to open read-only")
        else:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CacheError(f"{p}: cannot create the cache folder {p.parent}: {e.strerror or e}") from None

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not self.readonly:
            # Switching a new file to WAL takes a lock other openers may hold for a moment, and SQLite
            # answers "database is locked" at once there instead of waiting busy_timeout: wait here.
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        conn.close()
                        raise
                    time.sleep(0.02)
            if str(mode).lower() != "wal":
                conn.close()
                raise CacheError(f"{self.path}: SQLite refused WAL mode (journal_mode is {mode!r}); "
                                 f"expected a local file system that supports WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _tables(self) -> set[str]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}

    def _init_schema(self) -> None:
        """Create the tables in a fresh file (inside a write transaction, so two processes opening a
        new file at once create them once), or check that an existing file is a cache we can read."""
        conn = self._conn
        assert conn is not None
        if not self._tables() and not self.readonly:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._tables():
                    for stmt in _SCHEMA:
                        conn.execute(stmt)
                    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                     [("kind", CACHE_KIND), ("schema_version", str(SCHEMA_VERSION))])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._check_schema()

    def _check_schema(self) -> None:
        assert self._conn is not None
        tables = self._tables()
        if not {"meta", "responses"} <= tables:
            found = ", ".join(sorted(tables)) or "none"
            raise CacheError(f"{self.path}: a SQLite database but not a callwise response cache (tables: {found}; "
                             f"expected tables meta and responses); move it or set CALLWISE_CACHE_DIR elsewhere")
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("kind") != CACHE_KIND:
            raise CacheError(f"{self.path}: a SQLite database but not a callwise response cache (meta kind "
                             f"{meta.get('kind')!r}, expected {CACHE_KIND!r})")
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise CacheError(f"{self.path}: response cache schema version {version!r}, this callwise reads version "
                             f"{SCHEMA_VERSION}; move or delete the file, or set CALLWISE_CACHE_DIR elsewhere")

    # -- helpers -----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CacheError(f"{self.path}: the response cache is closed")
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        conn = self._db()
        if self.readonly:
            raise CacheError(f"{self.path}: the response cache was opened read-only")
        return conn

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def _row(self, r: tuple[Any, ...]) -> CachedResponse:
        key, model, response, cost, latency, created, cost_source = r
        try:
            body = json.loads(response)
        except ValueError as e:
            raise CacheError(f"{self.path}: entry {key}: stored response is not JSON ({e})") from None
        return CachedResponse(key=key, model=model, response=body, cost=float(cost),
                              latency=None if latency is None else float(latency),
                              created=float(created), cost_source=cost_source)

    @staticmethod
    def _prepare(key: str, model: str, request: Mapping[str, Any], response: Mapping[str, Any], cost: float,
                 latency: float | None, cost_source: str | None, created: float) -> tuple[Any, ...]:
        """One row's SQL values; every check and serialisation happens here, before any transaction."""
        if not isinstance(key, str) or not key:
            raise CacheError(f"key {key!r}: expected a non-empty string (from request_key)")
        if not isinstance(model, str) or not model:
            raise CacheError(f"entry {key}: model {model!r}: expected a non-empty model name")
        if not isinstance(response, Mapping):
            raise CacheError(f"entry {key}: response: expected the provider's response as a dict, "
                             f"got {type(response).__name__}")
        try:
            cost_f = float(cost)
        except (TypeError, ValueError):
            raise CacheError(f"entry {key}: cost {cost!r}: expected a number of dollars") from None
        if not math.isfinite(cost_f) or cost_f < 0:
            raise CacheError(f"entry {key}: cost {cost!r}: expected a finite, non-negative number of dollars")
        latency_f = None
        if latency is not None:
            try:
                latency_f = float(latency)
            except (TypeError, ValueError):
                raise CacheError(f"entry {key}: latency {latency!r}: expected seconds") from None
            if not math.isfinite(latency_f):
                latency_f = None
        req = _dumps(_plain(scrub_secrets(request), f"entry {key}: request"))
        resp = _dumps(_plain(response, f"entry {key}: response"))
        return key, model, req, resp, cost_f, latency_f, cost_source, float(created)

    # -- reading -----------------------------------------------------------------------------

    def get(self, key: str) -> CachedResponse | None:
        """The answer stored under ``key``, or None."""
        with self._lock:
            r = self._db().execute(f"SELECT {_COLUMNS} FROM responses WHERE key = ?", (key,)).fetchone()
        return None if r is None else self._row(r)

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedResponse]:
        """The stored answers of ``keys`` (those missing are absent from the dict): one query per
        :data:`CHUNK` keys, for batches of thousands of calls."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, CachedResponse] = {}
        with self._lock:
            conn = self._db()
            rows: list[tuple[Any, ...]] = []
            for i in range(0, len(wanted), CHUNK):
                chunk = wanted[i:i + CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"SELECT {_COLUMNS} FROM responses WHERE key IN ({marks})", chunk).fetchall()
        for r in rows:
            out[r[0]] = self._row(r)
        return out

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._db().execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # -- writing -----------------------------------------------------------------------------

    def put(self, key: str, model: str, request: dict[str, Any], response: dict[str, Any], cost: float,
            latency: float | None, cost_source: str | None) -> None:
        """Store one answer, committed before returning (it survives the process being killed next).

        If ``key`` is already stored the old entry is kept (first answer wins: a re-run reproduces
        it). ``request`` is stored for auditing with every credential- or header-named field removed
        (:func:`scrub_secrets`).
        """
        row = self._prepare(key, model, request, response, cost, latency, cost_source, time.time())
        with self._lock:
            self._writable().execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def put_many(self, rows: Iterable[Row]) -> int:
        """Store many answers in one transaction (all or none); returns how many were new.

        Each row is a mapping with :meth:`put`'s argument names or a tuple in its argument order.
        Every row is checked and serialised before the transaction starts, so a bad row stores nothing.
        """
        now = time.time()
        prepared = []
        for i, row in enumerate(rows):
            if isinstance(row, Mapping):
                missing = [f for f in _ROW_FIELDS if f not in row]
                if missing:
                    raise CacheError(f"put_many row {i}: missing {', '.join(missing)}; expected {_ROW_FIELDS}")
                vals = [row[f] for f in _ROW_FIELDS]
            else:
                vals = list(row)
                if len(vals) != len(_ROW_FIELDS):
                    raise CacheError(f"put_many row {i}: {len(vals)} values; "
                                     f"expected {len(_ROW_FIELDS)}: {_ROW_FIELDS}")
            prepared.append(self._prepare(*vals, created=now))
        if not prepared:
            return 0
        with self._lock:
            conn = self._writable()
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", prepared)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

    def clear(self, model: str | None = None, older_than_days: float | None = None) -> int:
        """Remove entries: all of them, or only ``model``'s, and/or only those stored more than
        ``older_than_days`` days ago. Returns how many were removed. A full clear also compacts the
        file (VACUUM, skipped while another process holds it)."""
        if older_than_days is not None and not (isinstance(older_than_days, (int, float))
                                                and math.isfinite(older_than_days) and older_than_days >= 0):
            raise CacheError(f"older_than_days {older_than_days!r}: expected a non-negative number of days")
        where, args = [], []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if older_than_days is not None:
            where.append("created < ?")
            args.append(time.time() - older_than_days * 86400.0)
        sql = "DELETE FROM responses" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            conn = self._writable()
            removed = conn.execute(sql, args).rowcount
            if not where:
                try:
                    conn.execute("VACUUM")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.OperationalError:
                    pass  # another connection is busy with the file; the space is reused anyway
        return int(removed)

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the cache holds: ``path``, ``size_bytes`` (database + WAL file), ``entries``,
        ``models`` (``{model: {"entries", "cost"}}``, cost being the dollars a re-run saves), and
        ``oldest`` / ``newest`` (ISO 8601 UTC times of storage, None when empty)."""
        with self._lock:
            conn = self._db()
            per_model = conn.execute("SELECT model, COUNT(*), TOTAL(cost) FROM responses "
                                     "GROUP BY model ORDER BY model").fetchall()
            oldest, newest = conn.execute("SELECT MIN(created), MAX(created) FROM responses").fetchone()
        size = 0
        for p in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                size += p.stat().st_size
            except OSError:
                pass
        return {
            "path": str(self.path),
            "size_bytes": size,
            "entries": sum(int(n) for _, n, _ in per_model),
            "models": {m: {"entries": int(n), "cost": float(c)} for m, n, c in per_model},
            "oldest": _iso(oldest),
            "newest": _iso(newest),
        }

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent); later calls raise :class:`CacheError`."""
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("read-only" if self.readonly else "open")
        return f"ResponseCache({str(self.path)!r}, {state})"
