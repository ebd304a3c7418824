"""The SQLite response cache: stable keys, round trips, secrets never stored, bad files refused,
concurrent writers (processes and threads) and entries surviving a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import callwise
from callwise.core.errors import CallwiseError
from callwise.live.cache import (
    CHUNK,
    NON_GENERATION_PARAMS,
    CachedResponse,
    CacheError,
    ResponseCache,
    default_cache_path,
    request_key,
    scrub_secrets,
)

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2? ünïcödé"}]
SRC = str(Path(callwise.__file__).resolve().parents[1])


def _response(text: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


def _put(cache: ResponseCache, key: str, model: str = "gpt-x", cost: float = 0.01, text: str | None = None) -> None:
    cache.put(key, model, {"model": model, "messages": MSGS}, _response(text or key), cost, 0.25, "usage")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def cache(tmp_path: Path):
    with ResponseCache(tmp_path / "c" / "responses.sqlite") as c:
        yield c


# -- keys -----------------------------------------------------------------------------------------


def test_key_is_stable_and_ignores_param_order_and_non_generation_params() -> None:
    base = request_key("gpt-x", MSGS, {"temperature": 0.7, "max_tokens": 100}, 0)
    assert len(base) == 64 and int(base, 16) >= 0
    assert request_key("gpt-x", MSGS, {"temperature": 0.7, "max_tokens": 100}, 0) == base
    assert request_key("gpt-x", MSGS, {"max_tokens": 100, "temperature": 0.7}, 0) == base
    noisy = {"max_tokens": 100, "temperature": 0.7, "stream": True, "timeout": 30, "api_key": "sk-1",
             "api_base": "http://x", "extra_headers": {"X": "1"}, "metadata": {"run": 3}, "user": "u",
             "max_retries": 5, "top_p": None, "aws_secret_access_key": "s"}
    assert request_key("gpt-x", MSGS, noisy, 0) == base
    assert {"stream", "timeout", "api_key", "metadata", "extra_headers"} <= NON_GENERATION_PARAMS
    # integral floats and ints are the same request
    assert request_key("m", MSGS, {"temperature": 1.0}, 0) == request_key("m", MSGS, {"temperature": 1}, 0)


@pytest.mark.parametrize("change", ["sample", "model", "messages", "temperature", "role", "extra param"])
def test_key_changes_with_what_changes_the_generation(change: str) -> None:
    args = {"model": "gpt-x", "messages": [dict(m) for m in MSGS], "params": {"temperature": 0.7}, "sample": 0}
    base = request_key(**args)
    if change == "sample":
        args["sample"] = 1
    elif change == "model":
        args["model"] = "gpt-y"
    elif change == "messages":
        args["messages"][1]["content"] = "What is 2+3?"
    elif change == "temperature":
        args["params"] = {"temperature": 0.8}
    elif change == "role":
        args["messages"][0]["role"] = "user"
    else:
        args["params"] = {"temperature": 0.7, "seed": 1}
    assert request_key(**args) != base


def test_key_accepts_numpy_scalars() -> None:
    plain = request_key("m", MSGS, {"temperature": 0.7, "max_tokens": 100, "logprobs": True, "stop": ["a", "b"]}, 2)
    npy = request_key("m", MSGS, {"temperature": np.float64(0.7), "max_tokens": np.int64(100),
                                  "logprobs": np.bool_(True), "stop": ("a", np.str_("b"))}, np.int64(2))
    assert npy == plain
    def key(**params: object) -> str:
        return request_key("m", MSGS, params, 0)

    assert key(temperature=np.float32(0.7)) == key(temperature=0.7)  # float32's shortest repr, not 0.69999...
    assert key(logit_bias=np.array([1, 2])) == key(logit_bias=[1, 2])


def test_unhashable_params_name_the_param() -> None:
    class Schema:
        pass

    with pytest.raises(CacheError, match=r"^parameter 'response_format': the class Schema cannot be hashed into"):
        request_key("m", MSGS, {"response_format": Schema}, 0)
    with pytest.raises(CacheError, match=r"^parameter 'stop': a set \(\{'\w', '\w'\}\) cannot be hashed"):
        request_key("m", MSGS, {"stop": {"a", "b"}}, 0)
    with pytest.raises(CacheError, match=r"parameter 'temperature': nan is not a finite number"):
        request_key("m", MSGS, {"temperature": float("nan")}, 0)
    with pytest.raises(CacheError, match=r"^parameter 'tools'\[0\]\['f'\]: a bytes \(b'raw'\) cannot be hashed"):
        request_key("m", MSGS, {"tools": [{"f": b"raw"}]}, 0)
    with pytest.raises(CacheError, match=r"sample -1: expected a non-negative integer"):
        request_key("m", MSGS, {}, -1)
    assert issubclass(CacheError, CallwiseError)


def test_default_cache_path_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "cw"))
    assert default_cache_path() == tmp_path / "cw" / "responses.sqlite"
    with ResponseCache() as c:
        assert c.path == tmp_path / "cw" / "responses.sqlite"
        _put(c, "k")
    assert (tmp_path / "cw" / "responses.sqlite").is_file()
    monkeypatch.delenv("CALLWISE_CACHE_DIR")
    assert default_cache_path() == Path.home() / ".cache" / "callwise" / "responses.sqlite"


# -- round trips ----------------------------------------------------------------------------------


def test_put_get_round_trip(cache: ResponseCache) -> None:
    key = request_key("gpt-x", MSGS, {"temperature": 0}, 0)
    assert cache.get(key) is None and len(cache) == 0 and key not in cache
    before = time.time()
    cache.put(key, "gpt-x", {"model": "gpt-x", "messages": MSGS}, _response("4 ünï"), 0.0123, 0.5, "usage")
    got = cache.get(key)
    assert isinstance(got, CachedResponse)
    assert got.key == key and got.model == "gpt-x" and got.response == _response("4 ünï")
    assert got.cost == pytest.approx(0.0123) and got.latency == 0.5 and got.cost_source == "usage"
    assert before - 1 <= got.created <= time.time() + 1
    assert len(cache) == 1 and key in cache


def test_first_answer_wins(cache: ResponseCache) -> None:
    _put(cache, "k", text="first", cost=0.5)
    _put(cache, "k", text="second", cost=0.9)
    assert cache.put_many([("k", "gpt-x", {}, _response("third"), 1.0, 0.1, "usage")]) == 0
    got = cache.get("k")
    assert got is not None and got.response == _response("first") and got.cost == 0.5
    assert len(cache) == 1


def test_put_many_and_get_many_in_chunks(cache: ResponseCache) -> None:
    n = 1200
    rows = [{"key": f"k{i}", "model": f"m{i % 3}", "request": {"i": i}, "response": _response(str(i)),
             "cost": 0.001, "latency": None, "cost_source": "prices"} for i in range(n)]
    assert cache.put_many(rows) == n
    assert len(cache) == n
    selects = []
    cache._conn.set_trace_callback(lambda s: selects.append(s) if s.startswith("SELECT") else None)
    keys = [f"k{i}" for i in range(n)] + [f"missing{i}" for i in range(100)]
    got = cache.get_many(keys)
    cache._conn.set_trace_callback(None)
    assert len(selects) == -(-len(keys) // CHUNK) == 3
    assert set(got) == {f"k{i}" for i in range(n)}
    assert got["k777"].response == _response("777") and got["k777"].model == "m0" and got["k777"].latency is None
    assert cache.get_many([]) == {}


def test_put_many_is_all_or_nothing(cache: ResponseCache) -> None:
    rows = [("a", "m", {}, _response("a"), 0.1, 0.1, "usage"), ("b", "m", {}, _response("b"), -1.0, 0.1, "usage")]
    with pytest.raises(CacheError, match=r"entry b: cost -1.0: expected a finite, non-negative number"):
        cache.put_many(rows)
    assert len(cache) == 0
    with pytest.raises(CacheError, match=r"put_many row 0: 2 values; expected 7"):
        cache.put_many([("a", "m")])


def test_stats(cache: ResponseCache) -> None:
    empty = cache.stats()
    assert empty["entries"] == 0 and empty["models"] == {} and empty["oldest"] is None and empty["newest"] is None
    for i in range(3):
        _put(cache, f"a{i}", model="gpt-x", cost=0.25)
    for i in range(2):
        _put(cache, f"b{i}", model="claude-y", cost=1.5)
    s = cache.stats()
    assert s["path"] == str(cache.path)
    assert s["size_bytes"] > 0
    assert s["entries"] == 5
    assert s["models"] == {"claude-y": {"entries": 2, "cost": pytest.approx(3.0)},
                           "gpt-x": {"entries": 3, "cost": pytest.approx(0.75)}}
    oldest, newest = datetime.fromisoformat(s["oldest"]), datetime.fromisoformat(s["newest"])
    assert oldest <= newest and abs(newest.timestamp() - time.time()) < 60


def test_clear_by_model_age_and_all(cache: ResponseCache) -> None:
    for i in range(4):
        _put(cache, f"a{i}", model="gpt-x")
        _put(cache, f"b{i}", model="claude-y")
    assert cache.clear(model="gpt-x") == 4
    assert len(cache) == 4 and cache.get("a0") is None and cache.get("b0") is not None
    with sqlite3.connect(cache.path) as other:  # age two entries by ten days
        other.execute("UPDATE responses SET created = created - 10 * 86400 WHERE key IN ('b0', 'b1')")
    assert cache.clear(older_than_days=5) == 2
    assert sorted(cache.get_many(["b0", "b1", "b2", "b3"])) == ["b2", "b3"]
    assert cache.clear(model="nobody") == 0
    assert cache.clear() == 2 and len(cache) == 0
    with pytest.raises(CacheError, match=r"older_than_days -1: expected a non-negative number of days"):
        cache.clear(older_than_days=-1)


def test_readonly_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with pytest.raises(CacheError, match=rf"{path}: no response cache there to open read-only"):
        ResponseCache(path, readonly=True)
    assert not path.exists()
    with ResponseCache(path) as c:
        _put(c, "k")
    with ResponseCache(path, readonly=True) as r:
        assert r.get("k") is not None and len(r) == 1 and r.stats()["entries"] == 1
        with pytest.raises(CacheError, match=r"opened read-only"):
            _put(r, "k2")
        with pytest.raises(CacheError, match=r"opened read-only"):
            r.clear()
    r.close()  # idempotent
    with pytest.raises(CacheError, match=r"the response cache is closed"):
        r.get("k")


# -- secrets --------------------------------------------------------------------------------------


def test_secrets_are_never_stored(tmp_path: Path) -> None:
    secrets = ["sk-TOPSECRET-0001", "Bearer sk-TOPSECRET-0002", "sk-TOPSECRET-0003", "AWS-TOPSECRET-0004"]
    params = {"temperature": 0.2, "max_tokens": 64, "api_key": secrets[0],
              "extra_headers": {"Authorization": secrets[1]},
              "metadata": {"runs": [{"api-key": secrets[2]}]}, "aws_secret_access_key": secrets[3]}
    key = request_key("gpt-x", MSGS, params, 0)
    assert key == request_key("gpt-x", MSGS, {"temperature": 0.2, "max_tokens": 64}, 0)
    path = tmp_path / "s.sqlite"
    cache = ResponseCache(path)
    cache.put(key, "gpt-x", {"model": "gpt-x", "messages": MSGS, **params}, _response("ok"), 0.01, 0.2, "usage")
    cache.put_many([{"key": "k2", "model": "gpt-x", "request": {"nested": [{"headers": {"x-api-key": secrets[0]}}]},
                     "response": _response("ok"), "cost": 0.0, "latency": 0.1, "cost_source": "usage"}])

    def leaked() -> list[str]:
        files = [p for p in tmp_path.iterdir() if p.name.startswith("s.sqlite")]
        assert files
        blob = b"".join(p.read_bytes() for p in files)
        return [s for s in secrets if s.encode() in blob or s.split()[-1].encode() in blob]

    assert Path(str(path) + "-wal").exists()  # the entries are in the WAL file while open
    assert leaked() == []
    with sqlite3.connect(path) as conn:
        stored = json.loads(conn.execute("SELECT request FROM responses WHERE key = ?", (key,)).fetchone()[0])
    assert stored == {"model": "gpt-x", "messages": MSGS, "temperature": 0.2, "max_tokens": 64,
                      "metadata": {"runs": [{}]}}
    cache.close()
    assert leaked() == []
    assert scrub_secrets({"max_tokens": 5, "token": "t", "Cookie": "c", "l": [{"password": "p"}]}) == \
        {"max_tokens": 5, "l": [{}]}


# -- bad files ------------------------------------------------------------------------------------


def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    path.write_text("hello, I am a text file\n")
    with pytest.raises(CacheError, match=rf"^{path}: not a callwise response cache: not a SQLite database "
                                         rf"\(starts with b'hello, I'\); expected a SQLite file made by callwise"):
        ResponseCache(path)
    assert path.read_text() == "hello, I am a text file\n"


def test_other_apps_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    with pytest.raises(CacheError, match=rf"^{path}: a SQLite database but not a callwise response cache "
                                         rf"\(tables: users; expected tables meta and responses\)"):
        ResponseCache(path)
    with sqlite3.connect(path) as conn:  # untouched
        assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("users",)]


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    with ResponseCache(path) as c:
        _put(c, "k")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match=rf"^{path}: response cache schema version '99', this callwise reads "
                                         rf"version 1; move or delete the file"):
        ResponseCache(path)
    with pytest.raises(CacheError, match=rf"^{tmp_path}: is a directory; expected a SQLite response cache file"):
        ResponseCache(tmp_path)


# -- concurrency ----------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import pathlib, sys, time
    from callwise.live.cache import ResponseCache
    path, wid, go = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
    cache = ResponseCache(path)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    for i in range(200):
        cache.put(f"w{wid}-{i}", f"model-{wid % 2}", {"i": i},
                  {"choices": [{"message": {"content": f"{wid}:{i}"}}]}, 0.001, 0.1, "test")
        assert cache.get(f"w{wid}-{i}") is not None
    cache.close()
    print("done", flush=True)
""")


