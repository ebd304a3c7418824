"""The cascade evaluation protocol of Ramírez et al. (METHODS.md section 2), vectorised.

Two protocols, reported apart (``protocol=``):

- ``paper`` (the default; the authors' ``plots.py`` and ``make_cascade``): 100 budgets evenly from
  c_S to **c_L**; the streaming methods follow the authors' three branches
  (:func:`~callwise.cascades.thresholds.paper_stream`: S only when only S is affordable for the
  rest, **L directly** when the budget covers L for every query left, otherwise S and escalation
  below the running quantile after a warm-up of 20); the random baseline is the authors'
  deterministic mix (the first share of the stream to S, the rest to L); at the last budget every
  method is given L's accuracy; accuracy is the mean over 3 random orders of the test stream; the
  score is the area under accuracy-vs-budget divided by c_L − c_S. Costs are recorded dollars,
  fixed ratios (``cost_ratio=R``: c_S = 1, c_L = R for every query, as in the paper's setups) or
  time (recorded latency). The budget axis is the models' mean test costs, as in the authors'
  code; the branches and the share compare mean *training* costs (the authors use the evaluation
  stream's: a decision here reads no test data), and each call is charged its own cost.
- ``extended`` (callwise's earlier protocol): budgets from c_S to c_S + c_L, where a cascade can
  exceed L; streaming methods escalate below the running quantile under the budget guard, with
  no L-only branch; the random baseline mixes per query by a seeded uniform under the guard.

Methods (all under the same per-query budget, on the same split):

- ``confidence``: the confidence cascade — S's own confidence, no trained model;
- ``frugal``: FrugalGPT-style cascade (classifier on prompt + S's answer);
- ``hybrid``: HybridLLM-style router (classifier on the prompt: S not worse than L), routing;
- ``router``: a meta-model router (classifier on the prompt predicting S is right), routing;
- ``random``: random mixture of S and L, routing;
- ``oracle``: escalate exactly when S is wrong and L right (an upper bound).

Score-based methods run ``streaming`` (the method names above) and ``offline`` (quantiles of
out-of-fold training scores under the guard; names with ``@offline``, an option beside the
paper's rule). The baselines a cascade must beat are :data:`BASELINES` (``paper``; it includes
the meta-model router, as the paper's baselines include Šakota et al.'s) or
:data:`EXTENDED_BASELINES`.

Everything per budget is one array operation: a (budgets x queries) candidate matrix per stream
order, the guard as a cumulative sum (:mod:`callwise.cascades.thresholds`); the three-branch
stream takes one step per query, vectorised over budgets. Learned scores are fitted once per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import PolicyError
from ..core.frontier import aiq, mean_ci, ndch
from ..core.hashing import query_uniforms
from ..core.outcomes import OutcomeTable
from ..core.progress import Counter, OnProgress
from ..core.replay import Replay
from .escalation import SAME_PRICE, ConfidenceCascade, Escalation, tie_uniforms
from .learned import FrugalCascade, TwoTierRouter
from .thresholds import (
    SMALL,
    UNAFFORDABLE,
    QuantileThreshold,
    candidates,
    escalation_share,
    guard,
    paper_share,
    paper_stream,
    running_positions,
)

#: The baselines "beats every baseline" compares with under the paper's protocol: the learned
#: cascade and routers (the meta-model router stands for Šakota et al.'s) and the random mix.
BASELINES = ("frugal", "hybrid", "router", "random")
#: ... and under the extended protocol (as callwise reported it before the paper's protocol).
EXTENDED_BASELINES = ("frugal", "hybrid", "random")
PROTOCOLS = ("paper", "extended")
COST_MODES = ("dollars", "time")
SCORED = ("confidence", "frugal", "hybrid", "router")
METHODS = ("oracle", *SCORED, *(f"{m}@offline" for m in SCORED), "random")


@dataclass(frozen=True)
class Simulation:
    """One method's results at each budget (means over stream orders)."""

    accuracy: np.ndarray
    cost: np.ndarray
    max_spend_ratio: float  # largest (spend / (budget·N)) over budgets and orders: <= 1 means within budget
    per_query: np.ndarray  # each query's quality averaged over budgets (AUC weights) and orders: AUC = its mean


