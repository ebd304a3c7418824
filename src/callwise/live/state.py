"""Where ``callwise serve`` keeps its state: in memory, in SQLite, or in Redis.

The state is three things: each key's daily spend and holds, each served policy's budget ledger
(:class:`~callwise.core.budget.BudgetLedger`: what a cascade was granted and spent across
requests), and each conversation's floor (the model that answered its last turn, so a later turn
never drops to a cheaper model). With one store shared by every instance, a cascade's budget,
a key's budget and a conversation's model hold across instances behind a load balancer.

A store answers these questions per (key, UTC day), each atomically:

- ``charge(key, day, dollars)``: add what a request spent;
- ``spent(key, day)``: what the key has spent that day;
- ``reserve(key, day, dollars, budget)``: hold ``dollars`` for a request about to run, unless spend
  plus holds already reach ``budget`` (then False and nothing held);
- ``release(key, day, dollars)``: give a hold back (the holds return to exactly 0 once none is out).

and, per policy and per conversation:

- ``ledger_add(name, granted, spent, queries)`` / ``ledger(name)``: the running budget account;
- ``floor_set(conversation, model)`` / ``floor(conversation)``: a conversation's model (the most
  recent ``floors`` conversations are kept; in Redis each lives ``FLOOR_TTL`` seconds).

``memory`` (the Python default) lives and dies with the process. ``sqlite:///PATH`` (the default of
``callwise serve``) keeps spend across restarts; its holds stay in memory, since a hold belongs to
a request of this process. ``redis://HOST:PORT/DB`` (the ``redis`` package) shares spend *and*
holds between every instance behind a load balancer: the reservation is one Lua script, so two
instances cannot both admit a request with the same unspent dollars, and a restarted instance
finds the spend where it was. Keys expire two days after their day. Ledgers and floors are
kept in SQLite and Redis as spend is; a ledger's read and its update are two steps, so requests
decided at the same moment on two instances can each spend the same slack once (the same as two
batches decided at once in one process: the overshoot is bounded by what those requests spend).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from ..core.budget import BudgetLedger
from ..core.errors import DataError

#: Seconds a day's Redis keys live (the day and the next).
TTL = 2 * 24 * 3600
#: Seconds a conversation's floor lives in Redis after its last turn.
FLOOR_TTL = 7 * 24 * 3600
#: Conversations whose floor is kept (memory and SQLite: the most recent ones).
FLOORS = 100_000


class SpendStore(Protocol):
    """Per (key, day) spend and holds; every method is atomic."""

    def charge(self, key: str, day: str, dollars: float) -> None: ...

    def spent(self, key: str, day: str) -> float: ...

    def reserve(self, key: str, day: str, dollars: float, budget: float) -> bool: ...

    def release(self, key: str, day: str, dollars: float) -> None: ...

    def held(self, key: str, day: str) -> float: ...

    def ledger_add(self, name: str, granted: float, spent: float, queries: int) -> None: ...

    def ledger(self, name: str) -> tuple[float, float, int]: ...

    def floor_set(self, conversation: str, model: str) -> None: ...

    def floor(self, conversation: str) -> str | None: ...


class StoredLedger(BudgetLedger):
    """A policy's :class:`~callwise.core.budget.BudgetLedger` kept in a store (shared by every instance on it)."""

    def __init__(self, store: SpendStore, name: str) -> None:  # noqa: D107 - no lock: the store is atomic
        self.store = store
        self.name = name

    @property
    def granted(self) -> float:  # type: ignore[override]
        return self.store.ledger(self.name)[0]

    @property
    def spent(self) -> float:  # type: ignore[override]
        return self.store.ledger(self.name)[1]

    @property
    def queries(self) -> int:  # type: ignore[override]
        return self.store.ledger(self.name)[2]

    def allowance(self, n: int, budget: float) -> float:
        granted, spent, _ = self.store.ledger(self.name)
        return granted + n * float(budget) - spent

    def record(self, n: int, budget: float, spent: float) -> None:
        self.store.ledger_add(self.name, n * float(budget), float(spent), int(n))


