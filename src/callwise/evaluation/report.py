"""Show results: bench (a rich table per task and overall, a cost–quality PNG per task),
``callwise cascade`` (AUC tables, accuracy-vs-budget curves) and ``callwise scale`` (best K, the
vote-scaling curves)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.frontier import densify
from .tables import NA, Cell, Out, Table, cell, count, escape, per_1k, short_names, usd

if TYPE_CHECKING:
    from rich.console import Console

    from ..aggregation import AggregateResult
    from ..cascades import CascadeResult, CascadeRun
    from ..pipelines import AllocationResult
    from ..voting import ScaleResult
    from .bench import BenchResult, Entry


def _num(x: Any, fmt: str = "{:.3f}") -> Cell:
    """A number cell (``-`` when missing)."""
    ok = x is not None and np.isfinite(x)
    return cell(float(x) if ok else None, fmt.format(x) if ok else "-")


def _money(x: Any, missing: str = "-") -> Cell:
    """A per-query cost cell: the value in dollars per 1,000 queries."""
    ok = x is not None and np.isfinite(x)
    return cell(float(x) * 1000 if ok else None, per_1k(x) if ok else missing)


BENCH_HEADS = ("policy", "AIQ (paper)", "AIQ {level} CI", "AIQ (RouterBench code)", "top quality",
               "$/1k queries at top", "gap closed", "$/1k queries to 95% of best model")


def _aiq_cell(x: Any) -> Cell:
    """An AIQ cell: ``n/a`` where it is undefined (None: the task has no cost range)."""
    return cell(None, NA) if x is None else _num(x)


def bench_footnote(result: "BenchResult") -> list[str]:
    """Why the dearest single model's AIQ is about 0 and how gap closed can be far below 0."""
    lines = ["AIQ (paper): the hull's area over the shared cost range [c_min, c_max] divided by its width; AIQ "
             "(RouterBench code): flat to c_max, divided by c_max. top quality, $/1k queries at top: the top of the "
             "hull. $/1k queries to 95% of best model: the cost at which the hull first reaches 95% of the best "
             "single model's quality (never: it does not)."]
    dear = []
    for t, r in result.tasks.items():
        if not r.aiq_defined:  # every model costs the same there: no dearest model, no AIQ
            continue
        singles = [(float(e.points[0, 0]), n) for n, e in r.entries.items() if e.family == "single" and len(e.points)]
        if singles:
            dear.append(max(singles)[1].split("/")[-1])
    which = ", ".join(sorted(set(dear))) or "the dearest model"
    if dear or all(r.aiq_defined for r in result.tasks.values()):
        lines.append(f"A single model is one point: its curve is 0 below its cost and flat above it. The dearest "
                     f"model ({which}) sits at c_max, so it covers none of the shared range and its AIQ is about 0: "
                     f"it is the most expensive way to get its quality, not a bad model.")
    lines.append("gap closed = (AIQ - zero router's) / (oracle's - zero router's): 0 is the zero router (mixing single "
                 "models), 1 the oracle, below 0 worse than the zero router. Where the oracle is barely above the zero "
                 "router the gap is small, so a policy a little below the zero router can read -3 or less.")
    lines.append("APGR, CPT(50%), CPT(80%) (two-model tasks): RouteLLM's average performance gap recovered and the "
                 "share of strong-model calls needed for 50% / 80% of the gap.")
    return lines


def print_tables(result: "BenchResult", console: "Console", fmt: str | None = "table") -> None:
    """One table per task and one overall: AIQ under both normalisations (CI for the paper's),
    the top of each hull, and the cost to reach 95% of the best single model; then what the columns
    mean (``fmt``: table | csv | json | md)."""
    with Out(console, fmt) as out:
        _bench_tables(result, out)


