"""``callwise bench``: evaluate every registered policy on held-out recorded outcomes.

Per task: split train/test (:func:`~callwise.core.split.split_outcomes`), fit each policy on train, run it on a
:class:`~callwise.core.replay.Replay` of test, and compare everything in the cost–quality plane with
the single models, the zero router and the oracle: points, hulls, AIQ under both normalisations
(:mod:`callwise.core.frontier`), stratified bootstrap confidence intervals over test prompts, cost to
reach 95% of the best single model and quality at that model's cost. Overall AIQ is the mean of
the per-task AIQs; overall points pool the test prompts of all tasks.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import PolicyError
from ..core.files import json_default
from ..core.frontier import (
    NORMALISATIONS,
    ORACLE_CONVENTIONS,
    Curve,
    aiq,
    cost_to_reach,
    ndch,
    oracle_curve,
    quality_at_budget,
    range_has_width,
    shared_range,
)
from ..core.outcomes import OutcomeTable
from ..core.parallel import Executor, Unit
from ..core.policy import Policy, columns_read_by, registry
from ..core.progress import Counter, OnProgress, chunk_size
from ..core.replay import Replay
from ..core.version import __version__
from ..routing import oracle_share_curve, routellm_metrics, share_curve

AIQ_DESCRIPTIONS = {
    "paper": "1/(c_max-c_min) * integral of the hull over the shared [c_min, c_max]; 0 below a curve's "
             "cheapest point, flat above its dearest (RouterBench paper)",
    "routerbench-code": "hull extended flat to the largest cost c_max, integrated from its own cheapest point, "
                        "divided by c_max (RouterBench code)",
}
TARGET_SHARE = 0.95
#: Why a task has no AIQ (nor gap closed): its shared cost range has no width (see
#: :func:`~callwise.core.frontier.range_has_width`), e.g. one price for every model.
AIQ_UNDEFINED = "all models cost the same on this task: AIQ needs a cost range; compare top quality"


# --------------------------------------------------------------------------------------------
# entries: one per compared policy in one task


@dataclass
class Entry:
    """One compared policy in one task: its points, per-prompt outcomes (for the bootstrap) and hull."""

    name: str
    family: str
    params: list[dict[str, Any]]
    cost: np.ndarray | None  # (P, k) per-prompt cost of each of its k points; None for derived entries
    quality: np.ndarray | None
    points: np.ndarray  # (k, 2)
    curve: Curve
    aiq: dict[str, float | None] = field(default_factory=dict)  # None: undefined (no cost range)
    aiq_ci: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    shares: dict[str, np.ndarray] | None = None  # model -> (k,) share of queries calling it, per point
    latency: np.ndarray | None = None  # (P, k) per-prompt latency (s) of each point, where recorded

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "params": self.params,
                "points": [[float(c), float(q)] for c, q in self.points], "hull": self.curve.to_list(),
                "aiq": self.aiq, "aiq_ci": self.aiq_ci, **self.extra}


def _from_matrices(name: str, family: str, params: list[dict[str, Any]], cost: np.ndarray, quality: np.ndarray,
                   shares: dict[str, np.ndarray] | None = None, latency: np.ndarray | None = None) -> Entry:
    pts = np.column_stack([cost.mean(axis=0), quality.mean(axis=0)])
    e = Entry(name, family, params, cost, quality, pts, ndch(pts[:, 0], pts[:, 1]))
    if shares is not None:
        e.shares = shares
    e.latency = latency
    return e


def _recorded_latency(view: Any) -> np.ndarray | None:
    """(P, M) recorded latency of each prompt and model (first sample), or None unless every call has one."""
    lat = getattr(view, "latency", None)
    if lat is None:
        return None
    lat = lat[:, :, 0]
    return lat if np.isfinite(lat).all() else None


def _run_policy(policy: Policy, replay: Replay) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray,
                                                         dict[str, np.ndarray], np.ndarray | None]:
    """Run every configuration of the policy's sweep: params, per-prompt cost and quality (P, k), the
    share of queries that called each model at each point (model -> (k,)), and the per-prompt latency
    (P, k) where the data records it: the policy's own when it reports one, else the sum of the recorded
    latencies of the calls it made (calls one after another; a vote's K parallel calls would wait for the
    slowest instead)."""
    queries = replay.queries()
    configs = policy.sweep()
    cost = np.empty((len(queries), len(configs)))
    quality = np.empty_like(cost)
    shares = np.empty((len(configs), len(replay.models)))
    rec = _recorded_latency(replay.view)
    latency = None if rec is None else np.empty_like(cost)
    for k, cfg in enumerate(configs):
        d = cfg.decide(queries, replay)
        cost[:, k], quality[:, k] = d.cost, d.quality
        shares[k] = (d.calls > 0).mean(axis=0)
        if latency is not None:
            own = d.latency if d.latency is not None and np.isfinite(d.latency).all() else None
            latency[:, k] = own if own is not None else (d.calls * rec).sum(axis=1)
    return [_jsonable(c.params()) for c in configs], cost, quality, dict(zip(replay.models, shares.T)), latency


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: json_default(v) if isinstance(v, (np.generic, np.ndarray)) else v for k, v in d.items()}


@dataclass
class TaskResult:
    task: str
    n_train: int
    n_test: int
    entries: dict[str, Entry]
    cost_range: tuple[float, float]
    best_model: str
    latency: dict[str, Any] | None = None  # the quality–latency plane (bench axis="latency")

    @property
    def aiq_defined(self) -> bool:
        """False where the task's cost range has no width (every model costs the same): AIQ and gap
        closed are then None (null in results.json, n/a in the tables)."""
        return range_has_width(*self.cost_range)

    def to_dict(self) -> dict[str, Any]:
        out = {"n_train": self.n_train, "n_test": self.n_test, "cost_range": list(self.cost_range),
               "aiq_defined": self.aiq_defined,
               "best_single_model": self.best_model, "policies": {k: e.to_dict() for k, e in self.entries.items()}}
        if not self.aiq_defined:
            out["notes"] = [AIQ_UNDEFINED]
        if self.latency is not None:
            out["latency"] = self.latency
        return out


def _baseline_entries(test: OutcomeTable, oracle: str = "callwise"
                      ) -> tuple[dict[str, Entry], Any, np.ndarray | None]:
    """The fixed baselines of one task: the oracle, the zero router and each single model."""
    view = test.dense()
    q0, c0 = view.quality[:, :, 0], view.cost[:, :, 0]
    ok = np.isfinite(q0).all(axis=0)
    entries: dict[str, Entry] = {}
    singles = []
    rec = _recorded_latency(view)
    for j, m in enumerate(view.models):
        if ok[j]:
            e = _from_matrices(m, "single", [{"model": m}], c0[:, [j]], q0[:, [j]],
                               latency=None if rec is None else rec[:, [j]])
            singles.append(e)
    singles.sort(key=lambda e: e.points[0, 0])
    oc = oracle_curve(q0, c0, oracle)
    entries["oracle"] = Entry("oracle", "oracle", [], None, None, np.column_stack([oc.cost, oc.quality]), oc)
    sp = np.vstack([e.points for e in singles])
    entries["zero"] = Entry("zero", "zero", [], None, None, sp, ndch(sp[:, 0], sp[:, 1]))
    for e in singles:
        entries[e.name] = e
    return entries, (q0, c0, [e.name for e in singles]), rec


def _policy_unit(data: tuple[OutcomeTable, OutcomeTable], name: str, factory: Callable) -> tuple | None:
    """One unit of work (:mod:`callwise.core.parallel`): fit policy ``name`` on a task's training split
    and run its sweep on a replay of the task's test split; None where it does not apply there."""
    train, test = data
    pol = factory(train)
    if pol is None:
        return None
    return (pol.family, *_run_policy(pol.fit(train), Replay(test.dense())))