class _Holds:
    """Holds in this process's memory (for the memory and SQLite stores)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], float] = {}
        self._count: dict[tuple[str, str], int] = {}

    def add(self, k: tuple[str, str], dollars: float) -> None:
        self._held[k] = self._held.get(k, 0.0) + dollars
        self._count[k] = self._count.get(k, 0) + 1

    def remove(self, k: tuple[str, str], dollars: float) -> None:
        if self._count.get(k, 0) <= 0:
            return
        self._count[k] -= 1
        self._held[k] = max(self._held.get(k, 0.0) - dollars, 0.0) if self._count[k] else 0.0

    def get(self, k: tuple[str, str]) -> float:
        return self._held.get(k, 0.0)


class MemoryStore:
    """Spend, holds, ledgers and floors in this process (gone when it stops)."""

    def __init__(self, floors: int = FLOORS) -> None:
        self._spent: dict[tuple[str, str], float] = {}
        self._holds = _Holds()
        self._lock = threading.Lock()
        self._ledgers: dict[str, tuple[float, float, int]] = {}
        self._floors: OrderedDict[str, str] = OrderedDict()
        self.floors = int(floors)

    def charge(self, key: str, day: str, dollars: float) -> None:
        with self._lock:
            self._spent[(key, day)] = self._spent.get((key, day), 0.0) + float(dollars)

    def spent(self, key: str, day: str) -> float:
        with self._lock:
            return self._spent_locked(key, day)

    def _spent_locked(self, key: str, day: str) -> float:
        return self._spent.get((key, day), 0.0)

    def reserve(self, key: str, day: str, dollars: float, budget: float) -> bool:
        with self._lock:
            if self._spent_locked(key, day) + self._holds.get((key, day)) >= budget:
                return False
            self._holds.add((key, day), float(dollars))
            return True

    def release(self, key: str, day: str, dollars: float) -> None:
        with self._lock:
            self._holds.remove((key, day), float(dollars))

    def held(self, key: str, day: str) -> float:
        with self._lock:
            return self._holds.get((key, day))

    def ledger_add(self, name: str, granted: float, spent: float, queries: int) -> None:
        with self._lock:
            g, s, n = self._ledgers.get(name, (0.0, 0.0, 0))
            self._ledgers[name] = (g + float(granted), s + float(spent), n + int(queries))

    def ledger(self, name: str) -> tuple[float, float, int]:
        with self._lock:
            return self._ledgers.get(name, (0.0, 0.0, 0))

    def floor_set(self, conversation: str, model: str) -> None:
        with self._lock:
            self._floors[conversation] = model
            self._floors.move_to_end(conversation)
            while len(self._floors) > self.floors:
                self._floors.popitem(last=False)

    def floor(self, conversation: str) -> str | None:
        with self._lock:
            m = self._floors.get(conversation)
            if m is not None:
                self._floors.move_to_end(conversation)
            return m


class SQLiteStore(MemoryStore):
    """Spend, ledgers and floors in a SQLite file (they survive a restart); holds in memory."""

    def __init__(self, path: str | Path, floors: int = FLOORS) -> None:
        super().__init__(floors)
        self.path = Path(path).expanduser()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a crash of the process
            self._db.execute("CREATE TABLE IF NOT EXISTS spend (key TEXT, day TEXT, dollars REAL NOT NULL, "
                             "PRIMARY KEY (key, day))")
            self._db.execute("CREATE TABLE IF NOT EXISTS ledger (name TEXT PRIMARY KEY, granted REAL NOT NULL, "
                             "spent REAL NOT NULL, queries INTEGER NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS floor (conversation TEXT PRIMARY KEY, model TEXT NOT NULL, "
                             "at INTEGER NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS floor_at ON floor (at)")
        except (sqlite3.Error, OSError) as e:
            raise DataError(f"cannot open the state file: {e}", file=str(self.path)) from None

    def charge(self, key: str, day: str, dollars: float) -> None:
        with self._lock:
            self._db.execute("INSERT INTO spend (key, day, dollars) VALUES (?, ?, ?) ON CONFLICT(key, day) "
                             "DO UPDATE SET dollars = dollars + excluded.dollars", (key, day, float(dollars)))

    def _spent_locked(self, key: str, day: str) -> float:
        row = self._db.execute("SELECT dollars FROM spend WHERE key = ? AND day = ?", (key, day)).fetchone()
        return float(row[0]) if row else 0.0

    def ledger_add(self, name: str, granted: float, spent: float, queries: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO ledger (name, granted, spent, queries) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET granted = granted + excluded.granted, "
                             "spent = spent + excluded.spent, queries = queries + excluded.queries",
                             (name, float(granted), float(spent), int(queries)))

    def ledger(self, name: str) -> tuple[float, float, int]:
        with self._lock:
            row = self._db.execute("SELECT granted, spent, queries FROM ledger WHERE name = ?", (name,)).fetchone()
        return (float(row[0]), float(row[1]), int(row[2])) if row else (0.0, 0.0, 0)

    def floor_set(self, conversation: str, model: str) -> None:
        with self._lock:
            self._writes += 1
            self._db.execute("INSERT INTO floor (conversation, model, at) VALUES (?, ?, ?) ON CONFLICT(conversation) "
                             "DO UPDATE SET model = excluded.model, at = excluded.at",
                             (conversation, model, time.time_ns()))
            if self._writes % 1000 == 0:  # keep the most recent ``floors`` conversations
                self._db.execute("DELETE FROM floor WHERE at <= (SELECT at FROM floor ORDER BY at DESC "
                                 "LIMIT 1 OFFSET ?)", (self.floors,))

    def floor(self, conversation: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT model FROM floor WHERE conversation = ?", (conversation,)).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        self._db.close()


_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = tonumber(redis.call('GET', KEYS[2]) or '0')
if spent + held >= tonumber(ARGV[2]) then return 0 end
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n <= 0 then return 0 end
n = redis.call('DECR', KEYS[2])
if n <= 0 then redis.call('SET', KEYS[1], '0') else
  local held = tonumber(redis.call('INCRBYFLOAT', KEYS[1], '-' .. ARGV[1]))
  if held < 0 then redis.call('SET', KEYS[1], '0') end
end
return 1
"""