def _bench_tables(result: "BenchResult", out: Out) -> None:
    est = " (costs ESTIMATED)" if result.meta["data"].get("costs_estimated") else ""
    sp = result.meta.get("split", {})
    line = f"split: {sp.get('method')}"
    if sp.get("fraction") is not None:
        line += f", {sp['fraction']:.0%} train per task"
    if sp.get("fallback_tasks"):
        line += f"; no origin test/train side, seeded 70% split used for {sp['fallback_tasks']}"
    out.text(f"{line}; seed {result.meta.get('seed')}")
    level = result.meta["bootstrap"]["level"]
    groups = []
    for t, r in result.tasks.items():
        b = r.entries[r.best_model]
        groups.append((f"{t}: {count(r.n_train)} train / {count(r.n_test)} test prompts; best single model "
                       f"{r.best_model} (quality {b.points[0, 1]:.3f}, {per_1k(b.points[0, 0], 'never')} per 1k queries)",
                       r.entries, r))
    left = result.aiq_left_out()
    title = f"overall: mean of {len(result.tasks) - len(left)} per-task AIQs"
    if left:
        title += (f" ({len(left)} task(s) left out, where all models cost the same and AIQ is undefined: "
                  f"{', '.join(left)})")
    groups.append((title, result.overall, None))
    for k, (title, entries, r) in enumerate(groups):
        heads = [h.format(level=f"{level:.0%}") for h in BENCH_HEADS]
        if r is None:
            heads = heads[:-1]
        table = Table.of(title + est, heads)
        names = short_names(entries)
        for name, e in entries.items():
            ci = e.aiq_ci.get("paper")
            ok = bool(e.curve.quality.size and np.isfinite(e.curve.quality[-1]))
            label = names[name]
            n_tasks = e.extra.get("n_tasks")
            if r is None and n_tasks is not None and n_tasks < len(result.tasks):
                label = f"{label} ({n_tasks} tasks)"
            gap = e.extra.get("gap_closed")
            na = e.aiq.get("paper") is None  # no cost range (every model costs the same): AIQ undefined
            has_gap = e.family not in ("single", "oracle")
            row = [cell(label), _aiq_cell(e.aiq.get("paper")),
                   cell((float(ci[0]), float(ci[1])), f"{ci[0]:.3f}-{ci[1]:.3f}") if ci
                   else cell(None, NA if na else "-"),
                   _aiq_cell(e.aiq.get("routerbench-code")), _num(e.curve.quality[-1] if ok else None),
                   _money(float(e.curve.cost[-1]) if ok else None),
                   cell(float(gap), f"{gap:+.2f}") if has_gap and gap is not None
                   else cell(None, NA if has_gap and na else "")]
            if r is not None:
                row.append(_money(e.extra.get("cost_to_95pct_best_model"), "never"))
            table.add(*row, style="bold" if name in ("oracle", "zero") else None)
        if r is not None and not r.aiq_defined:
            from .bench import AIQ_UNDEFINED

            table.notes.append(f"AIQ, gap closed n/a: {AIQ_UNDEFINED}.")
        if k == 0:  # the first table says what its columns mean, why the dearest model reads 0, gaps below 0
            table.notes.extend(bench_footnote(result))
        out.table(table)
        if r is not None and any("routellm" in e.extra for e in entries.values()):
            _routellm_table(entries, out)

    lat = [(task, r) for task, r in result.tasks.items() if r.latency is not None]
    if lat:
        names = [n for n, e in lat[0][1].entries.items() if e.family != "single"]
        table = Table.of("quality-latency plane (--axis latency): AIQ (paper normalisation) over each task's "
                         "shared latency range", ["task", *names])
        for task, r in lat:
            got = r.latency["entries"]
            table.add(task, *(_num(got[n]["aiq"]["paper"], "{:.4f}") if n in got else cell(None, "-") for n in names))
        out.table(table)


def _routellm_table(entries: dict[str, "Entry"], out: Out) -> None:
    """RouteLLM's metrics for a two-model task: APGR and the strong-call share for 50% / 80% of the gap."""
    first = next(e.extra["routellm"] for e in entries.values() if "routellm" in e.extra)
    t = Table.of(f"RouteLLM metrics (strong {first['strong']}, weak {first['weak']})",
                 ["policy", "APGR", "CPT(50%)", "CPT(80%)"])
    names = short_names(entries)
    for name, e in entries.items():
        m = e.extra.get("routellm")
        if m:
            t.add(names[name], _num(m["apgr"]),
                  *(cell(m[k], f"{m[k]:.1%}") if m[k] is not None else cell(None, "never") for k in ("cpt50", "cpt80")))
    out.table(t)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "task"


def plot_task(title: str, entries: dict[str, "Entry"], path: Path, costs_estimated: bool,
              xlabel: str | None = None, scale: float = 1000.0) -> None:
    """One cost–quality plot: single models, the zero hull, the oracle curve, each policy's curve
    (``xlabel``: another x axis, e.g. the quality–latency plane's, then ``scale=1``). Costs are drawn in
    dollars per 1,000 queries, as the tables print them; styles from :mod:`callwise.core.styles`."""
    from ..core.styles import figure, legend_outside, line_kw, log_axis, save, single_markers, style  # noqa: I001

    fig, ax = figure((8, 5.5))
    singles = [e for e in entries.values() if e.family == "single" and len(e.points)]
    names = short_names([e.name for e in singles])
    marks = single_markers([e.name for e in singles])
    for e in singles:
        s = style(e.name, "single")
        ax.scatter(e.points[:, 0] * scale, e.points[:, 1], color=s["color"], marker=marks[e.name], s=34, zorder=5,
                   label=f"{names[e.name]} (single model)", edgecolor="white", linewidth=0.5)
    order = sorted((n for n, e in entries.items() if e.family != "single"),
                   key=lambda n: (n not in ("oracle", "zero"), n != "oracle"))
    for name in order:
        e = entries[name]
        if not len(e.curve) or not np.isfinite(e.curve.cost).all():
            continue
        s = style(name, e.family)
        a = e.aiq.get("paper")
        shown = "AIQ n/a" if a is None else f"AIQ {a:.3f}"  # n/a: no cost range (every model costs the same)
        label = f"{name} ({shown})"
        if name == "zero":
            label = f"zero router: mixes of single models ({shown})"
        xs, ys = densify(e.curve.cost, e.curve.quality)
        end = {"marker": s["marker"], "markevery": [len(xs) - 1], "ms": 5} if s.get("marker") else {}
        ax.plot(xs * scale, ys, label=label, **line_kw(s), **end)
        if e.family not in ("oracle", "zero") and len(e.points) > 1 and s.get("marker"):
            ax.scatter(e.points[:, 0] * scale, e.points[:, 1], s=12, marker=s["marker"], color=s["color"], alpha=0.7,
                       zorder=s["zorder"], linewidth=0)
    log_axis(ax, "x", money=xlabel is None)
    ax.set_xlabel(xlabel or ("mean cost, $ per 1,000 queries (" + ("estimated, " if costs_estimated else "")
                             + "log scale)"))
    ax.set_ylabel("mean quality (higher is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    save(fig, path)


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
                      xlabel="mean latency per query (s, log scale)", scale=1.0)
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