def test_processes_write_one_file_at_once(tmp_path: Path) -> None:
    path, go = tmp_path / "fresh" / "responses.sqlite", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for w in range(4)]
    try:
        for p in procs:  # all four open the (new) file, then all write at once
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    with ResponseCache(path) as c:
        assert len(c) == 800
        got = c.get_many([f"w{w}-{i}" for w in range(4) for i in range(200)])
        assert len(got) == 800 and got["w3-199"].response["choices"][0]["message"]["content"] == "3:199"
        assert c.stats()["models"]["model-0"]["entries"] == 400
    assert _integrity(path) == "ok"


def test_threads_share_one_cache(cache: ResponseCache) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(50):
                key = f"t{t}-{i}"
                _put(cache, key, model=f"m{t % 2}")
                got = cache.get(key)
                assert got is not None and got.response == _response(key)
                if i % 10 == 9:
                    assert len(cache.get_many([f"t{t}-{j}" for j in range(i + 1)])) == i + 1
                    cache.stats()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert len(cache) == 400
    assert _integrity(cache.path) == "ok"


KILLED = textwrap.dedent("""
    import sys
    from callwise.live.cache import ResponseCache
    cache = ResponseCache(sys.argv[1])
    body = "x" * 6000
    for i in range(20000):
        key = f"k{i}"
        cache.put(key, "m", {"i": i}, {"id": key, "content": body + key}, 0.01, 0.1, "test")
        sys.stdout.write(key + "\\n")
        sys.stdout.flush()
""")


def test_entries_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite: a kill ends readline with EOF
    watchdog.start()
    try:
        keys: list[str] = []
        while len(keys) < 50:
            line = proc.stdout.readline()
            assert line.endswith("\n"), f"writer stopped early: {proc.stderr.read() if proc.poll() else ''}"
            keys.append(line.strip())
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()  # keys printed before the kill: their put had returned
        proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    keys += [k for k in rest.split("\n")[:-1] if k]
    assert keys == [f"k{i}" for i in range(len(keys))]
    with ResponseCache(path) as c:
        got = c.get_many(keys)
        assert len(got) == len(keys)
        for k in keys:
            assert got[k].response == {"id": k, "content": "x" * 6000 + k}
        assert len(c) >= len(keys)
    assert _integrity(path) == "ok"