def stream_orders(n: int, n_orders: int, seed: int) -> np.ndarray:
    """``n_orders`` seeded random permutations of the test stream, (n_orders x n)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_orders)]) if n_orders else np.empty((0, n), int)


def simulate(quality: np.ndarray, cost: np.ndarray, shares: np.ndarray, budgets: np.ndarray, orders: np.ndarray, *,
             positions: np.ndarray | None = None, stream_scores: np.ndarray | None = None,
             u: np.ndarray | None = None, fixed: np.ndarray | None = None, routing: bool = False,
             warmup: int = 0, last_is_large: bool = False) -> Simulation:
    """Run a staged cascade (or a two-model router) over every budget and stream order at once.

    ``quality``/``cost``: (N x K) recorded outcomes of the chain's models, cheapest first.
    ``shares``: (B x K−1) escalation share per budget and stage. Exactly one of: ``positions``
    (N x K−1, offline positions of each stage's score), ``stream_scores`` (N, two tiers: positions
    are running quantiles over each order, with ``u`` splitting ties, nothing before ``warmup``),
    ``fixed`` (N x K−1 boolean: the candidates regardless of budget, e.g. the oracle's). ``routing``
    (two models): an escalated query calls only L, so it costs c_L instead of c_S. ``last_is_large``:
    the last budget is given the last model's accuracy and cost (the paper's protocol).
    """
    q, c = np.asarray(quality, float), np.asarray(cost, float)
    n, k_models = q.shape
    budgets = np.asarray(budgets, float)
    shares = np.asarray(shares, float).reshape(len(budgets), k_models - 1)
    if routing and k_models != 2:
        raise PolicyError("routing simulation is for two models")
    total = budgets * n
    first = c[:, 0].sum()

    def run(perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qp, cp = q[perm], c[perm]
        if stream_scores is not None:
            assert u is not None
            pos = running_positions(np.asarray(stream_scores)[perm], np.asarray(u)[perm])[:, None]
        elif positions is not None:
            pos = np.asarray(positions).reshape(n, -1)[perm]
        stage = np.zeros((len(budgets), n), dtype=np.int64)
        reached = np.ones((len(budgets), n), dtype=bool)
        slack = total - first
        spent = np.full(len(budgets), first)
        for k in range(k_models - 1):
            if fixed is not None:
                cand = reached & np.asarray(fixed).reshape(n, -1)[perm, k][None, :]
            else:
                cand = reached & candidates(pos[:, k], shares[:, k], warmup if stream_scores is not None else 0)
            extra = cp[:, 1] - cp[:, 0] if routing else cp[:, k + 1]
            esc = guard(cand, np.maximum(extra, 0.0), slack)
            step = esc @ extra
            slack, spent = slack - np.maximum(step, 0.0), spent + step
            stage[esc] = k + 1
            reached = esc
        return qp[np.arange(n)[None, :], stage], spent

    return _over_orders(run, q, c, budgets, orders, last_is_large)


def simulate_paper(quality: np.ndarray, charges: np.ndarray, scores: np.ndarray, budgets: np.ndarray,
                   shares: np.ndarray, orders: np.ndarray, decision_cost: tuple[float, float], *,
                   large_is_better: bool, routing: bool = False, warmup: int = 20,
                   last_is_large: bool = True) -> Simulation:
    """The authors' three-branch stream (:func:`~callwise.cascades.thresholds.paper_stream`) over every budget and order.

    ``quality`` / ``charges``: (N x 2) recorded quality and charged cost of S and L; ``scores``
    (N,) S's confidence (cascade) or the router's score of S (routing), low = escalate. A query
    nothing is affordable for scores 0 (the authors score a random label: 1/classes). With
    ``last_is_large`` the last budget is given L's accuracy and cost, as ``plots.py`` does.
    """
    q, ch = np.asarray(quality, float), np.asarray(charges, float)

    def run(perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st = paper_stream(np.asarray(scores, float)[perm], budgets, shares, decision_cost, ch[perm, 0], ch[perm, 1],
                          large_is_better=large_is_better, routing=routing, warmup=warmup)
        got = np.where(st.outcome == SMALL, q[perm, 0][None, :],
                       np.where(st.outcome == UNAFFORDABLE, 0.0, q[perm, 1][None, :]))
        return got, st.spent

    return _over_orders(run, q, ch, np.asarray(budgets, float), orders, last_is_large)


def simulate_authors_random(quality: np.ndarray, charges: np.ndarray, budgets: np.ndarray, orders: np.ndarray,
                            decision_cost: tuple[float, float], *, last_is_large: bool = True) -> Simulation:
    """The authors' random baseline: in each stream order the first ⌊N·(b − c_L)/(c_S − c_L)⌋ queries go to S, the rest to L.

    ``decision_cost`` (c_S, c_L) are the ends of the budget axis, so b = c_S is all S and b = c_L all L.
    """
    q, ch = np.asarray(quality, float), np.asarray(charges, float)
    n = len(q)
    budgets = np.asarray(budgets, float)
    c1, c2 = decision_cost
    cut = np.trunc(n * ((budgets - c2) / (c1 - c2)))
    to_small = np.arange(n)[None, :] < cut[:, None]

    def run(perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        got = np.where(to_small, q[perm, 0][None, :], q[perm, 1][None, :])
        return got, np.where(to_small, ch[perm, 0][None, :], ch[perm, 1][None, :]).sum(axis=1)

    return _over_orders(run, q, ch, budgets, orders, last_is_large)


def _over_orders(run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], q: np.ndarray, ch: np.ndarray,
                 budgets: np.ndarray, orders: np.ndarray, last_is_large: bool) -> Simulation:
    """Means over stream orders of ``run(perm)`` -> ((budgets x N) quality in stream order, (budgets,) spend).

    With ``last_is_large`` the last budget is given the last model's quality and cost (columns of
    ``q`` / ``ch``, chain order).
    """
    n = len(q)
    weights = _auc_weights(budgets)
    acc, spent_mean, per_query, ratio = np.zeros(len(budgets)), np.zeros(len(budgets)), np.zeros(n), 0.0
    for perm in orders:
        got, spent = run(perm)
        spent = np.array(spent, dtype=float)
        if last_is_large:
            got[-1], spent[-1] = q[perm, -1], ch[perm, -1].sum()
        acc += got.mean(axis=1)
        per_query[perm] += weights @ got
        spent_mean += spent / n
        ratio = max(ratio, float(np.max(spent / np.where(budgets > 0, budgets * n, np.inf))))
    r = max(len(orders), 1)
    return Simulation(acc / r, spent_mean / r, ratio, per_query / r)


def _auc_weights(budgets: np.ndarray) -> np.ndarray:
    """Trapezoid weights over the budgets, summing to 1: AUC = weights @ accuracy."""
    b = np.asarray(budgets, float)
    if len(b) < 2 or b[-1] <= b[0]:
        return np.full(len(b), 1.0 / max(len(b), 1))
    d = np.diff(b)
    w = np.zeros(len(b))
    w[:-1] += d / 2
    w[1:] += d / 2
    return w / w.sum()


def auc(budgets: np.ndarray, accuracy: np.ndarray) -> float:
    """Area under accuracy-vs-budget divided by the budget range (trapezoids)."""
    return float(_auc_weights(budgets) @ np.asarray(accuracy, float))


@dataclass
class MethodResult:
    name: str
    auc: float
    aiq: float
    accuracy: np.ndarray
    cost: np.ndarray
    max_spend_ratio: float
    per_query: np.ndarray  # not written to results.json (one value per test query)

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc, "aiq": self.aiq, "max_spend_ratio": self.max_spend_ratio,
                "accuracy": self.accuracy.tolist(), "cost": self.cost.tolist()}


@dataclass
class CascadeResult:
    """One (small, large) pair or one chain on one task."""

    task: str
    models: tuple[str, ...]
    n_train: int
    n_test: int
    model_accuracy: dict[str, float]
    model_cost: dict[str, float]
    budgets: np.ndarray
    protocol: str = "extended"
    methods: dict[str, MethodResult] = field(default_factory=dict)
    _intervals: dict[tuple, tuple[float, float, float] | None] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return "pair" if len(self.models) == 2 else "chain"

    @property
    def baselines(self) -> tuple[str, ...]:
        """The methods the confidence cascade must beat under this result's protocol."""
        return BASELINES if self.protocol == "paper" else EXTENDED_BASELINES

    def best_baseline(self, mode: str = "streaming") -> tuple[str, float]:
        names = [b if b == "random" or mode == "streaming" else f"{b}@offline" for b in self.baselines]
        got = [(n, self.methods[n].auc) for n in names if n in self.methods]
        return max(got, key=lambda t: t[1]) if got else ("", float("nan"))

    def beats_baselines(self, mode: str = "streaming") -> bool | None:
        """Whether the confidence cascade's AUC is above every baseline's (None when not comparable)."""
        name = "confidence" if mode == "streaming" else "confidence@offline"
        if name not in self.methods or self.kind != "pair":
            return None
        _, best = self.best_baseline(mode)
        return bool(self.methods[name].auc > best) if np.isfinite(best) else None

    def difference_ci(self, mode: str = "streaming", *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float] | None:
        """AUC of the confidence cascade minus the best baseline's, with a paired bootstrap interval.

        Resamples test queries with each query's decisions held fixed (a query's quality averaged
        over budgets and orders is its share of the AUC): it measures how much the test sample
        alone could move the difference, not how thresholds would change with other training data.
        """
        key = (mode, n_boot, seed, level)
        if key in self._intervals:  # the summary, the table and results.json all ask: bootstrap once
            return self._intervals[key]
        name = "confidence" if mode == "streaming" else "confidence@offline"
        best, _ = self.best_baseline(mode)
        out = None
        if name in self.methods and best in self.methods:
            d = self.methods[name].per_query - self.methods[best].per_query
            lo, hi = mean_ci(d, n_boot=n_boot, seed=seed, level=level)
            out = (float(d.mean()), float(lo), float(hi))
        self._intervals[key] = out
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task, "kind": self.kind, "protocol": self.protocol, "models": list(self.models),
            "n_train": self.n_train,
            "n_test": self.n_test, "model_accuracy": self.model_accuracy, "model_cost": self.model_cost,
            "budgets": self.budgets.tolist(), "methods": {k: v.to_dict() for k, v in self.methods.items()}}
        if self.kind == "pair":
            for mode in ("streaming", "offline"):
                name, best = self.best_baseline(mode)
                out[f"best_baseline_{mode}"] = {"method": name, "auc": best}
                out[f"confidence_beats_baselines_{mode}"] = self.beats_baselines(mode)
                ci = self.difference_ci(mode)
                out[f"confidence_minus_best_baseline_{mode}"] = (
                    None if ci is None else {"auc_difference": ci[0], "ci95": [ci[1], ci[2]]})
        return out


