"""``callwise scale``: how vote accuracy scales with K on recorded samples, and how well it is predicted.

For one model (and task) of an outcome table with several samples per prompt:

- **empirical**: the expected accuracy of a vote over K distinct recorded samples (drawn without
  replacement), K = 1..N (N = the fewest samples any prompt has), with a bootstrap interval over
  prompts — only real samples, no extrapolation;
- **resampled**: the vote over K draws *with replacement* from each prompt's recorded answers, up to
  K = k_max: the plug-in curve the per-query model is fitted to;
- **fitted**: the per-query scaling model (:mod:`callwise.voting.scaling`) fitted on all N samples;
- **predicted**: the same model fitted on only the first ``n_few`` samples of each prompt,
  extrapolated to k_max — what one could know after a cheap pilot;
- beside them, Filter-Vote (simulated judge) and best-of-K (perfect and noisy rankers) on the
  recorded samples, so the aggregations can be compared in calls and in dollars.

The comparison reports the empirical best K, the predicted best K, the predicted accuracy's error
at the empirical best K, and the accuracy lost by using the predicted K instead of the best one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from ..core.errors import DataError, PolicyError
from ..core.frontier import boot_ci
from ..core.outcomes import OutcomeTable
from ..core.progress import Counter, OnProgress
from ..core.version import __version__
from .engine import Samples, best_of_curve, encode, filter_vote_curve, vote_curve
from .scaling import FIT_GRIDS, TIE_RULES, best_k, fit_scaling, shape, theorem1_estimate

#: Changes in a curve smaller than this count as flat when naming its shape.
SHAPE_TOL = 1e-3


@dataclass
class ScaleResult:
    """Everything ``callwise scale`` computed; ``to_dict()`` is what results.json holds."""

    meta: dict[str, Any]
    curves: dict[str, dict[str, list[float]]]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "summary": self.summary, "curves": self.curves}


def model_samples(table: OutcomeTable, model: str, task: str | None = None,
                  normalise: str | Callable[[Any], Any] = "text") -> tuple[Samples, str, np.ndarray]:
    """The encoded samples of ``model`` on ``task`` (needed when the model has several), and the prompt ids."""
    tasks = sorted(table.frame.loc[table.frame["model"] == model, "task"].unique())
    if not tasks:
        raise DataError(f"model {model!r} is not in the data; models are {table.models()}", column="model")
    if task is None:
        if len(tasks) > 1:
            raise DataError(f"model {model!r} has several tasks {tasks}; pick one with --task", column="task")
        task = tasks[0]
    elif task not in tasks:
        raise DataError(f"model {model!r} has no task {task!r}; its tasks are {tasks}", column="task")
    view = table.for_task(task).dense([model])
    if view.answers is None:
        raise DataError(f"task {task!r} has no 'answer' column: votes need each sample's answer", column="answer")
    s = encode(view.answers[:, 0, :], view.quality[:, 0, :], view.cost[:, 0, :],
               recorded=np.isfinite(view.quality[:, 0, :]), normalise=normalise)
    return s, task, view.prompt_ids




def _paired_ci(diff: np.ndarray, n_boot: int, seed: int, level: float) -> list[float]:
    lo, hi = boot_ci(diff[:, None], n_boot, seed, level)
    return [float(lo[0]), float(hi[0])]


#: The stages of :func:`scale` its progress counts.
SCALE_STAGES = 5


def scale(table: OutcomeTable, model: str | None = None, *, task: str | None = None, n_few: int = 4, k_max: int = 1000,
          reps: int = 400, seed: int = 0, normalise: str | Callable[[Any], Any] = "text", tpr: float = 0.9,
          fpr: float = 0.2, ranker_accuracy: float = 0.8, n_boot: int = 1000, level: float = 0.95,
          fit_grid: str = "paper", ties: str = "scale",
          on_step: Callable[[str], None] | None = None, on_progress: OnProgress | None = None) -> ScaleResult:
    """Empirical, resampled, fitted and predicted vote curves of one model, with the best K of each.

    ``fit_grid``: the K values the per-query model is fitted at (``paper``: 2 to 100; ``authors-code``:
    1 to 10,000, the default of the authors' code). ``ties``: ``scale`` (the authors') or ``raw``
    (see :func:`~callwise.voting.scaling.fit_scaling`). Theorem 1's shape from (α, p1, p2), estimated
    from all samples and from the few, is reported beside the empirical shape. ``model`` may be
    left out when the table has one model. ``on_step(what)`` is told each of the five stages (curves
    and fits) as it starts; ``on_progress(done, 5, what)`` (:mod:`callwise.core.progress`) as it ends.
    """
    counter = Counter(on_progress, SCALE_STAGES)
    running: list[str] = []

    def step(what: str | None) -> None:
        if running:
            counter(running.pop())
        if what is not None:
            running.append(what)
            if on_step:
                on_step(what)
    if model is None:
        models = table.models()
        if len(models) != 1:
            raise PolicyError(f"the data has {len(models)} models {models}: say whose samples are voted on "
                              "with --model")
        model = models[0]
    if fit_grid not in FIT_GRIDS:
        raise PolicyError(f"--fit-grid must be one of {sorted(FIT_GRIDS)}, got {fit_grid!r}")
    if ties not in TIE_RULES:
        raise PolicyError(f"--ties must be one of {list(TIE_RULES)}, got {ties!r}")
    s, task, _ = model_samples(table, model, task, normalise)
    if k_max < 2:
        raise PolicyError(f"--k-max must be at least 2, got {k_max}")
    # the empirical curve needs the same N for every prompt: use the most common sample count and leave
    # out the few prompts with fewer (records whose program failed to run, say), reported
    counts = np.bincount(s.n)
    n_rec = int(np.argmax(counts)) if int(s.n.min()) < int(s.n.max()) else int(s.n.min())
    short = s.n < n_rec
    if short.any():
        s = s.take(np.flatnonzero(~short))
    if n_rec < 2:
        raise DataError(f"model {model!r} on task {task!r} has prompts with {n_rec} recorded sample(s); "
                        "scaling needs at least 2 per prompt", column="sample")
    if n_few < 1:
        raise PolicyError(f"--few must be at least 1, got {n_few}")
    few = min(n_few, n_rec)
    ks_emp = np.arange(1, n_rec + 1)
    ks_all = np.arange(1, k_max + 1)

    step("empirical curve (without replacement)")
    emp_q = vote_curve(s, ks_emp, draws="without-replacement", reps=reps, seed=seed)
    emp = emp_q.mean(axis=0)
    lo, hi = boot_ci(emp_q, n_boot, seed, level)
    step("resampled curve (with replacement)")
    res = vote_curve(s, ks_all, draws="with-replacement", reps=max(reps // 2, 50), seed=seed + 1).mean(axis=0)
    step("fitting the per-query model on all samples")
    fitted_model = fit_scaling(s, fit_ks=fit_grid, reps=reps, seed=seed + 2, ties=ties)
    fitted = fitted_model.curve(ks_all)
    step(f"fitting on the first {few} samples per prompt")
    pred_model = fit_scaling(s.head(few), fit_ks=fit_grid, reps=reps, seed=seed + 3, ties=ties)
    pred = pred_model.curve(ks_all)
    step("filter-vote and best-of-K")
    fv = filter_vote_curve(s, ks_emp, tpr=tpr, fpr=fpr, draws="without-replacement", reps=reps, seed=seed + 4)
    bo_perfect = best_of_curve(s, ks_emp, accuracy=1.0, draws="without-replacement")
    bo_noisy = best_of_curve(s, ks_emp, accuracy=ranker_accuracy, draws="without-replacement")
    step(None)
    cost_per_call = float(np.nanmean(s.cost))

    k_emp, a_emp = best_k(ks_emp, emp)
    k_pred, a_pred = best_k(ks_all, pred)
    k_fit, a_fit = best_k(ks_all, fitted)
    k_res, a_res = best_k(ks_all, res)

    def plateau(ks: np.ndarray, curve: np.ndarray) -> int:
        """The fewest calls within SHAPE_TOL of the curve's best: where more calls stop paying."""
        return int(ks[np.argmax(curve >= np.max(curve) - SHAPE_TOL)])

    def against(curve: np.ndarray, k_hat: int) -> dict[str, Any]:
        k_used = min(k_hat, n_rec)
        regret = float(a_emp - emp[k_used - 1])
        diff = emp_q[:, k_emp - 1] - emp_q[:, k_used - 1]
        return {"best_k": k_hat, "k_error": int(k_hat - k_emp), "beyond_recorded": bool(k_hat > n_rec),
                "plateau_k": plateau(ks_all, curve),
                "accuracy_at_best_k": float(curve[k_hat - 1]),
                "error_at_empirical_best_k": float(curve[k_emp - 1] - a_emp),
                "empirical_accuracy_at_k": float(emp[k_used - 1]), "measured_at_k": k_used,
                "regret": regret, "regret_ci": _paired_ci(diff, n_boot, seed + 5, level)}

    drop = emp_q[:, k_emp - 1] - emp_q[:, n_rec - 1]
    summary = {
        "n_prompts": int(s.n_queries), "samples_per_prompt": {"min": n_rec, "max": int(s.n.max())},
        "excluded_prompts": int(short.sum()),
        "few_samples": few, "cost_per_call": cost_per_call,
        "easy_share": {"all_samples": float(fitted_model.easy.mean()), "few_samples": float(pred_model.easy.mean())},
        "fit_rmse": {"all_samples": fitted_model.fit_rmse(), "few_samples": pred_model.fit_rmse()},
        "empirical": {"best_k": k_emp, "accuracy": a_emp, "plateau_k": plateau(ks_emp, emp), "accuracy_k1": float(emp[0]),
                      "accuracy_at_n": float(emp[-1]), "shape": shape(emp, SHAPE_TOL),
                      "monotone": bool(not (np.diff(emp) < -SHAPE_TOL).any()),
                      "drop_best_to_n": float(drop.mean()), "drop_ci": _paired_ci(drop, n_boot, seed + 6, level)},
        "resampled": {"best_k": k_res, "accuracy": a_res, "shape": shape(res, SHAPE_TOL)},
        "fitted": {**against(fitted, k_fit), "shape": shape(fitted, SHAPE_TOL)},
        "predicted": {**against(pred, k_pred), "shape": shape(pred, SHAPE_TOL)},
        "filter_vote": {"tpr": tpr, "fpr": fpr, "judge": "simulated",
                        "best_calls": int(2 * best_k(ks_emp, fv.mean(axis=0))[0]),
                        "accuracy": float(fv.mean(axis=0).max())},
        "best_of_k": {"perfect_at_n": float(bo_perfect.mean(axis=0)[-1]),
                      "noisy_at_n": float(bo_noisy.mean(axis=0)[-1]), "ranker_accuracy": ranker_accuracy},
        "theorem1": {"all_samples": theorem1_estimate(s), "few_samples": theorem1_estimate(s.head(few))},
        "tied_for_the_mode": {"all_samples": fitted_model.summary()["tied_for_the_mode"],
                              "few_samples": pred_model.summary()["tied_for_the_mode"]},
    }
    curves = {
        "empirical": {"k": ks_emp.tolist(), "accuracy": emp.tolist(), "ci_low": lo.tolist(), "ci_high": hi.tolist(),
                      "cost": (ks_emp * cost_per_call).tolist()},
        "resampled": {"k": ks_all.tolist(), "accuracy": res.tolist()},
        "fitted": {"k": ks_all.tolist(), "accuracy": fitted.tolist()},
        "predicted": {"k": ks_all.tolist(), "accuracy": pred.tolist()},
        "filter_vote": {"k": (2 * ks_emp).tolist(), "accuracy": fv.mean(axis=0).tolist(),
                        "cost": (2 * ks_emp * cost_per_call).tolist()},
        "best_of_k_perfect": {"k": ks_emp.tolist(), "accuracy": bo_perfect.mean(axis=0).tolist()},
        "best_of_k_noisy": {"k": ks_emp.tolist(), "accuracy": bo_noisy.mean(axis=0).tolist()},
    }
    meta = {
        "callwise_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": table.meta.get("source"), "fingerprint": table.fingerprint(),
                 "costs_estimated": table.costs_estimated, "notes": table.meta.get("notes", [])},
        "model": model, "task": task, "k_max": k_max, "seed": seed, "monte_carlo_draws": reps,
        "bootstrap": {"resamples": n_boot, "level": level, "over": "prompts"},
        "methods": {
            "empirical": "expected vote accuracy over K distinct recorded samples (without replacement): exact for "
                         "prompts with at most two answers, seeded Monte Carlo otherwise",
            "resampled": "vote over K draws with replacement from each prompt's recorded answers",
            "fitted": (f"per-query G_easy / G_hard fitted at K in {{{','.join(map(str, FIT_GRIDS[fit_grid]))}}} "
                       f"({fit_grid} grid) on all samples, mean over prompts; below the grid's first K the curve is "
                       "extrapolated"),
            "ties": ("scale: a prompt whose correct answer ties with m-1 others for the mode is fitted to m x its "
                     "accuracy and predicted at 1/m of G_easy (the authors' fitscalelaws_onepoint)" if ties == "scale"
                     else "raw: every prompt fitted to its accuracy as it is"),
            "theorem1": ("(alpha, p1, p2) = easy share and mean per-call accuracy of easy / hard prompts; shape by "
                         "Theorem 1 with the p1+p2 cases consistent with the closed form F(K) (shape_as_stated: the "
                         "theorem as written; two_level_shape: F(K) itself over odd K <= 2001)"),
            "predicted": "the same model fitted on the first `few_samples` samples of each prompt",
            "filter_vote": "K calls = K/2 generations + K/2 filter calls; a simulated judge with the given tpr/fpr",
            "best_of_k": "K generations and a ranker (the ranking call is not counted in K); exact",
            "plateau_k": f"fewest calls within {SHAPE_TOL} of the curve's best accuracy",
            "regret": "empirical accuracy at the empirical best K minus at min(best_k, N), paired bootstrap CI",
            "excluded_prompts": "prompts with fewer samples than the most common count, left out",
            "tie_rule": "first-seen answer wins (uniform among tied answers over random orders)",
        },
    }
    return ScaleResult(meta, curves, summary)
