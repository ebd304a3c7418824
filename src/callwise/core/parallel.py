"""Independent units of work, run one after another, on local processes or as Ray tasks.

A pass over tasks, folds or candidates whose units do not depend on each other is a list of
:class:`Unit` s mapped by :meth:`Executor.map`: ``fn(shared[unit.share], *unit.args)`` for every
unit. The executor is one of

- **serial** (``jobs=1``, the default): a plain loop in this process;
- **local processes** (``jobs=N``): a pool of N worker processes (kept for the executor's life, so
  several passes share one start-up); each shared input is pickled once per pass to a temporary
  file that a worker reads the first time a unit needs it, never once per unit;
- **Ray** (``ray=ADDRESS``, :func:`callwise.core.cluster.connect`): one Ray task per unit (one CPU
  each), named ``callwise-unit-<i>-<unit>`` (a worker's process title is ``ray::<that name>`` while it
  runs the unit); each shared input is put in the object store once per pass (``ray.put``) and the
  tasks take its reference.

**A worker that dies** (killed, out of memory) does not lose the pass. On Ray its task is run again,
up to :data:`RETRIES` times (``max_retries``; Ray's own default for tasks, set explicitly). With local
processes a dead worker breaks the whole pool (``concurrent.futures`` fails every unit still queued or
running), so the executor starts a fresh pool and resubmits the units that had not finished, up to
:data:`RETRIES` pool restarts in one pass; after that it raises a :class:`WorkerDied` naming those
units. Units that had finished are kept and never run again, and ``on_done`` is still called once per
unit. Units are pure (see below), so a retried unit computes what it would have the first time.

Whatever the executor, the results come back in unit order, so what is built from them is the same;
nothing a unit computes may depend on which units ran before it in the same process (each unit's
randomness is seeded from its identity: the task, the fold, the policy's own seed). ``on_done(i,
result)`` is called in this process as each unit finishes (in the order they finish). A unit that
raises stops the pass: the error is raised again here, of the same type, its message prefixed
with the unit's name (and the worker's traceback added as a note). Only ``fn`` itself, the shared
inputs, the units' arguments and the results need to pickle; ``fn`` must be a module-level function.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .errors import CallwiseError

#: The executors' names, as :attr:`Executor.kind` and results' metadata say them.
KINDS = ("serial", "processes", "ray")

#: How often a unit whose worker died is run again: Ray's ``max_retries`` per task, and the number of
#: times one pass of the local process pool is restarted after a worker process died.
RETRIES = 3


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``name`` (for progress and errors), its own small ``args`` and the key of the
    shared input it needs (``None``: none)."""

    name: str
    args: tuple[Any, ...] = ()
    share: str | None = None


class UnitError(CallwiseError):
    """A unit failed with an exception that could not be raised again as itself."""


class WorkerDied(CallwiseError):
    """A local worker process died (killed, out of memory) on every try of a pass's unfinished units."""