def _add_policy(entries: dict[str, Entry], name: str, r: tuple | None) -> None:
    """The entry of a policy unit's result (none where the policy does not apply to the task)."""
    if r is not None:
        family, params, c, q, sh, lat = r
        entries[name] = _from_matrices(name, family, params, c, q, sh, lat)


def _ran(r: tuple | None) -> str:
    return " (does not apply)" if r is None else f" (fit and {len(r[1])} configuration(s) run)"


def _no_step(what: str, n: int = 1) -> None:
    pass


def _latency_plane(entries: dict[str, Entry], truth: tuple[np.ndarray, np.ndarray, list[str]], rec: np.ndarray,
                   oracle: str) -> dict[str, Any]:
    """Each entry's points, hull and AIQ (both normalisations) in the quality–latency plane, with the zero
    router (the single models' hull) and the oracle (argmax λ·q − latency) in the same plane."""
    q0 = truth[0]
    pts = {n: np.column_stack([e.latency.mean(axis=0), e.quality.mean(axis=0)])
           for n, e in entries.items() if e.latency is not None and e.quality is not None}
    sp = np.vstack([pts[s] for s in truth[2]])
    oc = oracle_curve(q0, rec, oracle)
    pts["zero"] = sp
    pts["oracle"] = np.column_stack([oc.cost, oc.quality])
    curves = {n: (oc if n == "oracle" else ndch(p[:, 0], p[:, 1])) for n, p in pts.items()}
    lo, hi = _range(pts.values())
    wide = range_has_width(lo, hi)  # every call as fast as every other: no latency range, no AIQ
    out = {}
    for n in entries:
        if n in pts:
            out[n] = {"points": [[float(x), float(y)] for x, y in pts[n]], "hull": curves[n].to_list(),
                      "aiq": {norm: aiq(curves[n], lo, hi, norm) if wide else None for norm in NORMALISATIONS}}
    return {"range_s": [lo, hi], "entries": out}