def _result(name: str, budgets: np.ndarray, sim: Simulation, lo: float, hi: float) -> MethodResult:
    curve = ndch(sim.cost, sim.accuracy)
    return MethodResult(name, auc(budgets, sim.accuracy), aiq(curve, lo, hi), sim.accuracy, sim.cost,
                        sim.max_spend_ratio, sim.per_query)


def _test_scores(policy: Escalation, replay: Replay) -> np.ndarray:
    """Stage-0 scores of a fitted two-tier policy on every test query (S called through the replay)."""
    queries = replay.queries()
    assert policy.models_ is not None
    per = policy._stage_calls(2)
    calls = None if policy.routing else policy._call(replay, policy.models_[0], queries, int(per[0]))
    return policy._stage_scores(0, queries, calls)


def _check_protocol(protocol: str, cost_mode: str, cost_ratio: float | None) -> None:
    if protocol not in PROTOCOLS:
        raise PolicyError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if cost_mode not in COST_MODES:
        raise PolicyError(f"cost mode must be one of {COST_MODES}, got {cost_mode!r}")
    if protocol == "extended" and (cost_mode != "dollars" or cost_ratio is not None):
        raise PolicyError("the extended protocol prices calls in recorded dollars; --cost-mode and --cost-ratio "
                          "are for the paper protocol")