_PAIR_COLUMNS = ("oracle", "confidence", "confidence@offline", "frugal", "frugal@offline", "hybrid", "hybrid@offline",
                 "router", "router@offline", "random")


def _short(model: str) -> str:
    return model.split("/")[-1]


def print_cascade_tables(run: "CascadeRun", console: "Console", fmt: str | None = "table") -> None:
    """The pairs table (AUC per method, best non-oracle bold) and the chains table, then the summary."""
    with Out(console, fmt) as out:
        _cascade_tables(run, out)


def _cascade_tables(run: "CascadeRun", out: Out) -> None:
    every = [m for r in [*run.pairs, *run.chains] for m in r.models]
    names = short_names(every)
    if run.pairs:
        cols = [c for c in _PAIR_COLUMNS if any(c in r.methods for r in run.pairs)]
        cols += [c for r in run.pairs for c in r.methods if c not in cols]
        cols = list(dict.fromkeys(cols))
        t = Table.of("AUC x 100 (area under accuracy-vs-budget / budget range; test, mean of "
                     f"{run.meta['protocol']['orders']} stream orders); *: confidence beats every baseline; "
                     "bold: best but the oracle",
                     ["task", "small model", "large model", "small accuracy", "large accuracy", *cols], keys=3)
        for r in run.pairs:
            s, l = r.models
            best = max((r.methods[c].auc for c in cols if c in r.methods and c != "oracle"), default=np.nan)
            cells = []
            for c in cols:
                if c not in r.methods:
                    cells.append(cell(None, ""))
                    continue
                a = r.methods[c].auc
                txt = f"{100 * a:.2f}" + ("*" if c == "confidence" and r.beats_baselines("streaming") else "")
                cells.append(cell(float(100 * a), txt, "bold" if c != "oracle" and a >= best else None))
            t.add(r.task, names[s], names[l], _num(r.model_accuracy[s]), _num(r.model_accuracy[l]), *cells)
        out.table(t)
    if run.chains:
        heads = ("chain@offline", "two-tier@offline", "oracle")
        t = Table.of("n-tier chains (offline per-stage shares searched on train): AUC", ["task", "chain",
                     "last model's accuracy", *heads], keys=1, wrap=("chain",))
        for r in run.chains:
            t.add(r.task, " -> ".join(names[m] for m in r.models), _num(r.model_accuracy[r.models[-1]]),
                  *(_num(r.methods[c].auc, "{:.4f}") for c in heads))
        out.table(t)
    s = run.summary()
    if run.pairs:
        out.text(f"confidence cascade beats every baseline ({', '.join(run.meta['protocol']['baselines'])}) on "
                 f"{s['confidence_beats_every_baseline_streaming']}/{s['pairs']} pairs (streaming), "
                 f"{s['confidence_beats_every_baseline_offline']}/{s['pairs']} (offline thresholds)")
        out.text("with the 95% paired-bootstrap interval of the AUC difference to the best baseline above / "
                 f"below 0: {s['confidence_ci_above_best_baseline_streaming']} / "
                 f"{s['confidence_ci_below_best_baseline_streaming']} pairs (streaming), "
                 f"{s['confidence_ci_above_best_baseline_offline']} / "
                 f"{s['confidence_ci_below_best_baseline_offline']} (offline)")
        t = Table.of("mean AUC over the pairs", ["method", "mean AUC"])
        for m, v in s["mean_auc"].items():
            t.add(m, _num(v, "{:.4f}"))
        out.table(t)