def _aiqs(entries: dict[str, Entry]) -> tuple[float, float]:
    """Each entry's AIQ over the task's shared cost range (returned); None where that range has no
    width (:data:`AIQ_UNDEFINED`): an average over a range of float noise is noise."""
    lo, hi = _range(e.points for e in entries.values())
    wide = range_has_width(lo, hi)
    for e in entries.values():
        e.aiq = {n: aiq(e.curve, lo, hi, n) if wide else None for n in NORMALISATIONS}
    return lo, hi


def _range(point_sets) -> tuple[float, float]:
    """The shared cost range of (k, 2) point arrays."""
    return shared_range(np.asarray(p)[:, 0] for p in point_sets if len(p))


def _boot_means(entries: dict[str, Entry], truth: tuple[np.ndarray, np.ndarray, list[str]], n_boot: int,
                seed: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per entry with per-prompt outcomes, its (n_boot, k) mean cost and quality on each stratified
    resample of the task's test prompts, and the resamples' weights (n_boot, P): one draw seeded by the
    task, so the same whatever runs the rounds."""
    P = truth[0].shape[0]
    rng = np.random.default_rng(seed)
    W = rng.multinomial(P, np.full(P, 1.0 / P), size=n_boot)
    return {n: (W @ e.cost / P, W @ e.quality / P) for n, e in entries.items() if e.cost is not None}, W


def _boot_unit(data: tuple, lo: int, hi: int) -> np.ndarray:
    """One unit of work (:mod:`callwise.core.parallel`): bootstrap rounds ``lo:hi`` of a task;
    (hi - lo, entries, 2) AIQs (paper, code), entries in the task's order."""
    names, means, W, q0, c0, single_names, oracle = data
    P = q0.shape[0]
    out = np.empty((hi - lo, len(names), len(NORMALISATIONS)))
    for r, b in enumerate(range(lo, hi)):
        idx = np.repeat(np.arange(P), W[b])
        curves, pts = {}, []
        for n, (mc, mq) in means.items():
            p = np.column_stack([mc[b], mq[b]])
            curves[n] = ndch(p[:, 0], p[:, 1])
            pts.append(p)
        sp = np.column_stack([[means[s][0][b, 0] for s in single_names], [means[s][1][b, 0] for s in single_names]])
        curves["zero"] = ndch(sp[:, 0], sp[:, 1])
        curves["oracle"] = oracle_curve(q0[idx], c0[idx], oracle)
        pts.append(np.column_stack([curves["oracle"].cost, curves["oracle"].quality]))
        lo_c, hi_c = _range(pts)
        wide = range_has_width(lo_c, hi_c)
        for j, n in enumerate(names):
            out[r, j] = [aiq(curves[n], lo_c, hi_c, norm) if wide else np.nan for norm in NORMALISATIONS]
    return out


def _boot_chunks(n_boot: int) -> list[tuple[int, int]]:
    """The bootstrap's units: chunks of rounds (about 20), the same whatever runs them."""
    every = chunk_size(n_boot)
    return [(lo, min(lo + every, n_boot)) for lo in range(0, n_boot, every)]


def _boot_data(entries: dict[str, Entry], truth: tuple[np.ndarray, np.ndarray, list[str]], n_boot: int,
               seed: int, oracle: str) -> tuple:
    """What every bootstrap unit of a task reads (sent once per task)."""
    means, W = _boot_means(entries, truth, n_boot, seed)
    return list(entries), means, W, truth[0], truth[1], truth[2], oracle


def _boot_intervals(entries: dict[str, Entry], chunks: list[np.ndarray], level: float) -> dict[str, np.ndarray]:
    """Per entry its (n_boot, 2) resampled AIQs from the chunks' results; sets each entry's ``aiq_ci``."""
    allr = np.concatenate(chunks, axis=0)
    out = {n: allr[:, j, :] for j, n in enumerate(entries)}
    a = (1 - level) / 2
    for n, e in entries.items():
        ok = np.isfinite(out[n]).all(axis=1)  # resamples without a cost range have no AIQ
        if not ok.any():
            e.aiq_ci = {}
            continue
        qs = np.quantile(out[n][ok], [a, 1 - a], axis=0)
        e.aiq_ci = {norm: [float(qs[0, k]), float(qs[1, k])] for k, norm in enumerate(NORMALISATIONS)}
    return out


def _targets(entries: dict[str, Entry], best: Entry) -> None:
    target = TARGET_SHARE * best.points[0, 1]
    budget = best.points[0, 0]
    for e in entries.values():
        c = cost_to_reach(e.curve, target)
        e.extra["cost_to_95pct_best_model"] = None if not np.isfinite(c) else c
        qb = quality_at_budget(e.curve, budget)
        e.extra["quality_at_best_model_cost"] = None if not np.isfinite(qb) else float(qb)


def _gap_closed(entries: dict[str, Entry]) -> None:
    """Share of the zero-to-oracle AIQ gap each entry closes (paper normalisation): 0 = zero router, 1 = oracle;
    None where an AIQ is undefined or the oracle is not above the zero router."""
    z, o = entries["zero"].aiq.get("paper"), entries["oracle"].aiq.get("paper")
    for e in entries.values():
        a = e.aiq.get("paper")
        ok = a is not None and z is not None and o is not None and o - z > 1e-12
        e.extra["gap_closed"] = (a - z) / (o - z) if ok else None


def _routellm(entries: dict[str, Entry], truth: tuple[np.ndarray, np.ndarray, list[str]], strong: str) -> None:
    """RouteLLM's APGR and CPT(50%/80%) for a two-model task (see :mod:`callwise.routing.apgr`)."""
    singles = truth[2]
    weak = [m for m in singles if m != strong][0]
    qw, qs = entries[weak].points[0, 1], entries[strong].points[0, 1]
    for name, e in entries.items():
        if name == "oracle":
            curve = oracle_share_curve(entries[weak].quality[:, 0], entries[strong].quality[:, 0])
        elif name == "zero":
            curve = share_curve(np.empty(0), np.empty(0), qw, qs)
        elif e.shares is not None:
            curve = share_curve(e.shares[strong], e.points[:, 1], qw, qs)
        else:
            continue
        e.extra["routellm"] = {"strong": strong, "weak": weak, **routellm_metrics(curve)}


# --------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """Everything ``callwise bench`` computed; ``to_dict()`` is what results.json holds."""

    meta: dict[str, Any]
    tasks: dict[str, TaskResult]
    overall: dict[str, Entry]

    def to_dict(self) -> dict[str, Any]:
        overall = {k: e.to_dict() for k, e in self.overall.items()}
        left = self.aiq_left_out()
        rule = "mean of the per-task AIQs over the tasks where the policy ran"
        if left:
            rule += f", leaving out the {len(left)} task(s) without a cost range (AIQ undefined there)"
        return {**self.meta, "tasks": {t: r.to_dict() for t, r in self.tasks.items()},
                "overall": {"aiq_rule": rule,
                            "aiq_left_out": {"tasks": left, "why": AIQ_UNDEFINED} if left else {"tasks": []},
                            "points_rule": "mean over the test prompts of all tasks",
                            "policies": overall}}

    def aiq_left_out(self) -> list[str]:
        """The tasks whose AIQ is undefined (no cost range), which the overall mean AIQ leaves out."""
        return [t for t, r in self.tasks.items() if not r.aiq_defined]


def default_policies() -> dict[str, Callable[[OutcomeTable], Policy | None]]:
    """The registered policies bench evaluates: those whose ``default(train)`` builds one."""
    return {name: cls.default for name, cls in registry().items()
            if cls.default.__func__ is not Policy.default.__func__}  # type: ignore[attr-defined]


def _bench_policies(policies: Sequence[str] | None) -> dict[str, Callable[[OutcomeTable], Policy | None]]:
    avail = default_policies()
    if policies is None:
        return avail
    unknown = [p for p in policies if p not in avail]
    if unknown:
        raise PolicyError(f"unknown policy {unknown[0]!r} for bench; available: {sorted(avail)}")
    return {p: avail[p] for p in policies}


def bench_columns(policies: Sequence[str] | None = None) -> frozenset[str]:
    """The optional columns :func:`bench` reads for these policies (None: every one it evaluates):
    what each declares (:attr:`~callwise.core.policy.Policy.reads`), and ``latency``, which bench
    reports for every entry. ``callwise bench`` loads only these (``load(path, columns=...)``)."""
    return frozenset({"latency"}) | columns_read_by(_bench_policies(policies))


def bench(train: OutcomeTable, test: OutcomeTable, *, policies: Sequence[str] | None = None, n_boot: int = 200,
          seed: int = 0, level: float = 0.95, split_info: dict[str, Any] | None = None,
          on_task: Callable[[str], None] | None = None, oracle: str = "callwise",
          axis: str = "cost", on_progress: OnProgress | None = None, jobs: int = 1,
          ray: str | None = None) -> BenchResult:
    """Evaluate the fixed baselines and every registered (or named) policy per task and overall.

    ``oracle``: ``callwise`` (a prompt no model solves goes to the cheapest model) or
    ``routerbench`` (RouterBench's code: such a prompt costs nothing); see
    :data:`~callwise.core.frontier.ORACLE_CONVENTIONS`. Every entry reports its mean latency per point
    where the data records latency (``latency_points``); ``axis="latency"`` also places every entry in
    the quality–latency plane, with its own hull, zero router, oracle and AIQ (``latency`` per task).

    ``on_progress(done, total, what)`` (:mod:`callwise.core.progress`) counts the work: per task one
    unit for the fixed baselines, one per policy (its fit and sweep) and one per bootstrap round
    (reported in chunks); ``on_task(task)`` is told each task before its baselines are built.

    ``jobs`` > 1 runs the independent units (each task x policy's fit and sweep, each task's chunks of
    bootstrap rounds) on that many local processes, ``ray`` (an address, or ``"local"``) as Ray tasks
    (:mod:`callwise.core.parallel`); the result is the same as serially (``jobs=1``, the default).
    """
    if axis not in ("cost", "latency"):
        raise PolicyError(f"axis must be 'cost' or 'latency', got {axis!r}")
    if oracle not in ORACLE_CONVENTIONS:
        raise PolicyError(f"unknown oracle convention {oracle!r}; expected one of {list(ORACLE_CONVENTIONS)}")
    avail = _bench_policies(policies)
    tasks = test.tasks()
    train_tasks = set(train.tasks())
    missing = [t for t in tasks if t not in train_tasks]
    results: dict[str, TaskResult] = {}
    boots: dict[str, dict[str, np.ndarray]] = {}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray, list]]] = {}
    counter = Counter(on_progress, sum(1 + (len(avail) if t not in missing else 0) + n_boot for t in tasks))
    per_task: dict[str, tuple[int, int, dict[str, Entry], Any, np.ndarray | None]] = {}
    splits: dict[str, tuple[OutcomeTable, OutcomeTable]] = {}  # the policies' units' input, sent once per task
    with Executor(jobs, ray) as ex:
        for task in tasks:
            if on_task:
                on_task(task)
            tr, te = train.for_task(task), test.for_task(task)
            per_task[task] = (tr.frame["prompt_id"].nunique(), te.frame["prompt_id"].nunique(),
                              *_baseline_entries(te, oracle))
            if task not in missing:
                splits[task] = tr, te
            if axis == "latency" and per_task[task][4] is None:
                raise PolicyError(f"--axis latency needs a recorded latency for every call; task {task!r} has "
                                  "calls without one")
            counter(f"task {task}: single models, zero router, oracle")
        # units: each (task, policy) fit on train and run on test; each task's split sent once
        units = [Unit(f"task {t}: {name}", (name, factory), t) for t in tasks if t not in missing
                 for name, factory in avail.items()]
        runs = ex.map(_policy_unit, units, splits, on_done=lambda i, r: counter(units[i].name + _ran(r)))
        splits.clear()  # the per-task tables are not needed past the fits
        for u, r in zip(units, runs):
            _add_policy(per_task[str(u.share)][2], u.args[0], r)
        ranges = {t: _aiqs(per_task[t][2]) for t in tasks}
        # units: each task's bootstrap rounds in chunks; the task's resampled means sent once
        bunits = [Unit(f"task {t}: bootstrap {hi}/{n_boot}", (lo, hi), t) for t in tasks
                  for lo, hi in _boot_chunks(n_boot)]
        bdata = {t: _boot_data(per_task[t][2], per_task[t][3], n_boot,
                               zlib.crc32(t.encode()) ^ seed, oracle) for t in tasks} if n_boot else {}
        chunks = ex.map(_boot_unit, bunits, bdata,
                        on_done=lambda i, r: counter(bunits[i].name, len(r)))
    for task in tasks:
        n_train, n_test, entries, truth, rec = per_task[task]
        boots[task] = (_boot_intervals(entries, [c for u, c in zip(bunits, chunks) if u.share == task], level)
                       if n_boot else {})
        best = max((entries[s] for s in truth[2]), key=lambda e: (e.points[0, 1], -e.points[0, 0]))
        _targets(entries, best)
        _gap_closed(entries)
        if len(truth[2]) == 2:
            _routellm(entries, truth, best.name)
        results[task] = TaskResult(task, n_train, n_test, entries, ranges[task], best.name)
        for e in entries.values():
            if e.latency is not None and e.quality is not None:
                e.extra["latency_points"] = [float(x) for x in e.latency.mean(axis=0)]
        if axis == "latency":
            assert rec is not None
            results[task].latency = _latency_plane(entries, truth, rec, oracle)
        for n, e in entries.items():
            if e.cost is not None:
                pooled.setdefault(n, []).append((e.cost, e.quality, e.params))
    overall = _overall(test, results, boots, pooled, len(tasks), level, oracle)
    meta = {
        "callwise_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {**{k: v for k, v in train.meta.items() if k != "dropped_prompts"},
                 "fingerprint": _combined_fingerprint(train, test),
                 "column_fingerprints": _combined_columns(train, test),
                 "n_outcomes": len(train) + len(test),
                 "n_prompts": int(train.frame["prompt_id"].nunique() + test.frame["prompt_id"].nunique()),
                 "costs_estimated": bool(train.costs_estimated or test.costs_estimated)},
        "split": {**(split_info or {}), "tasks_without_train": missing},
        "seed": seed,
        "oracle_convention": oracle,
        "axis": axis,
        "aiq_normalisations": AIQ_DESCRIPTIONS,
        "aiq_shown_first": "paper",
        "bootstrap": {"resamples": n_boot, "level": level, "over": "test prompts, stratified by task"},
        "targets": {"cost_to_95pct_best_model": f"least mean cost at which the hull reaches {TARGET_SHARE:.0%} of "
                                                "the best single model's test quality (null: never)",
                    "quality_at_best_model_cost": "hull quality at the best single model's mean test cost"},
    }
    return BenchResult(meta, results, overall)