def pair_costs(train: OutcomeTable, test: OutcomeTable, models: Sequence[str], *, cost_mode: str = "dollars",
               cost_ratio: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(decision costs (K,), test charges (N x K)) of a chain under a cost mode of the paper's protocol.

    ``dollars``: mean training cost per model; each test call charged its recorded cost.
    ``time``: the same with recorded latency (seconds). ``cost_ratio`` R (two models): c_S = 1 and
    c_L = R for every call, train and test alike, as in the paper's fixed-cost setups.
    """
    models = list(models)
    tv, v = train.dense(models), test.dense(models)
    if cost_ratio is not None:
        if len(models) != 2:
            raise PolicyError(f"a cost ratio 1:R prices two models; {len(models)} were given ({models})")
        if not np.isfinite(cost_ratio) or cost_ratio <= 1:
            raise PolicyError(f"--cost-ratio 1:R needs R > 1 (L dearer than S), got R = {cost_ratio}")
        unit = np.array([1.0, float(cost_ratio)])
        return unit, np.broadcast_to(unit, (len(v.prompt_ids), 2)).copy()
    if cost_mode == "dollars":
        return tv.cost[:, :, 0].mean(axis=0), v.cost[:, :, 0]
    if cost_mode == "time":
        if tv.latency is None or v.latency is None:
            raise PolicyError("cost mode 'time' needs recorded latencies (a 'latency' column); this data has none")
        lat_tr, lat_te = tv.latency[:, :, 0], v.latency[:, :, 0]
        if not (np.isfinite(lat_tr).all() and np.isfinite(lat_te).all()):
            raise PolicyError(f"cost mode 'time' needs a latency for every call of {models}; some are missing")
        return lat_tr.mean(axis=0), lat_te
    raise PolicyError(f"cost mode must be one of {COST_MODES} (or a cost ratio), got {cost_mode!r}")


def evaluate_pair(train: OutcomeTable, test: OutcomeTable, small: str, large: str, *, signal: str = "recorded",
                  methods: Sequence[str] = METHODS, n_budgets: int = 100, n_orders: int = 3, warmup: int = 20,
                  seed: int = 0, features: str | None = None, protocol: str = "paper", cost_mode: str = "dollars",
                  cost_ratio: float | None = None) -> CascadeResult:
    """Every method on one (small, large) pair of one task: fit on ``train``, score on ``test``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise PolicyError(f"unknown cascade method {unknown[0]!r}; methods are {list(METHODS)}")
    _check_protocol(protocol, cost_mode, cost_ratio)
    replay = Replay(test.dense([small, large]))
    v = replay.view
    q, c = v.quality[:, :, 0], v.cost[:, :, 0]
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        bad = ~(np.isfinite(q).all(axis=1) & np.isfinite(c).all(axis=1))
        raise PolicyError(f"{small} and {large} both need outcomes on every test prompt; {int(bad.sum())} lack one, "
                          f"e.g. {v.prompt_ids[bad][:3].tolist()}")
    n = len(v.prompt_ids)
    paper = protocol == "paper"
    if paper:
        decision, charges = pair_costs(train, test, [small, large], cost_mode=cost_mode, cost_ratio=cost_ratio)
        lo, hi = float(charges[:, 0].mean()), float(charges[:, 1].mean())
        if hi <= lo:
            raise PolicyError(f"the paper's protocol needs {large} dearer than {small} (budgets from c_S to c_L); "
                              f"mean costs are {lo:.4g} and {hi:.4g}")
        train_acc = train.dense([small, large]).quality[:, :, 0].mean(axis=0)
    else:
        charges = c
        lo, hi = float(c[:, 0].mean()), float(c[:, 0].mean() + c[:, 1].mean())
    budgets = np.linspace(lo, hi, n_budgets)
    orders = stream_orders(n, n_orders, seed)
    res = CascadeResult(test.tasks()[0] if len(test.tasks()) == 1 else "+".join(test.tasks()), (small, large),
                        int(train.frame["prompt_id"].nunique()), n,
                        {m: float(q[:, j].mean()) for j, m in enumerate((small, large))},
                        {m: float(c[:, j].mean()) for j, m in enumerate((small, large))}, budgets, protocol=protocol)
    wanted = set(methods)
    # the agreement signal samples S as often as the data recorded it, and the cascade pays for each
    samples = v.quality.shape[2] if signal == "agreement" else 1
    u = tie_uniforms(v.prompt_ids, small, seed)
    builders: dict[str, Callable[[], Escalation]] = {
        "confidence": lambda: ConfidenceCascade([small, large], signal=signal, seed=seed, samples=samples),
        "frugal": lambda: FrugalCascade([small, large], seed=seed, features=features),
        "hybrid": lambda: TwoTierRouter([small, large], seed=seed, features=features, target="not-worse"),
        "router": lambda: TwoTierRouter([small, large], seed=seed, features=features, target="adequate"),
    }
    for name in SCORED:
        modes = [m for m in ("streaming", "offline") if (name if m == "streaming" else f"{name}@offline") in wanted]
        if not modes:
            continue
        policy = builders[name]().fit(train)
        scores = _test_scores(policy, replay)
        per = policy._stage_calls(2)
        c_pol = charges * per[None, :]
        if paper:
            dec = (float(decision[0] * per[0]), float(decision[1] * per[1]))
            shares = escalation_share(budgets, dec[0], dec[1], routing=policy.routing)[:, None]
        else:
            shares = policy.shares(budgets)
        for mode in modes:
            label = name if mode == "streaming" else f"{name}@offline"
            if mode == "streaming" and paper:
                p_share = paper_share(budgets, dec[0], dec[1], float(train_acc[0]), float(train_acc[1]),
                                      routing=policy.routing)
                sim = simulate_paper(q, c_pol, scores, budgets, p_share, orders, dec,
                                     large_is_better=bool(train_acc[1] > train_acc[0]), routing=policy.routing,
                                     warmup=warmup)
            elif mode == "streaming":
                sim = simulate(q, c_pol, shares, budgets, orders, stream_scores=scores, u=u, routing=policy.routing,
                               warmup=warmup)
            else:
                assert policy.reference_ is not None
                pos = QuantileThreshold(policy.reference_[0]).positions(scores, u)
                sim = simulate(q, c_pol, shares, budgets, orders, positions=pos, routing=policy.routing,
                               last_is_large=paper)
            res.methods[label] = _result(label, budgets, sim, lo, hi)
    if "random" in wanted and paper:
        res.methods["random"] = _result("random", budgets, simulate_authors_random(q, charges, budgets, orders, (lo, hi)),
                                        lo, hi)
    elif "random" in wanted:
        mean_s, mean_l = train.dense([small, large]).cost[:, :, 0].mean(axis=0)
        shares = escalation_share(budgets, mean_s, mean_l, routing=True)
        pos = query_uniforms(v.prompt_ids, seed, salt="random-mix")
        res.methods["random"] = _result("random", budgets, simulate(q, c, shares, budgets, orders, positions=pos,
                                                                     routing=True), lo, hi)
    if "oracle" in wanted:
        fixed = (q[:, 1] > q[:, 0])[:, None]
        res.methods["oracle"] = _result("oracle", budgets, simulate(q, charges, np.zeros((len(budgets), 1)), budgets,
                                                                     orders, fixed=fixed), lo, hi)
    res.methods = {m: res.methods[m] for m in METHODS if m in res.methods}
    return res


def evaluate_chain(train: OutcomeTable, test: OutcomeTable, models: Sequence[str], *, signal: str = "recorded",
                   n_budgets: int = 100, n_orders: int = 3, seed: int = 0, protocol: str = "paper") -> CascadeResult:
    """An n-tier confidence cascade (offline per-stage shares searched on ``train``) against bounds.

    Compared on the same budgets with: the oracle chain (a model escalates exactly when it is wrong
    and a later one is right) and the two-tier confidence cascade from the first to the last model
    (offline). Budgets: ``paper``, from the first to the last model's mean test cost (the last
    budget given the last model's accuracy, as the paper's protocol does for pairs); ``extended``,
    from c_1 to the sum of the chain's mean test costs. Costs are recorded dollars.
    """
    _check_protocol(protocol, "dollars", None)
    models = list(models)
    replay = Replay(test.dense(models))
    v = replay.view
    q, c = v.quality[:, :, 0], v.cost[:, :, 0]
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        raise PolicyError(f"every chain model needs outcomes on every test prompt of {test.tasks()}")
    n = len(v.prompt_ids)
    paper = protocol == "paper"
    if paper:
        lo, hi = float(c[:, 0].mean()), float(c[:, -1].mean())
    else:
        lo, hi = float(c[:, 0].mean()), float(c.mean(axis=0).sum())
    budgets = np.linspace(lo, hi, n_budgets)
    orders = stream_orders(n, n_orders, seed)
    res = CascadeResult(test.tasks()[0] if len(test.tasks()) == 1 else "+".join(test.tasks()), tuple(models),
                        int(train.frame["prompt_id"].nunique()), n,
                        {m: float(q[:, j].mean()) for j, m in enumerate(models)},
                        {m: float(c[:, j].mean()) for j, m in enumerate(models)}, budgets, protocol=protocol)
    chain = ConfidenceCascade(models, signal=signal, seed=seed).fit(train)
    assert chain.reference_ is not None
    queries = replay.queries()
    pos = np.stack([QuantileThreshold(chain.reference_[k]).positions(
        chain._stage_scores(k, queries, replay.call(m, queries)), tie_uniforms(v.prompt_ids, m, seed))
        for k, m in enumerate(models[:-1])], axis=1)
    res.methods["chain@offline"] = _result("chain@offline", budgets, simulate(
        q, c, chain.shares(budgets), budgets, orders, positions=pos, last_is_large=paper), lo, hi)
    later_right = np.maximum.accumulate(q[:, ::-1], axis=1)[:, ::-1]  # best quality from stage k on
    fixed = q[:, :-1] < later_right[:, 1:]
    res.methods["oracle"] = _result("oracle", budgets, simulate(q, c, np.zeros((len(budgets), len(models) - 1)),
                                                                 budgets, orders, fixed=fixed), lo, hi)
    ends = [models[0], models[-1]]
    two = ConfidenceCascade(ends, signal=signal, seed=seed).fit(train)
    assert two.reference_ is not None
    pos2 = pos[:, :1]
    sim2 = simulate(q[:, [0, -1]], c[:, [0, -1]], two.shares(budgets), budgets, orders, positions=pos2,
                    last_is_large=paper)
    res.methods["two-tier@offline"] = _result("two-tier@offline", budgets, sim2, lo, hi)
    return res


def chain_by_cost(train: OutcomeTable) -> list[str]:
    """The training models by mean cost, cheapest first; models of the same price, the less accurate first.

    Two models of one price (llama3.2-1b and -3b, say) differ in mean cost only by token counts,
    so costs within :data:`SAME_PRICE` of the cheapest of a group count as equal, and a cascade
    puts the weaker one first.
    """
    v = train.dense()
    cost, quality = np.nanmean(v.cost[:, :, 0], axis=0), np.nanmean(v.quality[:, :, 0], axis=0)
    order = list(np.argsort(cost, kind="stable"))
    chain: list[int] = []
    while order:
        group = [j for j in order if cost[j] <= cost[order[0]] * (1 + SAME_PRICE)]
        chain += sorted(group, key=lambda j: (quality[j], cost[j]))
        order = [j for j in order if j not in group]
    return [v.models[j] for j in chain]


def pairs_by_cost(train: OutcomeTable) -> list[tuple[str, str]]:
    """Every (small, large) pair of the training models, the small one first in :func:`chain_by_cost`.

    Models of the same price (llama3.2-1b and -3b, say) still make a pair: the less accurate one
    is the small one, as in its chain (so a "small" model can cost a little more than its "large").
    """
    chain = chain_by_cost(train)
    return [(chain[i], chain[j]) for i in range(len(chain)) for j in range(i + 1, len(chain))]


@dataclass
class CascadeRun:
    """Results of ``callwise cascade``: pairs and chains over tasks, with a summary."""

    meta: dict[str, Any]
    pairs: list[CascadeResult]
    chains: list[CascadeResult]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pairs": len(self.pairs), "chains": len(self.chains)}
        for mode in ("streaming", "offline"):
            got = [r.beats_baselines(mode) for r in self.pairs]
            out[f"confidence_beats_every_baseline_{mode}"] = int(sum(1 for g in got if g))
            cis = [ci for ci in (r.difference_ci(mode) for r in self.pairs) if ci is not None]
            out[f"confidence_ci_above_best_baseline_{mode}"] = int(sum(1 for ci in cis if ci[1] > 0))
            out[f"confidence_ci_below_best_baseline_{mode}"] = int(sum(1 for ci in cis if ci[2] < 0))
        names = sorted({m for r in self.pairs for m in r.methods}, key=lambda m: METHODS.index(m))
        out["mean_auc"] = {m: float(np.mean([r.methods[m].auc for r in self.pairs if m in r.methods])) for m in names}
        out["wins_by_method"] = {m: int(sum(1 for r in self.pairs if m in r.methods and r.methods[m].auc >= max(
            v.auc for k, v in r.methods.items() if k != "oracle"))) for m in names if m != "oracle"}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "summary": self.summary(), "pairs": [r.to_dict() for r in self.pairs],
                "chains": [r.to_dict() for r in self.chains]}