def plot_cascade(r: "CascadeResult", path: Path) -> None:
    """Accuracy against the per-query budget for every method of one pair or chain."""
    from ..core.styles import figure, legend_outside, line_kw, save, style

    fig, ax = figure((7.5, 5))
    names = short_names(r.models)
    for name, m in r.methods.items():
        s = style(name)
        label = f"{name} (AUC {m.auc:.4f})"
        ax.plot(r.budgets * 1000, m.accuracy, label=label, **line_kw(s))
    for model in r.models:
        ax.axhline(r.model_accuracy[model], color="0.55", lw=0.8, ls=":", zorder=1)
    label_levels(ax, {f"{names[m]} alone": r.model_accuracy[m] for m in r.models})
    ax.set_xlabel("budget, $ per 1,000 queries")
    ax.set_ylabel("accuracy (test, mean of stream orders; higher is better)")
    ax.set_title(f"{r.task}: {' -> '.join(names[m] for m in r.models)}", fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    save(fig, path)


def label_levels(ax: Any, levels: dict[str, float], fontsize: float = 7) -> None:
    """Label horizontal levels at the right end of the axes; levels closer than 3% of the y range
    share one label ("a, b alone 0.889"), so no two labels print on top of each other."""
    lo, hi = ax.get_ylim()
    gap = 0.03 * (hi - lo)
    items = sorted(levels.items(), key=lambda kv: kv[1])
    groups: list[list[tuple[str, float]]] = []
    for k, v in items:
        if groups and v - groups[-1][-1][1] < gap:
            groups[-1].append((k, v))
        else:
            groups.append([(k, v)])
    for g in groups:
        y = float(np.mean([v for _, v in g]))
        names = [k.removesuffix(" alone") for k, _ in g]
        suffix = " alone" if all(k.endswith(" alone") for k, _ in g) else ""
        vals = sorted({f"{v:.3f}" for _, v in g})
        ax.annotate(f"{', '.join(names)}{suffix} ({', '.join(vals)})", (1.0, y), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=fontsize, color="0.3", xytext=(-3, 1.5),
                    textcoords="offset points", bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                                      "alpha": 0.7})


def plot_cascade_summary(run: "CascadeRun", path: Path) -> None:
    """Confidence-cascade AUC against the best baseline's, one point per pair (above the line: it wins)."""
    from ..core.styles import figure, save, style

    fig, ax = figure((5.5, 5.5))
    xs = np.array([r.best_baseline("streaming")[1] for r in run.pairs])
    ys = np.array([r.methods["confidence"].auc for r in run.pairs])
    ax.scatter(xs, ys, s=16, color=style("confidence")["color"], zorder=3)
    lo, hi = float(min(xs.min(), ys.min())), float(max(xs.max(), ys.max()))
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, label="equal AUC")
    ax.set_xlabel(f"best baseline AUC ({', '.join(run.meta['protocol']['baselines'])})")
    ax.set_ylabel("confidence cascade AUC")
    ax.set_title(f"{int((ys > xs).sum())}/{len(ys)} pairs above the diagonal (the cascade wins)", fontsize=10)
    ax.grid(alpha=0.3)
    save(fig, path)


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


def print_scale(result: "ScaleResult", console: "Console", fmt: str | None = "table") -> None:
    """The best K of each curve, the prediction's errors, and the other aggregations."""
    with Out(console, fmt) as out:
        _scale_tables(result, out)