def _combined_fingerprint(train: OutcomeTable, test: OutcomeTable) -> str:
    """One content hash naming the train and test data together (each table hashed once)."""
    return hashlib.sha256(f"{train.fingerprint()}|{test.fingerprint()}".encode()).hexdigest()[:16]


def _combined_columns(train: OutcomeTable, test: OutcomeTable) -> dict[str, str]:
    """Each optional column the policies were given, hashed over both splits (see
    :meth:`OutcomeTable.column_fingerprints`): with the fingerprint, what exactly was read."""
    a, b = train.column_fingerprints(), test.column_fingerprints()
    return {c: hashlib.sha256(f"{a[c]}|{b.get(c)}".encode()).hexdigest()[:16] for c in a}


def _overall(test: OutcomeTable, results: dict[str, TaskResult], boots: dict[str, dict[str, np.ndarray]],
             pooled: dict[str, list], n_tasks: int, level: float, oracle: str = "callwise") -> dict[str, Entry]:
    names: list[str] = []
    for r in results.values():
        names += [n for n in r.entries if n not in names]
    overall: dict[str, Entry] = {}
    view = test.dense()
    q0, c0 = view.quality[:, :, 0], view.cost[:, :, 0]
    for n in names:
        present = [r.entries[n] for r in results.values() if n in r.entries]
        fam = present[0].family
        defined = [e for e in present if all(e.aiq.get(norm) is not None for norm in NORMALISATIONS)]
        aiqs = {norm: float(np.mean([e.aiq[norm] for e in defined])) if defined else None for norm in NORMALISATIONS}
        if n == "oracle":
            curve = oracle_curve(q0, c0, oracle)
            pts = np.column_stack([curve.cost, curve.quality])
        else:
            parts = pooled.get(n, [])
            if n == "zero" or len(parts) != n_tasks or len({p[0].shape[1] for p in parts}) != 1:
                pts = np.empty((0, 2))
            else:
                c = np.vstack([p[0] for p in parts])
                q = np.vstack([p[1] for p in parts])
                pts = np.column_stack([c.mean(axis=0), q.mean(axis=0)])
            curve = ndch(pts[:, 0], pts[:, 1]) if len(pts) else Curve(np.array([np.nan]), np.array([np.nan]))
        extra: dict[str, Any] = {"n_tasks": len(present)}
        if len(defined) < len(present):
            extra["n_tasks_aiq"] = len(defined)  # tasks in its mean AIQ (the others have no cost range)
        e = Entry(n, fam, present[0].params, None, None, pts, curve, aiqs, extra=extra)
        overall[n] = e
        runs = [boots[t][n] for t in results if n in results[t].entries and n in boots.get(t, {})
                and results[t].aiq_defined]
        if runs:
            m = np.mean(np.stack(runs), axis=0)  # (B, 2): mean over tasks of resampled per-task AIQs
            a = (1 - level) / 2
            qs = np.quantile(m, [a, 1 - a], axis=0)
            e.aiq_ci = {norm: [float(qs[0, k]), float(qs[1, k])] for k, norm in enumerate(NORMALISATIONS)}
    # overall zero router: hull of the single models present in every task
    singles = [n for n, e in overall.items() if e.family == "single" and len(e.points)]
    if singles:
        sp = np.vstack([overall[s].points for s in singles])
        overall["zero"].points, overall["zero"].curve = sp, ndch(sp[:, 0], sp[:, 1])
    _gap_closed(overall)
    return overall