def run_cascades(train: OutcomeTable, test: OutcomeTable, *, pairs: Sequence[tuple[str, str]] | None = None,
                 all_pairs: bool = False, chains: bool = False, tasks: Sequence[str] | None = None,
                 signal: str = "recorded", methods: Sequence[str] = METHODS, n_budgets: int = 100, n_orders: int = 3,
                 warmup: int = 20, seed: int = 0, features: str | None = None, protocol: str = "paper",
                 cost_mode: str = "dollars", cost_ratio: float | None = None,
                 on_item: Callable[[str], None] | None = None, split_info: dict[str, Any] | None = None,
                 on_progress: OnProgress | None = None) -> CascadeRun:
    """Evaluate the named pairs (or every cheaper-to-dearer pair) and optionally each task's full chain.

    A named pair runs on every task whose data holds both models (an error if none does).
    ``protocol``: ``paper`` (the default) or ``extended`` (see the module doc). ``cost_mode``
    (``dollars`` | ``time``) and ``cost_ratio`` (R: c_S = 1, c_L = R) price the paper protocol's
    pairs; chains are priced in dollars. ``on_item`` is told each item before it runs (for a
    progress bar): see :func:`plan_cascades`. ``on_progress(done, total, what)``
    (:mod:`callwise.core.progress`) counts the work as items x budgets (every method of an item is
    scored at each of its ``n_budgets`` budgets at once, so an item's budgets finish together).
    """
    _check_protocol(protocol, cost_mode, cost_ratio)
    if chains and (cost_mode != "dollars" or cost_ratio is not None):
        raise PolicyError("chains are priced in recorded dollars; leave out --chain to use --cost-mode time or "
                          "--cost-ratio")
    plan = plan_cascades(train, test, pairs=pairs, all_pairs=all_pairs, chains=chains, tasks=tasks)
    named = {tuple(p) for p in pairs or []}
    done_pairs, done_chains, skipped = [], [], []
    counter = Counter(on_progress, len(plan) * n_budgets)
    for task, models in plan:
        if on_item:
            on_item(f"{task}: {' -> '.join(models)}")
        item = f"{task}: {' -> '.join(models)}"
        tr, te = train.for_task(task), test.for_task(task)
        if len(models) == 2 and protocol == "paper" and cost_ratio is None and tuple(models) not in named:
            unit = pair_costs(tr, te, models, cost_mode=cost_mode)[1].mean(axis=0)
            if unit[1] <= unit[0] * (1 + SAME_PRICE):  # no budget range from c_S to c_L
                skipped.append({"task": task, "models": list(models), "mean_costs": unit.tolist(),
                                "why": "same price: the paper's budgets run from c_S to c_L"})
                counter(f"{item} (skipped: same price)", n_budgets)
                continue
        if len(models) == 2:
            done_pairs.append(evaluate_pair(tr, te, models[0], models[1], signal=signal, methods=methods,
                                            n_budgets=n_budgets, n_orders=n_orders, warmup=warmup, seed=seed,
                                            features=features, protocol=protocol, cost_mode=cost_mode,
                                            cost_ratio=cost_ratio))
        else:
            done_chains.append(evaluate_chain(tr, te, models, signal=signal, n_budgets=n_budgets,
                                              n_orders=n_orders, seed=seed, protocol=protocol))
        counter(f"{item} ({n_budgets} budgets)", n_budgets)
    from ..core.version import __version__

    if protocol == "paper":
        costs = (f"fixed ratio c_S = 1, c_L = {cost_ratio:g}" if cost_ratio is not None else
                 "mean recorded latency (s)" if cost_mode == "time" else "recorded dollars")
        described = {
            "name": "paper", "budgets": n_budgets, "costs": costs,
            "budget_range": "mean test cost of the small model to that of the large (c_S to c_L); chains: "
                            "the first model's to the last's",
            "decision_costs": "mean training costs (the branches and the escalation share)",
            "orders": n_orders, "last_point": "every method but the oracle is given the large model's accuracy",
            "score": "area under accuracy-vs-budget / (c_L - c_S) (AUC); AIQ over the same range",
            "streaming": (f"the authors' three branches: S when only S is affordable for the rest; L directly when "
                          f"the budget left covers L for every query left (and L is better on training data); "
                          f"else S, escalating below the running quantile of the scores seen once more than "
                          f"{warmup} are seen, if the budget left covers L"),
            "offline": "quantiles of training scores (out-of-fold for learned scores) under the budget guard",
            "random": "the authors' mix: in each stream order the first share of queries to S, the rest to L",
            "unaffordable": "a query nothing is affordable for scores 0 (the authors: a random label)",
            "baselines": list(BASELINES)}
    else:
        described = {
            "name": "extended", "budgets": n_budgets, "costs": "recorded dollars",
            "budget_range": "mean test cost of the first model to the sum of the models' mean test costs",
            "orders": n_orders, "score": "area under accuracy-vs-budget / budget range (AUC); AIQ over the same range",
            "streaming": f"running quantile over the test stream, no escalation in the first {warmup} queries",
            "offline": "quantiles of training scores (out-of-fold for learned scores)",
            "guard": ("escalations in stream order while their recorded cost fits in budget x N; "
                      "stop at the first that does not"),
            "random": "each query to L when a seeded uniform is below the routing share, under the guard",
            "baselines": list(EXTENDED_BASELINES)}
    if protocol == "paper":
        described["skipped_pairs"] = skipped
    meta = {"callwise_version": __version__, "protocol": described,
            "signal": signal, "seed": seed, "split": split_info or {},
            "data": {k: v for k, v in train.meta.items() if k != "dropped_prompts"}}
    return CascadeRun(meta, done_pairs, done_chains)