def _scale_tables(result: "ScaleResult", out: Out) -> None:
    m, sm = result.meta, result.summary
    n = sm["samples_per_prompt"]["min"]
    est = " (costs ESTIMATED)" if m["data"].get("costs_estimated") else ""
    left = f" ({count(sm['excluded_prompts'])} with fewer samples left out)" if sm.get("excluded_prompts") else ""
    out.text(f"{m['model']} on {m['task']}: {count(sm['n_prompts'])} prompts{left}, {n} samples each; "
             f"easy share {sm['easy_share']['all_samples']:.2f} (all samples), "
             f"{sm['easy_share']['few_samples']:.2f} (first {sm['few_samples']}); "
             f"{per_1k(sm['cost_per_call'])} per 1k calls{est}")
    e = sm["empirical"]
    out.text(f"empirical (K = 1..{n}, without replacement): {e['shape']}, accuracy {e['accuracy_k1']:.4f} at K=1, "
             f"{e['accuracy']:.4f} at best K={e['best_k']} (within {1e-3:g} from K={e['plateau_k']}), "
             f"{e['accuracy_at_n']:.4f} at K={n}; drop best->N {e['drop_best_to_n']:.4f} "
             f"[{e['drop_ci'][0]:.4f}, {e['drop_ci'][1]:.4f}]")
    t = Table.of(f"best K up to {m['k_max']}", ["curve", "shape", "best K", "plateau K", "accuracy at best K",
                 "error at empirical best K", "empirical accuracy there", "regret", "regret 95% CI"],
                 keys=1, left=("shape",))
    dash = cell(None, "-")
    t.add("empirical", e["shape"], cell(int(e["best_k"]), str(e["best_k"])),
          cell(int(e["plateau_k"]), str(e["plateau_k"])), _num(e["accuracy"], "{:.4f}"), dash, dash, dash, dash)
    r = sm["resampled"]
    t.add("resampled", r["shape"], cell(int(r["best_k"]), str(r["best_k"])), dash, _num(r["accuracy"], "{:.4f}"),
          dash, dash, dash, dash)
    for name in ("fitted", "predicted"):
        p = sm[name]
        label = name if name == "fitted" else f"predicted ({sm['few_samples']} samples)"
        at = f"{p['empirical_accuracy_at_k']:.4f}" + ("*" if p["beyond_recorded"] else "")
        t.add(label, p["shape"], cell(int(p["best_k"]), str(p["best_k"])), cell(int(p["plateau_k"]), str(p["plateau_k"])),
              _num(p["accuracy_at_best_k"], "{:.4f}"), _num(p["error_at_empirical_best_k"], "{:+.4f}"),
              cell(float(p["empirical_accuracy_at_k"]), at), _num(p["regret"], "{:.4f}"),
              cell((float(p["regret_ci"][0]), float(p["regret_ci"][1])),
                   f"[{p['regret_ci'][0]:.4f}, {p['regret_ci'][1]:.4f}]"))
    if sm["predicted"]["beyond_recorded"] or sm["fitted"]["beyond_recorded"]:
        t.notes.append(f"* best K beyond the {n} recorded samples: the empirical accuracy is taken at K={n}")
    note = fit_grid_note(result)
    if note:
        t.notes.append(note)
    out.table(t)
    th = sm.get("theorem1")
    if th:
        for label, e in (("all samples", th["all_samples"]), (f"first {sm['few_samples']}", th["few_samples"])):
            out.text(f"Theorem 1 from {label}: alpha {e['alpha']:.2f}, p1 {e['p1']:.2f}, p2 {e['p2']:.2f} -> "
                     f"{e['shape']} (as stated: {e['shape_as_stated']}; closed form F(K): "
                     f"{e['two_level_shape']}); empirical: {sm['empirical']['shape']}")
    fv, bo = sm["filter_vote"], sm["best_of_k"]
    out.text(f"filter-vote (simulated judge tpr={fv['tpr']}, fpr={fv['fpr']}): best {fv['accuracy']:.4f} at "
             f"{fv['best_calls']} calls; best-of-{n}: perfect ranker {bo['perfect_at_n']:.4f}, ranker of "
             f"accuracy {bo['ranker_accuracy']} {bo['noisy_at_n']:.4f}")


def fit_grid_note(result: "ScaleResult") -> str | None:
    """Why the fitted and predicted curves can start far from the empirical one at K=1: they are fitted at
    the grid's K only (the paper's 2..100), and a grid without K=1 leaves K=1 to extrapolation."""
    ks = result.summary.get("fit_ks") or _fit_ks(result)
    if not ks or min(ks) <= 1:
        return None
    c = result.curves
    try:
        emp1 = float(c["empirical"]["accuracy"][0])
        fit1 = float(c["fitted"]["accuracy"][0])
        pred1 = float(c["predicted"]["accuracy"][0])
    except (KeyError, IndexError, TypeError):
        return None
    return (f"fitted and predicted curves: fitted at K in {{{', '.join(map(str, ks))}}} only, so K < {min(ks)} is "
            f"extrapolated (at K=1: fitted {fit1:.3f}, predicted {pred1:.3f}, empirical {emp1:.3f}); "
            "--fit-grid authors-code fits at K=1 too")


def _fit_ks(result: "ScaleResult") -> list[int] | None:
    from ..voting import FIT_GRIDS

    text = result.meta.get("methods", {}).get("fitted", "")
    for name, ks in FIT_GRIDS.items():
        if f"({name} grid)" in text:
            return list(ks)
    return None