def _task_name(i: int, unit: Unit) -> str:
    """A short ASCII Ray task name for unit ``i`` (a worker's process title is ``ray::`` and this)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", unit.name).strip("-")[:40]
    return f"callwise-unit-{i}-{slug}" if slug else f"callwise-unit-{i}"


def _names(units: Sequence[Unit], most: int = 5) -> str:
    """``'a', 'b' and 3 more`` for an error message."""
    shown = ", ".join(repr(u.name) for u in units[:most])
    return shown + (f" and {len(units) - most} more" if len(units) > most else "")


@dataclass
class _Failed:
    """What a unit that raised sends back: the exception (or its text, where it does not pickle)."""

    error: BaseException | None
    text: str
    trace: str


def _call(fn: Callable[..., Any], value: Any, args: tuple[Any, ...]) -> Any:
    """Run one unit, turning an exception into a :class:`_Failed` that pickles."""
    try:
        return fn(value, *args)
    except Exception as e:  # noqa: BLE001 - re-raised in the driver (see _raise)
        trace = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(e))
            err: BaseException | None = e
        except Exception:  # noqa: BLE001
            err = None
        return _Failed(err, f"{type(e).__name__}: {e}", trace)


def _raise(unit: Unit, failed: _Failed, where: str) -> None:
    e = failed.error
    if e is None:
        raise UnitError(f"{unit.name}: {failed.text}")
    if e.args and isinstance(e.args[0], str):
        e.args = (f"{unit.name}: {e.args[0]}", *e.args[1:])
    else:
        e.args = (f"{unit.name}", *e.args)
    if where != "serial" and hasattr(e, "add_note"):
        e.add_note(f"raised in unit {unit.name!r} on {where}; the worker's traceback:\n{failed.trace}")
    raise e


# ----------------------------------------------------------------------------------------------
# local processes: each shared input is read from its file once per worker process

_WORKER_SHARED: dict[str, Any] = {}


def _worker_start(threads: int) -> None:
    """Keep each worker to its share of the cores (numerical libraries' thread pools)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except Exception:  # noqa: BLE001 - without threadpoolctl the pools keep their defaults
        pass


def _process_call(fn: Callable[..., Any], path: str | None, args: tuple[Any, ...]) -> Any:
    value = None
    if path is not None:
        if path not in _WORKER_SHARED:
            if len(_WORKER_SHARED) >= 4:  # a pass's units come task by task: keep the last few inputs
                _WORKER_SHARED.pop(next(iter(_WORKER_SHARED)))
            with open(path, "rb") as fh:
                _WORKER_SHARED[path] = pickle.load(fh)
        value = _WORKER_SHARED[path]
    return _call(fn, value, args)


def _ray_call(fn: Callable[..., Any], value: Any, args: tuple[Any, ...]) -> Any:
    return _call(fn, value, args)


class Executor:
    """Maps functions over independent units serially (``jobs=1``), on ``jobs`` local processes, or
    on Ray (``ray``: an address for :func:`~callwise.core.cluster.connect`). Use it as a context
    manager (the process pool is closed on exit)."""

    def __init__(self, jobs: int = 1, ray: str | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise CallwiseError(f"--jobs must be a whole number >= 1, got {jobs!r}")
        if ray is not None and jobs > 1:
            raise CallwiseError("give --jobs (local processes) or --ray (a Ray cluster), not both")
        self.jobs = jobs
        self.address = ray
        self.kind = "ray" if ray is not None else ("processes" if jobs > 1 else "serial")
        self._pool: Any = None
        self._ray: Any = None
        self._remote: Any = None
        if self.kind == "ray":
            from .cluster import connect

            self._ray = connect(ray)
            self._remote = self._ray.remote(num_cpus=1, max_retries=RETRIES)(_ray_call)

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Shut the process pool down (Ray stays connected for the rest of the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return {"serial": "serial", "processes": f"{self.jobs} local processes",
                "ray": f"Ray ({self.address})"}[self.kind]

    def map(self, fn: Callable[..., Any], units: Sequence[Unit], shared: Mapping[str, Any] | None = None,
            on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``[fn(shared[u.share], *u.args) for u in units]``, run by this executor; ``on_done(i, result)``
        as each unit finishes."""
        units = list(units)
        shared = shared or {}
        if not units:
            return []
        if self.kind == "serial" or len(units) == 1 and self.kind == "processes":
            return self._serial(fn, units, shared, on_done)
        if self.kind == "processes":
            return self._processes(fn, units, shared, on_done)
        return self._on_ray(fn, units, shared, on_done)

    def _serial(self, fn: Callable[..., Any], units: list[Unit], shared: Mapping[str, Any],
                on_done: Callable[[int, Any], None] | None) -> list[Any]:
        out = []
        for i, u in enumerate(units):
            r = _call(fn, None if u.share is None else shared[u.share], u.args)
            if isinstance(r, _Failed):
                _raise(u, r, "serial")
            out.append(r)
            if on_done:
                on_done(i, r)
        return out

    def _collect(self, units: list[Unit], results: dict[int, Any], failures: dict[int, _Failed],
                 i: int, r: Any, on_done: Callable[[int, Any], None] | None) -> None:
        if isinstance(r, _Failed):
            failures[i] = r
            return
        results[i] = r
        if on_done and not failures:
            on_done(i, r)

    def _new_pool(self, fn: Callable[..., Any]) -> Any:
        import concurrent.futures as cf
        import multiprocessing as mp

        if "forkserver" in mp.get_all_start_methods():
            # workers forked from a server that has imported the units' module, and not the caller's
            # script (a script without a ``__main__`` guard would run again there)
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload([fn.__module__])
        else:
            ctx = mp.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        return cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx,
                                      initializer=_worker_start, initargs=(threads,))

    def _processes(self, fn: Callable[..., Any], units: list[Unit], shared: Mapping[str, Any],
                   on_done: Callable[[int, Any], None] | None) -> list[Any]:
        import concurrent.futures as cf
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = self._new_pool(fn)
        tmp = tempfile.mkdtemp(prefix="callwise-parallel-")
        results: dict[int, Any] = {}
        failures: dict[int, _Failed] = {}
        try:
            paths: dict[str, str] = {}
            for k in {u.share for u in units if u.share is not None}:
                paths[k] = os.path.join(tmp, f"{len(paths)}.pkl")
                with open(paths[k], "wb") as fh:
                    pickle.dump(shared[k], fh, protocol=pickle.HIGHEST_PROTOCOL)
            restarts = 0
            while True:
                todo = [i for i in range(len(units)) if i not in results]
                futs = {self._pool.submit(_process_call, fn, paths.get(units[i].share) if units[i].share else None,
                                          units[i].args): i for i in todo}
                broken = False
                for f in cf.as_completed(futs):
                    try:
                        r = f.result()
                    except BrokenProcessPool:
                        broken = True
                        break
                    self._collect(units, results, failures, futs[f], r, on_done)
                    if failures:
                        for g in futs:
                            g.cancel()
                        cf.wait(futs)
                        break
                if not broken:
                    break
                # a worker died: the pool fails every unit it had not finished; keep the ones that did
                cf.wait(futs)
                for f, i in futs.items():
                    if i not in results and not f.cancelled() and f.exception() is None:
                        self._collect(units, results, failures, i, f.result(), on_done)
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
                if failures:
                    break
                lost = [units[i] for i in range(len(units)) if i not in results]
                if restarts >= RETRIES:
                    raise WorkerDied(
                        f"a worker process died (killed, or out of memory?) while running {_names(lost)} "
                        f"({len(lost)} of {len(units)} units unfinished) on {self.describe()}, "
                        f"again after {restarts} restarts of the pool; the units that finished were kept")
                restarts += 1
                self._pool = self._new_pool(fn)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if failures:
            i = min(failures)
            _raise(units[i], failures[i], self.describe())
        return [results[i] for i in range(len(units))]

    def _on_ray(self, fn: Callable[..., Any], units: list[Unit], shared: Mapping[str, Any],
                on_done: Callable[[int, Any], None] | None) -> list[Any]:
        ray = self._ray
        refs = {k: ray.put(shared[k]) for k in {u.share for u in units if u.share is not None}}
        fn_ref = ray.put(fn)
        tasks = {self._remote.options(name=_task_name(i, u), max_retries=RETRIES)
                 .remote(fn_ref, refs[u.share] if u.share else None, u.args): i for i, u in enumerate(units)}
        pending = list(tasks)
        results: dict[int, Any] = {}
        failures: dict[int, _Failed] = {}
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    r = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - Ray's own failure (a worker lost past its retries)
                    r = _Failed(None, f"{type(e).__name__}: {e}", "")
                self._collect(units, results, failures, tasks[ref], r, on_done)
            if failures:
                for ref in pending:
                    ray.cancel(ref)
                break
        if failures:
            i = min(failures)
            _raise(units[i], failures[i], self.describe())
        return [results[i] for i in range(len(units))]


def executor(jobs: int = 1, ray: str | None = None) -> Executor:
    """An :class:`Executor` for ``jobs`` local processes or the Ray cluster at ``ray`` (serial by default)."""
    return Executor(jobs, ray)


__all__ = ["KINDS", "RETRIES", "Executor", "Unit", "UnitError", "WorkerDied", "executor"]