def plan_cascades(train: OutcomeTable, test: OutcomeTable, *, pairs: Sequence[tuple[str, str]] | None = None,
                  all_pairs: bool = False, chains: bool = False,
                  tasks: Sequence[str] | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """(task, models) items to evaluate, checked before any work starts."""
    if not pairs and not all_pairs and not chains:
        raise PolicyError("name a pair (--small and --large), or ask for --all-pairs and/or --chain")
    test_tasks = test.tasks()
    if tasks:
        unknown = [t for t in tasks if t not in test_tasks]
        if unknown:
            raise PolicyError(f"task {unknown[0]!r} is not in the test data; tasks are {test_tasks}")
        test_tasks = [t for t in test_tasks if t in set(tasks)]
    train_tasks = set(train.tasks())
    no_train = [t for t in test_tasks if t not in train_tasks]
    if no_train:
        raise PolicyError(f"task(s) {no_train} have test prompts but no training prompts to calibrate on")
    plan: list[tuple[str, tuple[str, ...]]] = []
    for pair in pairs or []:
        small, large = pair
        if small == large:
            raise PolicyError(f"--small and --large are the same model {small!r}")
        hit = [t for t in test_tasks
               if {small, large} <= set(train.models(t)) and {small, large} <= set(test.models(t))]
        if not hit:
            raise PolicyError(f"no task has outcomes of both {small!r} and {large!r}; models are "
                              f"{ {t: train.models(t) for t in test_tasks} }")
        plan += [(t, (small, large)) for t in hit]
    for t in test_tasks:
        tr = train.for_task(t)
        if all_pairs:
            plan += [(t, p) for p in pairs_by_cost(tr) if (t, p) not in plan]
        if chains:
            chain = tuple(chain_by_cost(tr))
            if len(chain) >= 3:
                plan.append((t, chain))
    return plan