def plot_scale(result: "ScaleResult", path: Path) -> None:
    """Accuracy against the number of calls (log scale): the empirical curve with its interval, the
    resampled, fitted and predicted curves, Filter-Vote and best-of-K. The fitted and predicted
    curves are drawn faint and dotted where they extrapolate below the fitting grid's first K."""
    from ..core.styles import figure, legend_outside, log_axis, save, style

    c, sm = result.curves, result.summary
    fig, ax = figure((7.5, 5))
    vote = style("vote")["color"]
    e = c["empirical"]
    ax.fill_between(e["k"], e["ci_low"], e["ci_high"], color=vote, alpha=0.15, lw=0,
                    label="vote, empirical 95% interval")
    ax.plot(e["k"], e["accuracy"], color=vote, lw=2.2, label=f"vote, empirical (best K={sm['empirical']['best_k']})")
    ax.plot(c["resampled"]["k"], c["resampled"]["accuracy"], color=vote, lw=1, ls=":", label="vote, resampled")
    ks_fit = _fit_ks(result) or [1]
    k0 = min(ks_fit)
    for key, colour, ls, label in (
            ("fitted", "#00a676", "-", f"vote, fitted on all samples (best K={sm['fitted']['best_k']})"),
            ("predicted", "#8c9e1a", "--", f"vote, predicted from {sm['few_samples']} samples "
                                           f"(best K={sm['predicted']['best_k']})")):
        k = np.asarray(c[key]["k"], float)
        a = np.asarray(c[key]["accuracy"], float)
        inside = k >= k0
        ax.plot(k[inside], a[inside], color=colour, lw=1.4, ls=ls, label=label)
        if (~inside).any():
            j = int(np.argmax(inside))  # join the extrapolated part to the first fitted K
            ax.plot(k[: j + 1], a[: j + 1], color=colour, lw=1.0, ls=":", alpha=0.6,
                    label=f"  (K < {k0}: extrapolated, not fitted)" if key == "fitted" else None)
    fv = style("filter-vote")["color"]
    ax.plot(c["filter_vote"]["k"], c["filter_vote"]["accuracy"], color=fv, lw=1.3, label="filter-vote (simulated judge)")
    bk = style("best-of-k")
    ax.plot(c["best_of_k_perfect"]["k"], c["best_of_k_perfect"]["accuracy"], color=bk["color"], lw=1.1, ls="-.",
            label="best-of-K, perfect ranker")
    ax.plot(c["best_of_k_noisy"]["k"], c["best_of_k_noisy"]["accuracy"], color=bk["color"], lw=1.1, ls=(0, (5, 1.5, 1, 1.5, 1, 1.5)),
            label=f"best-of-K, ranker accuracy {sm['best_of_k']['ranker_accuracy']}")
    log_axis(ax, "x")
    ax.set_xlabel("number of calls K (log scale)")
    ax.set_ylabel("accuracy (higher is better)")
    ax.set_title(f"{result.meta['model']} on {result.meta['task']} ({sm['n_prompts']} prompts)", fontsize=10)
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")
    legend_outside(ax)
    note = fit_grid_note(result)
    if note:
        ax.text(0.0, -0.13, textwrap.fill(note, 120), fontsize=7, color="0.3", ha="left", va="top",
                transform=ax.transAxes)
    save(fig, path)


def write_scale_plots(result: "ScaleResult", out: Path) -> list[Path]:
    p = out / "scale.png"
    plot_scale(result, p)
    return [p]


def print_aggregate(result: "AggregateResult", console: "Console", fmt: str | None = "table") -> None:
    """Per task, one row per aggregation rule and one column per metric: value ± half its interval; the
    best rule of each metric is marked *, the metric's own (Bayes-optimal) rule =."""
    with Out(console, fmt) as out:
        _aggregate_tables(result, out)


def _aggregate_tables(result: "AggregateResult", out: Out) -> None:
    m = result.meta
    out.text(f"{m['model']}: n = {m['n']} samples per prompt, {m['draws']} draws x {count(m['reps'])}; "
             f"values are {', '.join(_metric_label(x) for x in m['metrics'])} ± half the 95% interval over "
             "prompts; * the best rule, = the metric's own (Bayes-optimal) rule")
    rows = result.rows
    for task in dict.fromkeys(r["task"] for r in rows):
        tr = [r for r in rows if r["task"] == task]
        metrics = list(dict.fromkeys(r["metric"] for r in tr))
        heads = []
        for x in metrics:
            low = _lower_is_better(x)
            heads.append(_metric_label(x) + ("" if low is None else (" (lower is better)" if low else
                                                                     " (higher is better)")))
        t = Table.of(f"{task} ({tr[0]['kind']}; {count(tr[0]['prompts'])} prompts"
                     + (f", {count(tr[0]['left_out'])} left out" if tr[0]["left_out"] else "") + ")", ["rule", *heads])
        for rule in dict.fromkeys(r["rule"] for r in tr):
            cells = []
            for x in metrics:
                r = next((r for r in tr if r["rule"] == rule and r["metric"] == x), None)
                if r is None:
                    cells.append(cell(None, ""))
                    continue
                ci = "" if not np.isfinite(r["ci_low"]) else f" ±{(r['ci_high'] - r['ci_low']) / 2:.2g}"
                cells.append(cell(float(r["value"]),
                                  f"{'*' if r.get('best') else ''}{'=' if r['matched'] else ''}{r['value']:.4g}{ci}"))
            t.add(rule, *cells)
        out.table(t)
    for note in result.notes:
        out.text(f"note: {note}")


def _metric_label(name: str) -> str:
    return {"squared-error": "MSE", "absolute-error": "MAE", "exact-match": "accuracy"}.get(name, name)


def _lower_is_better(metric: str) -> bool | None:
    from ..aggregation import get_metric

    try:
        return bool(get_metric(metric).lower_is_better)
    except Exception:  # an unregistered metric: say nothing rather than guess
        return None