class RedisStore:
    """Spend and holds in Redis, shared by every ``callwise serve`` instance that points at it."""

    def __init__(self, url: str, prefix: str = "callwise") -> None:
        try:
            import redis
        except ImportError:
            raise DataError("--state redis://... needs the 'redis' package (pip install redis)") from None
        self.url = url
        self.prefix = prefix
        try:
            self._r = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
            self._r.ping()
        except Exception as e:  # noqa: BLE001 - any connection failure is one clear error
            raise DataError(f"cannot reach Redis at {url}: {e}") from None
        self._reserve = self._r.register_script(_RESERVE)
        self._release = self._r.register_script(_RELEASE)

    def _k(self, what: str, key: str, day: str) -> str:
        return f"{self.prefix}:{what}:{day}:{key}"

    def charge(self, key: str, day: str, dollars: float) -> None:
        k = self._k("spent", key, day)
        pipe = self._r.pipeline()
        pipe.incrbyfloat(k, float(dollars))
        pipe.expire(k, TTL)
        pipe.execute()

    def spent(self, key: str, day: str) -> float:
        v = self._r.get(self._k("spent", key, day))
        return float(v) if v is not None else 0.0

    def reserve(self, key: str, day: str, dollars: float, budget: float) -> bool:
        keys = [self._k("spent", key, day), self._k("held", key, day), self._k("holds", key, day)]
        return bool(self._reserve(keys=keys, args=[repr(float(dollars)), repr(float(budget)), TTL]))

    def release(self, key: str, day: str, dollars: float) -> None:
        self._release(keys=[self._k("held", key, day), self._k("holds", key, day)], args=[repr(float(dollars))])

    def held(self, key: str, day: str) -> float:
        v = self._r.get(self._k("held", key, day))
        return float(v) if v is not None else 0.0

    def ledger_add(self, name: str, granted: float, spent: float, queries: int) -> None:
        k = f"{self.prefix}:ledger:{name}"
        pipe = self._r.pipeline()  # MULTI/EXEC: the three fields move together
        pipe.hincrbyfloat(k, "granted", float(granted))
        pipe.hincrbyfloat(k, "spent", float(spent))
        pipe.hincrby(k, "queries", int(queries))
        pipe.execute()

    def ledger(self, name: str) -> tuple[float, float, int]:
        g, s, n = self._r.hmget(f"{self.prefix}:ledger:{name}", ["granted", "spent", "queries"])
        return (float(g or 0.0), float(s or 0.0), int(n or 0))

    def floor_set(self, conversation: str, model: str) -> None:
        self._r.set(f"{self.prefix}:floor:{conversation}", model, ex=FLOOR_TTL)

    def floor(self, conversation: str) -> str | None:
        v = self._r.get(f"{self.prefix}:floor:{conversation}")
        return v.decode() if isinstance(v, bytes) else v

    def close(self) -> None:
        self._r.close()


def open_store(spec: str | None) -> SpendStore:
    """A store from ``--state``: ``memory``, ``sqlite:///PATH`` (or a path ending in .db/.sqlite), ``redis://...``."""
    if spec is None or spec == "memory":
        return MemoryStore()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec)
    if spec.startswith("sqlite:///"):  # sqlite:///relative.db, sqlite:////absolute/path.db
        return SQLiteStore(spec[len("sqlite:///"):])
    if spec.endswith((".db", ".sqlite", ".sqlite3")):
        return SQLiteStore(spec)
    raise DataError(f"--state must be memory, sqlite:///PATH or redis://HOST:PORT/DB, got {spec!r}")


__all__ = ["FLOORS", "FLOOR_TTL", "MemoryStore", "RedisStore", "SQLiteStore", "SpendStore", "StoredLedger", "TTL",
           "open_store"]
