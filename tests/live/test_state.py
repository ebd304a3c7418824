"""Key spend that survives restarts (SQLite) and is shared between instances (a real redis-server).

The Redis tests start ``redis-server`` themselves (Debian package ``redis-server``; ``.ci/run``
installs it) and skip only where it is not installed. Two ``callwise serve`` processes on one Redis
keep one key's daily budget under concurrent load, and a restarted instance finds the spend.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from livekit import LARGE, SMALL, free_port, prompts_of, split, task_table

from callwise.core.errors import DataError
from callwise.core.policy_files import save_policy
from callwise.evaluation.fit import fit_policy
from callwise.live.http_util import BackgroundServer
from callwise.live.replay_server import build_replay_app
from callwise.live.server import KeyBudgets
from callwise.live.state import (
    MemoryStore,
    RedisStore,
    SQLiteStore,
    StoredLedger,
    open_store,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.time() + 20
    while True:
        try:
            RedisStore(url).close()
            break
        except DataError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _reserve_many(stores, n: int, budget: float) -> int:
    """n reservations of $1 from 16 threads, alternating between the stores; how many were admitted."""
    def one(i: int) -> bool:
        return stores[i % len(stores)].reserve("k", "2026-12-01", 1.0, budget)
    with cf.ThreadPoolExecutor(16) as ex:
        return sum(ex.map(one, range(n)))


def test_reservations_are_atomic_in_every_store(redis_url, tmp_path: Path) -> None:
    assert _reserve_many([MemoryStore()], 400, 50.0) == 50
    assert _reserve_many([SQLiteStore(tmp_path / "s.sqlite")], 400, 50.0) == 50
    a, b = RedisStore(redis_url, prefix="t1"), RedisStore(redis_url, prefix="t1")  # two instances, one Redis
    assert _reserve_many([a, b], 400, 50.0) == 50
    assert a.held("k", "2026-12-01") == 50.0 == b.held("k", "2026-12-01")
    for _ in range(50):
        b.release("k", "2026-12-01", 1.0)
    assert a.held("k", "2026-12-01") == 0.0  # exactly 0 once every hold is back


def test_spend_survives_a_restart(redis_url, tmp_path: Path) -> None:
    for spec in (f"sqlite:///{tmp_path / 'state.sqlite'}", redis_url):
        kb = KeyBudgets({"k": 1.0}, store=open_store(spec))
        kb.charge("k", 0.25)
        kb.charge("k", 0.5)
        again = KeyBudgets({"k": 1.0}, store=open_store(spec))  # a new instance on the same state
        assert again.spent("k") == pytest.approx(0.75)
        kb.store.close()  # type: ignore[attr-defined]
        again.store.close()  # type: ignore[attr-defined]
    assert KeyBudgets({"k": 1.0}, store=open_store("memory")).spent("k") == 0.0


@pytest.mark.parametrize("spec, message", [
    ("postgres://x", "--state must be memory, sqlite:///PATH or redis://HOST:PORT/DB"),
    ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0"),
])
def test_bad_state(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        open_store(spec)


def _serve(policy: Path, upstream: str, state: str, port: int, budget: float) -> subprocess.Popen:
    args = [sys.executable, "-m", "callwise.cli", "serve", str(policy), "--port", str(port), "--api-base", upstream,
            "--provider-costs", "--no-cache", "--api-key", "k", "--key-budget", str(budget), "--state", state,
            "--log-level", "warning"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"callwise serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("callwise serve did not start in 60 s")


def test_two_instances_on_one_redis_keep_one_budget(shared_data, redis_url, tmp_path: Path) -> None:
    table = task_table(shared_data)
    train, test = split(table)
    router = fit_policy(train, "knn", budget=0.0003, holdout=False, n_boot=10).policy
    save_policy(router, tmp_path / "knn.json")
    prompts = prompts_of(test, test.prompt_ids()[:40])
    budget = 0.003
    state = redis_url.rsplit("/", 1)[0] + "/1"  # a database of its own
    with BackgroundServer(build_replay_app(table)) as up:
        ports = [free_port(), free_port()]
        procs = [_serve(tmp_path / "knn.json", up.url + "/v1", state, p, budget) for p in ports]
        try:
            def one(i: int) -> httpx.Response:
                body = {"model": "callwise/knn", "seed": i, "messages": [{"role": "user", "content": prompts[i % 40]}]}
                return httpx.post(f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions", json=body,
                                  headers={"authorization": "Bearer k"}, timeout=60)
            with cf.ThreadPoolExecutor(32) as ex:
                got = list(ex.map(one, range(200)))
            ok = [r for r in got if r.status_code == 200]
            assert {r.status_code for r in got} <= {200, 429} and ok and len(ok) < 200
            assert {r.headers.get("x-request-id") is not None for r in ok} == {True}
            served_by = [i % 2 for i, r in enumerate(got) if r.status_code == 200]
            assert set(served_by) == {0, 1}, "both instances answered"
            dearest = max(r.json()["usage"]["cost"] for r in ok)
            store = open_store(state)
            spent = KeyBudgets({"k": budget}, store=store).spent("k")
            assert spent == pytest.approx(sum(r.json()["usage"]["cost"] for r in ok))
            assert spent <= budget + dearest, (spent, budget, dearest)
            # spend the rest one request at a time, on both instances, until the key is refused
            last = None
            for i in range(200):
                r = one(i)
                if r.status_code == 429:
                    last = i
                    break
            assert last is not None, "the key should run out of budget"
            spent = KeyBudgets({"k": budget}, store=store).spent("k")
            assert spent <= budget + dearest
            # restart that instance: it finds the day's spend in Redis and refuses the same request
            k = last % 2
            procs[k].terminate()
            procs[k].wait(timeout=10)
            procs[k] = _serve(tmp_path / "knn.json", up.url + "/v1", state, ports[k], budget)
            r = one(last)
            assert r.status_code == 429 and "daily budget" in r.json()["error"]["message"]
            assert KeyBudgets({"k": budget}, store=store).spent("k") == pytest.approx(spent)
            store.close()  # type: ignore[attr-defined]
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)


def test_ledgers_and_floors_are_kept_and_shared(redis_url, tmp_path: Path) -> None:
    """A cascade's budget ledger and a conversation's floor: shared by two Redis clients, kept by SQLite
    across a restart, and the memory store keeps only the most recent conversations."""
    path = tmp_path / "state.sqlite"
    pairs = [(RedisStore(redis_url, prefix="t2"), RedisStore(redis_url, prefix="t2")),
             (SQLiteStore(path), None)]
    for a, b in pairs:
        a.ledger_add("casc", 0.003, 0.001, 3)
        a.ledger_add("casc", 0.002, 0.004, 2)
        a.floor_set("conv-1", "gpt-4o")
        a.floor_set("conv-1", "gpt-4o-mini")  # the latest turn's model wins
        b = b if b is not None else SQLiteStore(path)  # SQLite: a restarted instance on the same file
        assert b.ledger("casc") == (pytest.approx(0.005), pytest.approx(0.005), 5)
        assert b.ledger("other") == (0.0, 0.0, 0)
        assert b.floor("conv-1") == "gpt-4o-mini" and b.floor("conv-2") is None
        ledger = StoredLedger(b, "casc")
        assert ledger.allowance(2, 0.001) == pytest.approx(0.005 + 0.002 - 0.005)
        ledger.record(1, 0.001, 0.0005)
        assert StoredLedger(a, "casc").queries == 6 and StoredLedger(a, "casc").spent == pytest.approx(0.0055)
    m = MemoryStore(floors=3)
    for i in range(5):
        m.floor_set(f"c{i}", f"m{i}")
    m.floor("c2")  # read: the most recently used stays
    m.floor_set("c5", "m5")
    assert [m.floor(f"c{i}") for i in range(6)] == [None, None, "m2", None, "m4", "m5"]
    s = SQLiteStore(tmp_path / "floors.sqlite", floors=10)
    for i in range(1000):  # pruned every 1,000 writes to the most recent `floors`
        s.floor_set(f"c{i}", "m")
    assert s._db.execute("SELECT COUNT(*) FROM floor").fetchone()[0] == 10
    assert s.floor("c999") == "m" and s.floor("c989") is None


def test_ledger_records_are_atomic_across_instances(redis_url, tmp_path: Path) -> None:
    stores = [RedisStore(redis_url, prefix="t3"), RedisStore(redis_url, prefix="t3")]
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: StoredLedger(stores[i % 2], "p").record(1, 0.25, 0.5), range(400)))
    assert stores[0].ledger("p") == (pytest.approx(100.0), pytest.approx(200.0), 400)


def test_two_instances_share_a_cascade_ledger_and_conversation_floors(shared_data, redis_url, tmp_path: Path) -> None:
    """A cascade served by two instances on one Redis decides, request by request, exactly as one
    policy with one ledger does offline; a conversation escalated on one instance stays on the large
    model when its next turn reaches the other."""
    import numpy as np

    from callwise.core.backend import Queries
    from callwise.core.budget import BudgetLedger
    from callwise.core.replay import Replay

    table = task_table(shared_data)
    train, test = split(table)
    cascade = fit_policy(train, "confidence-cascade", params={"models": [SMALL, LARGE]}, budget=0.0003,
                         holdout=False, n_boot=10).policy
    save_policy(cascade, tmp_path / "casc.json")
    first = test.frame.drop_duplicates("prompt_id")
    counts = table.frame.drop_duplicates("prompt_id")["prompt"].value_counts()
    ids = np.array([p for p, t in zip(first["prompt_id"], first["prompt"]) if counts[t] == 1][:30], dtype=object)
    prompts = prompts_of(test, ids)
    state = redis_url.rsplit("/", 1)[0] + "/2"
    sim = cascade.with_ledger(BudgetLedger())
    replay = Replay(test)
    with BackgroundServer(build_replay_app(table)) as up:
        ports = [free_port(), free_port()]
        procs = [_serve(tmp_path / "casc.json", up.url + "/v1", state, p, 100.0) for p in ports]
        try:
            def ask(i: int, messages: list) -> dict:
                r = httpx.post(f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions", timeout=60,
                               json={"model": "callwise/casc", "messages": messages},
                               headers={"authorization": "Bearer k"})
                assert r.status_code == 200, r.text
                return r.json()
            escalated, large_first = 0, None
            for i, (pid, p) in enumerate(zip(ids, prompts)):
                d = sim.decide(Queries(np.array([pid], dtype=object), np.array([p], dtype=object),
                                       np.array(["t"], dtype=object)), replay)
                got = ask(i, [{"role": "user", "content": p}])
                assert got["choices"][0]["message"]["content"] == d.answers[0], i
                assert got["usage"]["cost"] == pytest.approx(d.cost[0], rel=1e-9), i
                if got["usage"]["callwise"]["answered_by"] == LARGE:
                    escalated += 1
                    large_first = large_first or (i, p, got["choices"][0]["message"]["content"])
            assert 0 < escalated < len(ids), escalated
            i, p, answer = large_first
            small_next = next(q for q in prompts if q != p)
            convo = [{"role": "user", "content": p}, {"role": "assistant", "content": answer},
                     {"role": "user", "content": small_next}]
            got = ask(i + 1, convo)  # the other instance than the one that answered the first turn
            assert got["usage"]["callwise"]["answered_by"] == LARGE
            assert {c["served_by"] for c in got["usage"]["callwise"]["calls"]} == {LARGE}
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