def plot_aggregate(result: "AggregateResult", path: Path) -> None:
    """One panel per metric: each rule's value relative to one call (``first`` = 1), per task, with the
    y axis saying so and which way is better (losses: lower; scores: higher)."""
    from ..core.styles import figure, legend_outside, rule_colour, save

    rows = result.rows
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    fig, axes = figure((max(5.0, 0.9 * len(tasks) + 2) * len(metrics) / 1.4, 4.4), ncols=len(metrics), squeeze=False)
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
            ax.bar(np.arange(len(tasks)) + (j - (len(rules) - 1) / 2) * width, ys, width, label=rule,
                   color=rule_colour(rule), hatch="//" if rule in ("first", "random") else None, edgecolor="white",
                   linewidth=0.3)
        ax.axhline(1.0, color="0.3", lw=0.9, ls="--")
        missing = {t for t in tasks if not any(r["task"] == t and r["metric"] == metric for r in rows)}
        ax.set_xticks(np.arange(len(tasks)))
        ax.set_xticklabels([f"{t} (n/a)" if t in missing else t for t in tasks], rotation=30, ha="right", fontsize=7)
        low = _lower_is_better(metric)
        way = "" if low is None else ("; lower is better" if low else "; higher is better")
        ax.set_ylabel(f"{_metric_label(metric)} / {_metric_label(metric)} of one call (first = 1){way}", fontsize=8)
        ax.set_title(f"{_metric_label(metric)} relative to one call"
                     + ("" if low is None else (" (lower is better)" if low else " (higher is better)")), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    legend_outside(axes[0][-1], title="rule")
    save(fig, path)


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


def print_allocation(result: "AllocationResult", console: "Console", fmt: str | None = "table") -> None:
    """The chosen allocation, then one row per method: train and test quality and cost, evaluations."""
    with Out(console, fmt) as out:
        _allocation_tables(result, out)


def _allocation_tables(result: "AllocationResult", out: Out) -> None:
    m, c = result.meta, result.chosen
    out.text(f"{m['pipeline']}: {len(m['modules'])} modules x {len(m['models'])} models "
             f"({count(m['search_space'])} allocations); {count(m['n_train'])} train / {count(m['n_test'])} test "
             f"questions; {m.get('evaluator', '')}")
    out.text(f"[bold]chosen ({escape(c['method'])})[/bold]: {escape(_alloc_text(c['allocation']))}", markup=True)
    t = c["test"]
    out.text(f"  train quality {c['train']['quality']:.4f}, {per_1k(c['train']['cost'])} per 1k queries; test quality "
             f"{t['quality']:.4f} [{t['quality_ci'][0]:.4f}, {t['quality_ci'][1]:.4f}], "
             f"{per_1k(t['cost'])} per 1k queries; {count(c['evaluations'])} evaluations"
             + (f", {c['rounds']} rounds ({c['stopped']})" if c["rounds"] else ""))
    table = Table.of(None, ["method", "allocation", "train quality", "test quality", "test quality 95% CI",
                            "test $/1k queries", "evaluations"], keys=1, wrap=("allocation",))
    for r in [c, *result.baselines]:
        tq = r["test"]
        table.add(r["method"], _alloc_text(r["allocation"]), _num(r["train"]["quality"], "{:.4f}"),
                  _num(tq["quality"], "{:.4f}"),
                  cell((float(tq["quality_ci"][0]), float(tq["quality_ci"][1])),
                       f"[{tq['quality_ci'][0]:.3f}, {tq['quality_ci'][1]:.3f}]"),
                  _money(tq["cost"]), cell(int(r["evaluations"]), count(r["evaluations"])))
    out.table(table)
    if result.under_budget:
        for b in result.under_budget:
            a = b.get("allocation")
            out.text(f"  best found under {usd(b['budget'])}/query ({per_1k(b['budget'])} per 1k queries): " + (
                "none" if a is None else f"{_alloc_text(a)} (test quality {b['test']['quality']:.4f}, "
                                         f"{per_1k(b['test']['cost'])} per 1k queries)"))
    for note in m.get("notes", []):
        out.text(f"  note: {note}")


def plot_allocation(result: "AllocationResult", path: Path) -> None:
    """The allocations the search scored in the cost-quality plane (training set), the Pareto set's
    test points, the single models and the chosen allocation. Methods that land on the same test
    point share one legend entry ("coordinate = llmselector"), so none is hidden under another."""
    from ..core.styles import figure, legend_outside, log_axis, method_style, save

    fig, ax = figure((6.4, 4.4))
    ev = result.evaluated
    if ev:
        ax.scatter([e["cost"] * 1000 for e in ev], [e["quality"] for e in ev], s=10, color="0.75", zorder=1,
                   label=f"allocations scored by {result.chosen['method']} (train)")
    if result.pareto:
        pc = [p["test"]["cost"] * 1000 for p in result.pareto]
        pq = [p["test"]["quality"] for p in result.pareto]
        ax.plot(pc, pq, "o-", color="#6baed6", ms=4, lw=1, label="its Pareto set (test)", zorder=2)
    c = result.chosen
    points: dict[tuple[float, float], list[str]] = {}
    for r in [c, *result.baselines]:
        key = (round(float(r["test"]["cost"]), 12), round(float(r["test"]["quality"]), 9))
        points.setdefault(key, []).append(r["method"])
    for (cost, q), methods in points.items():
        chosen = c["method"] in methods
        st = method_style(c["method"] if chosen else methods[0])
        label = " = ".join(methods) + (" (chosen)" if chosen else "") + " (test)"
        ax.scatter([cost * 1000], [q], marker=st["marker"], s=170 if chosen else 45, color=st["color"],
                   edgecolor="black" if chosen else "white", linewidth=0.6, zorder=5 if chosen else 4, label=label)
    log_axis(ax, "x", money=True)
    ax.set_xlabel("cost, $ per 1,000 queries (log scale)")
    ax.set_ylabel("quality (higher is better)")
    ax.set_title(f"{result.meta['pipeline']}: allocations in the cost-quality plane", fontsize=9)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    save(fig, path)


def write_allocation_plots(result: "AllocationResult", out: Path) -> list[Path]:
    p = out / "allocations.png"
    plot_allocation(result, p)
    return [p]


# --------------------------------------------------------------------------------------------
# callwise info, and the summaries of run / collect


def print_info(t: Any, console: "Console", fmt: str | None = "table") -> None:
    """The outcome table's summary: format, fingerprint, notes, then per task and model the prompts,
    mean quality and mean cost (dollars per 1,000 queries)."""
    with Out(console, fmt) as out:
        out.text(f"{t!r}")
        out.text(f"format: {t.meta.get('format')}  fingerprint: {t.fingerprint()}  costs estimated: {t.costs_estimated}")
        for note in t.meta.get("notes", []):
            out.text(f"note: {note}")
        g = t.frame[t.frame["sample"] == 0].groupby(["task", "model"], observed=True).agg(
            prompts=("prompt_id", "nunique"), quality=("quality", "mean"), cost=("cost", "mean"))
        table = Table.of(None, ["task", "model", "prompts", "mean quality", "mean $/1k queries"], keys=2)
        for (task, model), r in g.iterrows():
            table.add(task, model, cell(int(r.prompts), count(r.prompts)), _num(r.quality, "{:.4f}"), _money(r.cost))
        out.table(table)


#: How the summary keys of ``callwise run`` / ``collect`` read, and which are money.
_SUMMARY_LABELS = {
    "prompts": "prompts", "policy": "policy", "models": "models", "samples": "samples per prompt and model",
    "calls": "calls", "aux_calls": "auxiliary calls", "calls_per_model": "calls per model",
    "cost_policy": "policy cost, total", "mean_cost": "mean cost per prompt",
    "spent_now": "spent now (calls not in the cache)", "spent_policy_now": "  of which the policy's calls",
    "spent_exploring_now": "  of which exploring (--complete)", "cache_hits": "cache hits", "retries": "retries",
    "fallbacks": "fallbacks", "mean_quality": "mean quality per model", "mean_quality_policy": "mean quality",
}
_MONEY_KEYS = {"cost_policy", "spent_now", "spent_policy_now", "spent_exploring_now"}


def summary_table(summary: dict[str, Any], title: str | None = "summary") -> Table:
    """A run's or collection's summary as a two-column table: dollars as dollars, counts as integers,
    per-model figures one model a row."""
    t = Table.of(title, ["", "value"], keys=1)
    for k, v in summary.items():
        label = _SUMMARY_LABELS.get(k, k.replace("_", " "))
        if isinstance(v, dict):
            t.add(label, cell(None, ""))
            for m, x in v.items():
                t.add(f"  {m}", _num(x, "{:.4f}") if isinstance(x, float) else cell(x, count(x) if isinstance(x, int)
                                                                                        else str(x)))
        elif k in _MONEY_KEYS and isinstance(v, (int, float)):
            t.add(label, cell(float(v), usd(v)))
        elif k == "mean_cost" and isinstance(v, (int, float)):
            t.add(label, cell(float(v) * 1000, f"{per_1k(v)} per 1k queries"))
        elif isinstance(v, bool) or v is None:
            t.add(label, cell(v, str(v)))
        elif isinstance(v, int):
            t.add(label, cell(v, count(v)))
        elif isinstance(v, float):
            t.add(label, _num(v, "{:.4f}"))
        elif isinstance(v, (list, tuple)):
            t.add(label, cell(list(v), ", ".join(map(str, v))))
        else:
            t.add(label, cell(v, str(v)))
    return t


def print_summary(summary: dict[str, Any], console: "Console", fmt: str | None = "table",
                  title: str | None = "summary") -> None:
    with Out(console, fmt) as out:
        out.table(summary_table(summary, title))
