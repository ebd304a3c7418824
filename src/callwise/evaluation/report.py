"""Show results: bench (a rich table per task and overall, a cost–quality PNG per task),
``callwise cascade`` (AUC tables, accuracy-vs-budget curves) and ``callwise scale`` (best K, the
vote-scaling curves)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.frontier import densify

if TYPE_CHECKING:
    from rich.console import Console

    from ..aggregation import AggregateResult
    from ..cascades import CascadeResult, CascadeRun
    from ..pipelines import AllocationResult
    from ..voting import ScaleResult
    from .bench import BenchResult, Entry


def _fmt_cost(c: float | None) -> str:
    """Dollars per 1,000 queries, compact."""
    if c is None or not np.isfinite(c):
        return "never"
    return f"{c * 1000:.3g}"


def print_tables(result: "BenchResult", console: "Console") -> None:
    """One table per task and one overall: AIQ under both normalisations (CI for the paper's),
    the top of each hull, and the cost to reach 95% of the best single model."""
    from rich import box
    from rich.table import Table

    est = " (costs ESTIMATED)" if result.meta["data"].get("costs_estimated") else ""
    sp = result.meta.get("split", {})
    line = f"split: {sp.get('method')}"
    if sp.get("fraction") is not None:
        line += f", {sp['fraction']:.0%} train per task"
    if sp.get("fallback_tasks"):
        line += f"; no origin test/train side, seeded 70% split used for {sp['fallback_tasks']}"
    console.print(f"{line}; seed {result.meta.get('seed')}")
    level = result.meta["bootstrap"]["level"]
    groups = [(f"{t}: {r.n_train} train / {r.n_test} test prompts; best single model {r.best_model.split('/')[-1]} "
               f"(quality {r.entries[r.best_model].points[0, 1]:.3f}, "
               f"${_fmt_cost(r.entries[r.best_model].points[0, 0])}/1k q)", r.entries, r)
              for t, r in result.tasks.items()]
    groups.append((f"overall: mean of {len(result.tasks)} per-task AIQs", result.overall, None))
    for title, entries, r in groups:
        table = Table(title=title + est, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("policy", overflow="ellipsis", no_wrap=True, max_width=16, ratio=1)
        table.add_column("AIQ", justify="right", no_wrap=True, min_width=5)
        table.add_column(f"{level:.0%} CI", justify="right", no_wrap=True, min_width=11)
        table.add_column("AIQ rb", justify="right", no_wrap=True, min_width=6)
        table.add_column("top q", justify="right", no_wrap=True, min_width=5)
        table.add_column("$/1k q", justify="right", no_wrap=True, min_width=6)
        table.add_column("gap", justify="right", no_wrap=True, min_width=5)
        two = r is not None and any("routellm" in e.extra for e in entries.values())
        if r is not None:
            table.add_column("to 95%", justify="right", no_wrap=True, min_width=6)
        for name, e in entries.items():
            ci = e.aiq_ci.get("paper")
            ok = e.curve.quality.size and np.isfinite(e.curve.quality[-1])
            label = name.split("/")[-1]
            n_tasks = e.extra.get("n_tasks")
            if r is None and n_tasks is not None and n_tasks < len(result.tasks):
                label = f"{label} ({n_tasks} tasks)"
            row = [label, f"{e.aiq['paper']:.3f}", f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
                   f"{e.aiq['routerbench-code']:.3f}", f"{e.curve.quality[-1]:.3f}" if ok else "-",
                   _fmt_cost(float(e.curve.cost[-1])) if ok else "-"]
            gap = e.extra.get("gap_closed")
            row.append(f"{gap:+.2f}" if gap is not None and e.family not in ("single", "oracle") else "")
            if r is not None:
                row.append(_fmt_cost(e.extra.get("cost_to_95pct_best_model")))
            table.add_row(*row, style="bold" if name in ("oracle", "zero") else None)
        console.print(table)
        if two:
            _print_routellm(entries, console)
    console.print("AIQ: the paper's shared-range normalisation; AIQ rb: the RouterBench code's (flat to c_max, "
                  "divided by c_max). top q, $/1k q: the top of the hull, in dollars per 1,000 queries. to 95%: "
                  "dollars per 1,000 queries to reach 95% of the best single model's quality. gap: share of the zero-to-oracle "
                  "AIQ gap closed (0 = zero router, 1 = oracle). APGR, CPT50/80 (two-model tasks): RouteLLM's average "
                  "performance gap recovered and the share of strong-model calls needed for 50%/80% of the gap.")

    lat = [(task, r) for task, r in result.tasks.items() if r.latency is not None]
    if lat:
        names = [n for n, e in lat[0][1].entries.items() if e.family != "single"]
        table = Table(title="quality-latency plane (--axis latency): AIQ (paper normalisation) over each task's "
                      "shared latency range", box=box.SIMPLE_HEAD)
        table.add_column("task")
        for n in names:
            table.add_column(n, justify="right")
        for task, r in lat:
            got = r.latency["entries"]
            table.add_row(task, *(f"{got[n]['aiq']['paper']:.4f}" if n in got else "-" for n in names))
        console.print(table)


def _print_routellm(entries: dict[str, "Entry"], console: "Console") -> None:
    """RouteLLM's metrics for a two-model task: APGR and the strong-call share for 50% / 80% of the gap."""
    from rich import box
    from rich.table import Table

    first = next(e.extra["routellm"] for e in entries.values() if "routellm" in e.extra)
    t = Table(title=f"  RouteLLM metrics (strong {first['strong'].split('/')[-1]}, weak {first['weak'].split('/')[-1]})",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for c in ("policy", "APGR", "CPT(50%)", "CPT(80%)"):
        t.add_column(c, justify="left" if c == "policy" else "right", no_wrap=True)
    for name, e in entries.items():
        m = e.extra.get("routellm")
        if m:
            t.add_row(name.split("/")[-1], f"{m['apgr']:.3f}",
                      *(f"{m[k]:.1%}" if m[k] is not None else "never" for k in ("cpt50", "cpt80")))
    console.print(t)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "task"


def plot_task(title: str, entries: dict[str, "Entry"], path: Path, costs_estimated: bool,
              xlabel: str | None = None) -> None:
    """One cost–quality plot: single models, the zero hull, the oracle curve, each policy's curve
    (``xlabel``: another x axis, e.g. the quality–latency plane's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    singles = [e for e in entries.values() if e.family == "single" and len(e.points)]
    if singles:
        pts = np.vstack([e.points for e in singles])
        ax.scatter(pts[:, 0], pts[:, 1], color="0.35", zorder=3, s=22, label="single models")
        for e in singles:
            ax.annotate(e.name.split("/")[-1], e.points[0], fontsize=7, xytext=(3, 3), textcoords="offset points")
    for name, e in entries.items():
        if e.family == "single" or not len(e.curve) or not np.isfinite(e.curve.cost).all():
            continue
        style = {"oracle": dict(color="black", ls="--", lw=1.4), "zero": dict(color="tab:gray", lw=2.2)}.get(
            name, dict(lw=1.6, marker="o", ms=3))
        label = f"{name} (AIQ {e.aiq.get('paper', float('nan')):.3f})"
        xs, ys = densify(e.curve.cost, e.curve.quality)
        line = ax.plot(xs, ys, label=label, zorder=2, **{k: v for k, v in style.items() if k not in ("marker", "ms")})
        if e.family not in ("oracle", "zero") and len(e.points) > 1:
            ax.scatter(e.points[:, 0], e.points[:, 1], s=8, color=line[0].get_color(), alpha=0.6, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or ("mean cost per query (USD" + (", estimated" if costs_estimated else "") + ", log scale)"))
    ax.set_ylabel("mean quality")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(result: "BenchResult", out: Path) -> list[Path]:
    est = bool(result.meta["data"].get("costs_estimated"))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, r in result.tasks.items():
        p = out / f"{_safe(t)}.png"
        plot_task(f"{t} (test, n={r.n_test})", r.entries, p, est)
        paths.append(p)
        if r.latency is not None:
            p = out / f"{_safe(t)}-latency.png"
            plot_task(f"{t}: quality against latency (test, n={r.n_test})", _latency_entries(r), p, est,
                      xlabel="mean latency per query (s, log scale)")
            paths.append(p)
    return paths


def _latency_entries(r: Any) -> dict[str, Any]:
    """The task's entries placed in the quality–latency plane (points, hull, AIQ from ``r.latency``)."""
    from ..core.frontier import Curve
    from .bench import Entry

    out = {}
    for n, d in r.latency["entries"].items():
        hull = np.asarray(d["hull"], float).reshape(-1, 2)
        out[n] = Entry(n, r.entries[n].family, [], None, None, np.asarray(d["points"], float).reshape(-1, 2),
                       Curve(hull[:, 0], hull[:, 1]), dict(d["aiq"]))
    return out


# -- callwise cascade ------------------------------------------------------------------------------

_PAIR_COLUMNS = ("oracle", "confidence", "confidence@offline", "frugal", "hybrid", "router", "random")
_HEADERS = {"oracle": "orac", "confidence": "conf", "confidence@offline": "c@off", "frugal": "frug", "hybrid": "hybr",
            "router": "rout", "random": "rand"}


def _short(model: str) -> str:
    return model.split("/")[-1]


def print_cascade_tables(run: "CascadeRun", console: "Console") -> None:
    """The pairs table (AUC per method, best non-oracle bold) and the chains table, then the summary."""
    from rich import box
    from rich.table import Table

    if run.pairs:
        cols = [c for c in _PAIR_COLUMNS if any(c in r.methods for r in run.pairs)]
        t = Table(title="AUC x 100 (area under accuracy-vs-budget / budget range; test, mean of "
                  f"{run.meta['protocol']['orders']} stream orders); *: confidence beats every baseline; "
                  "bold: best but the oracle",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        t.add_column("task", no_wrap=True, overflow="ellipsis", max_width=17)
        t.add_column("small -> large", no_wrap=True, overflow="ellipsis", max_width=29)
        t.add_column("acc S", justify="right", no_wrap=True, min_width=5)
        t.add_column("acc L", justify="right", no_wrap=True, min_width=5)
        for c in cols:
            t.add_column(_HEADERS.get(c, c), justify="right", no_wrap=True, min_width=6 if c == "confidence" else 5)
        for r in run.pairs:
            s, l = r.models
            best = max((r.methods[c].auc for c in cols if c in r.methods and c != "oracle"), default=np.nan)
            cells = []
            for c in cols:
                if c not in r.methods:
                    cells.append("")
                    continue
                a = r.methods[c].auc
                txt = f"{100 * a:.2f}" + ("*" if c == "confidence" and r.beats_baselines("streaming") else "")
                cells.append(f"[bold]{txt}[/bold]" if c != "oracle" and a >= best else txt)
            t.add_row(r.task, f"{_short(s)} -> {_short(l)}", f"{r.model_accuracy[s]:.3f}",
                      f"{r.model_accuracy[l]:.3f}", *cells)
        console.print(t)
    if run.chains:
        t = Table(title="n-tier chains (offline per-stage shares searched on train)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("task", no_wrap=True)
        t.add_column("chain", overflow="fold", max_width=40)
        t.add_column("acc last", justify="right")
        for c in ("chain@offline", "two-tier@offline", "oracle"):
            t.add_column(c, justify="right")
        for r in run.chains:
            t.add_row(r.task, " -> ".join(_short(m) for m in r.models), f"{r.model_accuracy[r.models[-1]]:.3f}",
                      *(f"{r.methods[c].auc:.4f}" for c in ("chain@offline", "two-tier@offline", "oracle")))
        console.print(t)
    s = run.summary()
    if run.pairs:
        console.print(f"confidence cascade beats every baseline ({', '.join(run.meta['protocol']['baselines'])}) on "
                      f"{s['confidence_beats_every_baseline_streaming']}/{s['pairs']} pairs (streaming), "
                      f"{s['confidence_beats_every_baseline_offline']}/{s['pairs']} (offline thresholds)")
        console.print("with the 95% paired-bootstrap interval of the AUC difference to the best baseline above / "
                      f"below 0: {s['confidence_ci_above_best_baseline_streaming']} / "
                      f"{s['confidence_ci_below_best_baseline_streaming']} pairs (streaming), "
                      f"{s['confidence_ci_above_best_baseline_offline']} / "
                      f"{s['confidence_ci_below_best_baseline_offline']} (offline)")
        console.print("mean AUC: " + ", ".join(f"{m} {v:.4f}" for m, v in s["mean_auc"].items()))


def plot_cascade(r: "CascadeResult", path: Path) -> None:
    """Accuracy against the per-query budget for every method of one pair or chain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    for name, m in r.methods.items():
        style = dict(color="black", ls="--") if name == "oracle" else {}
        ax.plot(r.budgets * 1000, m.accuracy, lw=1.5, label=f"{name} (AUC {m.auc:.4f})", **style)
    for model in r.models:
        ax.axhline(r.model_accuracy[model], color="0.6", lw=0.8, ls=":")
        ax.annotate(_short(model), (r.budgets[0] * 1000, r.model_accuracy[model]), fontsize=7, color="0.4",
                    xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("budget (USD per 1,000 queries)")
    ax.set_ylabel("accuracy (test, mean of stream orders)")
    ax.set_title(f"{r.task}: {' -> '.join(_short(m) for m in r.models)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_cascade_summary(run: "CascadeRun", path: Path) -> None:
    """Confidence-cascade AUC against the best baseline's, one point per pair (above the line: it wins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    xs = np.array([r.best_baseline("streaming")[1] for r in run.pairs])
    ys = np.array([r.methods["confidence"].auc for r in run.pairs])
    ax.scatter(xs, ys, s=14)
    lo, hi = float(min(xs.min(), ys.min())), float(max(xs.max(), ys.max()))
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
    ax.set_xlabel("best baseline AUC (frugal, hybrid, random)")
    ax.set_ylabel("confidence cascade AUC")
    ax.set_title(f"{int((ys > xs).sum())}/{len(ys)} pairs above the diagonal", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_cascade_plots(run: "CascadeRun", out: Path) -> list[Path]:
    """``curves/<task>__<models>.png`` per pair and chain, plus ``summary.png`` when confidence ran on pairs."""
    (out / "curves").mkdir(parents=True, exist_ok=True)
    paths = []
    for r in [*run.pairs, *run.chains]:
        p = out / "curves" / f"{_safe(r.task)}__{_safe('--'.join(_short(m) for m in r.models))}.png"
        plot_cascade(r, p)
        paths.append(p)
    if run.pairs and all("confidence" in r.methods for r in run.pairs):
        p = out / "summary.png"
        plot_cascade_summary(run, p)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------------
# callwise scale


def print_scale(result: "ScaleResult", console: "Console") -> None:
    """The best K of each curve, the prediction's errors, and the other aggregations."""
    from rich import box
    from rich.table import Table

    m, sm = result.meta, result.summary
    n = sm["samples_per_prompt"]["min"]
    est = " (costs ESTIMATED)" if m["data"].get("costs_estimated") else ""
    left = f" ({sm['excluded_prompts']} with fewer samples left out)" if sm.get("excluded_prompts") else ""
    console.print(f"{m['model']} on {m['task']}: {sm['n_prompts']} prompts{left}, {n} samples each; "
                  f"easy share {sm['easy_share']['all_samples']:.2f} (all samples), "
                  f"{sm['easy_share']['few_samples']:.2f} (first {sm['few_samples']}); "
                  f"${sm['cost_per_call'] * 1000:.3g} per 1k calls{est}")
    e = sm["empirical"]
    console.print(f"empirical (K = 1..{n}, without replacement): {e['shape']}, accuracy {e['accuracy_k1']:.4f} at K=1, "
                  f"{e['accuracy']:.4f} at best K={e['best_k']} (within {1e-3:g} from K={e['plateau_k']}), "
                  f"{e['accuracy_at_n']:.4f} at K={n}; drop best->N {e['drop_best_to_n']:.4f} "
                  f"[{e['drop_ci'][0]:.4f}, {e['drop_ci'][1]:.4f}]")
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"best K up to {m['k_max']}", title_justify="left")
    for col in ("curve", "shape", "K*", "plateau", "acc@K*", "err@emp K*", "emp@K*", "regret [CI]"):
        t.add_column(col, justify="left" if col in ("curve", "shape") else "right", no_wrap=True)
    t.add_row("empirical", e["shape"], str(e["best_k"]), str(e["plateau_k"]), f"{e['accuracy']:.4f}", "-", "-", "-")
    r = sm["resampled"]
    t.add_row("resampled", r["shape"], str(r["best_k"]), "-", f"{r['accuracy']:.4f}", "-", "-", "-")
    for name in ("fitted", "predicted"):
        p = sm[name]
        label = name if name == "fitted" else f"predicted ({sm['few_samples']})"
        at = f"{p['empirical_accuracy_at_k']:.4f}" + ("*" if p["beyond_recorded"] else "")
        t.add_row(label, p["shape"], str(p["best_k"]), str(p["plateau_k"]), f"{p['accuracy_at_best_k']:.4f}",
                  f"{p['error_at_empirical_best_k']:+.4f}", at,
                  f"{p['regret']:.4f} [{p['regret_ci'][0]:.4f}, {p['regret_ci'][1]:.4f}]")
    console.print(t)
    if sm["predicted"]["beyond_recorded"] or sm["fitted"]["beyond_recorded"]:
        console.print(f"* best K beyond the {n} recorded samples: the empirical accuracy is taken at K={n}")
    th = sm.get("theorem1")
    if th:
        for label, e in (("all samples", th["all_samples"]), (f"first {sm['few_samples']}", th["few_samples"])):
            console.print(f"Theorem 1 from {label}: alpha {e['alpha']:.2f}, p1 {e['p1']:.2f}, p2 {e['p2']:.2f} -> "
                          f"{e['shape']} (as stated: {e['shape_as_stated']}; closed form F(K): "
                          f"{e['two_level_shape']}); empirical: {sm['empirical']['shape']}")
    fv, bo = sm["filter_vote"], sm["best_of_k"]
    console.print(f"filter-vote (simulated judge tpr={fv['tpr']}, fpr={fv['fpr']}): best {fv['accuracy']:.4f} at "
                  f"{fv['best_calls']} calls; best-of-{n}: perfect ranker {bo['perfect_at_n']:.4f}, ranker of "
                  f"accuracy {bo['ranker_accuracy']} {bo['noisy_at_n']:.4f}")


def plot_scale(result: "ScaleResult", path: Path) -> None:
    """Accuracy against the number of calls (log scale): the empirical curve with its interval, the
    resampled, fitted and predicted curves, Filter-Vote and best-of-K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, sm = result.curves, result.summary
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    e = c["empirical"]
    ax.fill_between(e["k"], e["ci_low"], e["ci_high"], color="C0", alpha=0.2, lw=0)
    ax.plot(e["k"], e["accuracy"], color="C0", lw=2, label=f"vote, empirical (best K={sm['empirical']['best_k']})")
    ax.plot(c["resampled"]["k"], c["resampled"]["accuracy"], color="C0", lw=1, ls=":", label="vote, resampled")
    ax.plot(c["fitted"]["k"], c["fitted"]["accuracy"], color="C1", lw=1.2,
            label=f"fitted on all samples (best K={sm['fitted']['best_k']})")
    ax.plot(c["predicted"]["k"], c["predicted"]["accuracy"], color="C3", lw=1.2, ls="--",
            label=f"predicted from {sm['few_samples']} samples (best K={sm['predicted']['best_k']})")
    ax.plot(c["filter_vote"]["k"], c["filter_vote"]["accuracy"], color="C2", lw=1.2, label="filter-vote (simulated judge)")
    ax.plot(c["best_of_k_perfect"]["k"], c["best_of_k_perfect"]["accuracy"], color="0.3", lw=1, ls="-.",
            label="best-of-K, perfect ranker")
    ax.plot(c["best_of_k_noisy"]["k"], c["best_of_k_noisy"]["accuracy"], color="0.6", lw=1, ls="-.",
            label=f"best-of-K, ranker accuracy {sm['best_of_k']['ranker_accuracy']}")
    ax.set_xscale("log")
    ax.set_xlabel("number of calls K")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{result.meta['model']} on {result.meta['task']} ({sm['n_prompts']} prompts)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_scale_plots(result: "ScaleResult", out: Path) -> list[Path]:
    p = out / "scale.png"
    plot_scale(result, p)
    return [p]


def print_aggregate(result: "AggregateResult", console: "Console") -> None:
    """Per task, one row per aggregation rule and one column per metric: value [interval]; the best
    rule of each metric is marked *, the metric's own (Bayes-optimal) rule is underlined by (own)."""
    from rich import box
    from rich.table import Table

    m = result.meta
    console.print(f"{m['model']}: n = {m['n']} samples per prompt, {m['draws']} draws x {m['reps']}; "
                  f"values are {', '.join(_metric_label(x) for x in m['metrics'])} ± half the 95% interval over "
                  "prompts; * the best rule, = the metric's own (Bayes-optimal) rule")
    rows = result.rows
    for task in dict.fromkeys(r["task"] for r in rows):
        tr = [r for r in rows if r["task"] == task]
        metrics = list(dict.fromkeys(r["metric"] for r in tr))
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
                  title=f"{task} ({tr[0]['kind']}; {tr[0]['prompts']} prompts"
                        + (f", {tr[0]['left_out']} left out" if tr[0]["left_out"] else "") + ")")
        t.add_column("rule", no_wrap=True, min_width=max(len(r["rule"]) for r in tr))
        for x in metrics:
            t.add_column(_metric_label(x), justify="right", no_wrap=True)
        for rule in dict.fromkeys(r["rule"] for r in tr):
            cells = []
            for x in metrics:
                r = next((r for r in tr if r["rule"] == rule and r["metric"] == x), None)
                if r is None:
                    cells.append("")
                    continue
                ci = "" if not np.isfinite(r["ci_low"]) else f" ±{(r['ci_high'] - r['ci_low']) / 2:.2g}"
                cells.append(f"{'*' if r.get('best') else ''}{'=' if r['matched'] else ''}{r['value']:.4g}{ci}")
            t.add_row(rule, *cells)
        console.print(t)
    for note in result.notes:
        console.print(f"note: {note}")


def _metric_label(name: str) -> str:
    return {"squared-error": "MSE", "absolute-error": "MAE", "exact-match": "accuracy"}.get(name, name)


def plot_aggregate(result: "AggregateResult", path: Path) -> None:
    """One panel per metric: each rule's value relative to one call (``first``), per task (losses: lower
    is better; scores: higher is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 1.2 * len(tasks) + 2) * len(metrics) / 1.6, 4.2),
                             dpi=110, squeeze=False)
    width = 0.8 / max(len(rules), 1)
    for ax, metric in zip(axes[0], metrics):
        for j, rule in enumerate(rules):
            ys = []
            for task in tasks:
                by = {r["rule"]: r for r in rows if r["task"] == task and r["metric"] == metric}
                base = by.get("first")
                r = by.get(rule)
                ok = r is not None and base is not None and base["value"] not in (0, None)
                ys.append(r["value"] / base["value"] if ok else np.nan)
            ax.bar(np.arange(len(tasks)) + (j - (len(rules) - 1) / 2) * width, ys, width, label=rule)
        ax.axhline(1.0, color="0.4", lw=0.8)
        ax.set_xticks(np.arange(len(tasks)))
        ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{_metric_label(metric)} relative to one call", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_aggregate_plots(result: "AggregateResult", out: Path) -> list[Path]:
    p = out / "aggregate.png"
    plot_aggregate(result, p)
    return [p]


# --------------------------------------------------------------------------------------------
# allocation search (callwise allocate)


def _alloc_text(alloc: dict | None) -> str:
    if not alloc:
        return "-"
    models = list(alloc.values())
    if len(set(models)) == 1:
        return f"{models[0]} (all {len(models)})"
    return ", ".join(f"{k}={v}" for k, v in alloc.items())


def print_allocation(result: "AllocationResult", console: "Console") -> None:
    """The chosen allocation, then one row per method: train and test quality and cost, evaluations."""
    from rich import box
    from rich.table import Table

    m, c = result.meta, result.chosen
    console.print(f"{m['pipeline']}: {len(m['modules'])} modules x {len(m['models'])} models "
                  f"({m['search_space']:,} allocations); {m['n_train']} train / {m['n_test']} test questions; "
                  f"{m.get('evaluator', '')}")
    console.print(f"[bold]chosen ({c['method']})[/bold]: {_alloc_text(c['allocation'])}")
    t = c["test"]
    console.print(f"  train quality {c['train']['quality']:.4f}, cost ${c['train']['cost']:.6f}/query; test quality "
                  f"{t['quality']:.4f} [{t['quality_ci'][0]:.4f}, {t['quality_ci'][1]:.4f}], cost "
                  f"${t['cost']:.6f}/query; {c['evaluations']} evaluations"
                  + (f", {c['rounds']} rounds ({c['stopped']})" if c["rounds"] else ""))
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("method", "allocation", "train q", "test q [95% CI]", "test $/query", "evals"):
        table.add_column(col, justify="left" if col in ("method", "allocation") else "right")
    for r in [c, *result.baselines]:
        tq = r["test"]
        table.add_row(r["method"], _alloc_text(r["allocation"]), f"{r['train']['quality']:.4f}",
                      f"{tq['quality']:.4f} [{tq['quality_ci'][0]:.3f}, {tq['quality_ci'][1]:.3f}]",
                      f"{tq['cost']:.6f}", f"{r['evaluations']:,}")
    console.print(table)
    if result.under_budget:
        for b in result.under_budget:
            a = b.get("allocation")
            console.print(f"  best found under ${b['budget']:g}/query: " + (
                "none" if a is None else f"{_alloc_text(a)} (test quality {b['test']['quality']:.4f}, "
                                         f"${b['test']['cost']:.6f}/query)"))
    for note in m.get("notes", []):
        console.print(f"  note: {note}")


def plot_allocation(result: "AllocationResult", path: Path) -> None:
    """The allocations the search scored in the cost-quality plane (training set), the Pareto set's
    test points, the single models and the chosen allocation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ev = result.evaluated
    if ev:
        ax.scatter([e["cost"] for e in ev], [e["quality"] for e in ev], s=10, color="0.7",
                   label=f"scored by {result.chosen['method']} (train)")
    if result.pareto:
        pc = [p["test"]["cost"] for p in result.pareto]
        pq = [p["test"]["quality"] for p in result.pareto]
        ax.plot(pc, pq, "o-", color="tab:blue", ms=4, lw=1, label="its Pareto set (test)")
    for r in result.baselines:
        ax.scatter([r["test"]["cost"]], [r["test"]["quality"]], marker="s", s=30, label=f"{r['method']} (test)")
    c = result.chosen
    ax.scatter([c["test"]["cost"]], [c["test"]["quality"]], marker="*", s=160, color="tab:red", zorder=5,
               label=f"chosen: {c['method']} (test)")
    ax.set_xscale("log")
    ax.set_xlabel("cost per query ($, log scale)")
    ax.set_ylabel("quality")
    ax.set_title(f"{result.meta['pipeline']}: allocations in the cost-quality plane", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_allocation_plots(result: "AllocationResult", out: Path) -> list[Path]:
    p = out / "allocations.png"
    plot_allocation(result, p)
    return [p]
