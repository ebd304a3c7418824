"""What ``callwise plan`` prints and writes: tables, one plot per task, the recommended policy files."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.frontier import Curve, densify
from ..core.money import per_1k, usd
from ..core.styles import FAMILY_COLOURS
from ..evaluation import Cell, Out, Table, cell, count, escape

if TYPE_CHECKING:
    from rich.console import Console

    from .planner import PlanResult, TaskPlan

def _ci(lo_hi: list[float] | None, fmt: str = "{:.3f}") -> str:
    if not lo_hi or not all(np.isfinite(lo_hi)):
        return ""
    return f" [{fmt.format(lo_hi[0])}, {fmt.format(lo_hi[1])}]"


def _k_ci(lo_hi: list[float] | None) -> str:
    if not lo_hi or not all(np.isfinite(lo_hi)):
        return ""
    return f" [{per_1k(lo_hi[0])}, {per_1k(lo_hi[1])}]"


def _pair(lo_hi: list[float] | None, scale: float = 1.0) -> Any:
    return None if not lo_hi or not all(np.isfinite(lo_hi)) else (float(lo_hi[0]) * scale, float(lo_hi[1]) * scale)


def _k(x: float | None, text: str | None = None) -> Cell:
    """A per-query cost cell holding dollars per 1,000 queries."""
    ok = x is not None and np.isfinite(x)
    return cell(float(x) * 1000 if ok else None, text if text is not None else per_1k(x))


def _q(x: float | None, fmt: str = "{:.4f}", extra: str = "") -> Cell:
    ok = x is not None and np.isfinite(x)
    return cell(float(x) if ok else None, (fmt.format(x) if ok else "-") + extra)


def print_plan(result: "PlanResult", console: "Console", fmt: str | None = "table") -> None:
    """Per task: the recommendation, what it saves, the best of each family; then the overall figures.
    Costs print in dollars per 1,000 queries (the --budget stays in dollars per query)."""
    with Out(console, fmt) as out:
        _plan_tables(result, out)


def _plan_tables(result: "PlanResult", out: Out) -> None:
    m = result.meta
    target = (f"budget {usd(m['budget'])}/query ({per_1k(m['budget'])} per 1k queries)" if m["budget"] is not None
              else f"quality floor {m['quality']:g}")
    out.text(f"[bold]plan[/bold]: {target}, risk {m['risk']:g} ({m['bound']} bound), {m['folds']}-fold "
             f"cross-validation on the training split; the test split is read once, for the report", markup=True)
    for task, t in result.tasks.items():
        out.text("")
        out.text(f"[bold]{escape(task)}[/bold]  ({count(t.n_train)} train / {count(t.n_test)} test prompts)",
                 markup=True)
        out.text(t.selection.message)
        v = t.verdict
        if v is not None:
            tab = Table.of(f"{task}: the recommendation", ["", "$/1k queries", "$/1k queries 95% CI or bound",
                                                           "quality", "quality 95% CI or bound"])
            tab.add("cv (train, out of fold)", _k(v["cv"]["cost"]),
                    _k(v["cv"]["cost_upper_bound"], f"bound {per_1k(v['cv']['cost_upper_bound'])}"),
                    _q(v["cv"]["quality"]), _q(v["cv"]["quality_lower_bound"], "bound {:.4f}"))
            tab.add("test", _k(v["test"]["cost"]), cell(_pair(v["test"]["cost_ci"], 1000), _k_ci(v["test"]["cost_ci"])),
                    _q(v["test"]["quality"]), cell(_pair(v["test"]["quality_ci"]), _ci(v["test"]["quality_ci"])))
            b = v["against_baseline"]
            tab.add(f"baseline {b['model']} (test)", _k(b["cost"]), cell(None, ""), _q(b["quality"]), cell(None, ""))
            share = "" if b["cost_saved_share"] is None else f" ({b['cost_saved_share']:.0%})"
            tab.add("saved vs baseline (test)", _k(b["cost_saved"], per_1k(b["cost_saved"]) + share),
                    cell(_pair(b["cost_saved_ci"], 1000), _k_ci(b["cost_saved_ci"])),
                    _q(b["quality_gained"], "{:+.4f}"),
                    cell(_pair(b["quality_gained_ci"]), _ci(b["quality_gained_ci"], "{:+.3f}")))
            f = v["against_single_model_frontier"]
            tab.add("saved vs single-model frontier at equal quality (test)", _k(f["cost_saved_at_equal_quality"]),
                    cell(_pair(f["cost_saved_at_equal_quality_ci"], 1000), _k_ci(f["cost_saved_at_equal_quality_ci"])),
                    cell(None, ""), cell(None, ""))
            tab.add("gained vs single-model frontier at equal cost (test)", cell(None, ""), cell(None, ""),
                    _q(f["quality_gained_at_equal_cost"], "{:+.4f}"),
                    cell(_pair(f["quality_gained_at_equal_cost_ci"]), _ci(f["quality_gained_at_equal_cost_ci"], "{:+.3f}")))
            h = v["target_held"]
            tab.add("target on test", cell(bool(h["held"]), "held" if h["held"] else "missed"), cell(None, ""),
                    cell(h["share_of_resamples_held"], f"held in {h['share_of_resamples_held']:.0%} of resamples"),
                    cell(None, ""))
            out.table(tab)
        fam = Table.of(f"{task}: best admissible configuration of each family",
                       ["family", "configuration", "cv $/1k queries", "cv $/1k queries bound", "cv quality",
                        "test $/1k queries", "test quality", "test quality 95% CI", "gap closed"], keys=1,
                       wrap=("configuration",))
        for name, d in t.family_test.items():
            g = d["test"].get("candidate_gap_closed")
            fam.add(name, d["label"], _k(d["cv"]["cost"]), _k(d["cv"]["cost_upper_bound"]), _q(d["cv"]["quality"]),
                    _k(d["test"]["cost"]), _q(d["test"]["quality"]),
                    cell(_pair(d["test"]["quality_ci"]), _ci(d["test"]["quality_ci"])),
                    cell(g, "-" if g is None else f"{g:+.2f}"))
        fam.notes.append("gap closed: (AIQ - zero router's) / (oracle's - zero router's) on test; below 0 is worse "
                         "than mixing single models, and a small zero-to-oracle gap makes it large")
        out.table(fam)
        cf = t.frontier["cross_family"]
        g = cf["gap_closed"]
        zero_aiq = t.frontier["zero"]["aiq"]["paper"]
        out.text(f"cross-family hull on test: AIQ {cf['aiq']['paper']:.4f} (zero {zero_aiq:.4f}, "
                 f"oracle {t.frontier['oracle']['aiq']['paper']:.4f}; gap closed "
                 f"{'-' if g is None else f'{g:+.2f}'}; hindsight: the best candidate per cost, chosen on test)")
        for n in t.notes:
            out.text(f"  note: {n}", style="dim")
    o = result.overall
    if len(result.tasks) > 1 and o.get("tasks_with_a_recommendation"):
        b = o["baseline"]
        out.text("")
        out.text(f"[bold]overall[/bold] ({count(o['n_prompts'])} test prompts, {o['tasks_with_a_recommendation']} "
                 f"tasks): {per_1k(o['cost'])} per 1k queries{_k_ci(o['cost_ci'])}, quality {o['quality']:.4f}"
                 f"{_ci(o['quality_ci'])}; vs baselines {per_1k(b['cost_saved'])} per 1k queries saved, quality "
                 f"{b['quality_gained']:+.4f}; target held overall: {o['target_held']['held']} "
                 f"({o['target_held']['tasks_held']} tasks)", markup=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_plan(t: "TaskPlan", path: Path, budget: float | None, quality: float | None, costs_estimated: bool) -> None:
    """Every candidate's test points by family, the cross-family hull, zero, oracle, the recommendation
    (styles from :mod:`callwise.core.styles`, costs in dollars per 1,000 queries)."""
    from ..core import styles as st

    fig, ax = st.figure((9, 5.5))
    seen: set[str] = set()
    for name, d in t.frontier["candidates"].items():
        p = np.asarray(d["points"])
        fam = d["family"]
        s = st.style(name, fam) if fam not in ("single", "zero") else {"color": FAMILY_COLOURS[fam], "marker": "o"}
        ax.scatter(p[:, 0] * 1000, p[:, 1], s=12, alpha=0.6, color=FAMILY_COLOURS.get(fam, s["color"]),
                   marker="o" if fam in ("single", "zero") else s.get("marker") or "o",
                   label=None if fam in seen else f"{fam} candidates", zorder=2, linewidth=0)
        seen.add(fam)
    for key, label in (("zero", "zero router: mixes of single models (test hindsight)"), ("oracle", "oracle")):
        h = np.asarray(t.frontier[key]["hull"]) if t.frontier[key]["hull"] else np.empty((0, 2))
        if len(h):
            xs, ys = densify(h[:, 0], h[:, 1])
            ax.plot(xs * 1000, ys, label=f"{label} (AIQ {t.frontier[key]['aiq']['paper']:.3f})", **st.line_kw(st.style(key)))
    vx = t.frontier["cross_family"]["vertices"]
    if vx:
        c = Curve(np.array([v["cost"] for v in vx]), np.array([v["quality"] for v in vx]))
        xs, ys = densify(c.cost, c.quality)
        ax.plot(xs * 1000, ys, color="#e41a1c", lw=1.4, label=f"cross-family hull (AIQ "
                f"{t.frontier['cross_family']['aiq']['paper']:.3f})", zorder=3)
    if t.verdict is not None:
        ax.scatter([t.verdict["test"]["cost"] * 1000], [t.verdict["test"]["quality"]], marker="*", s=220, color="gold",
                   edgecolor="black", zorder=5, label="recommended: " + textwrap.fill(t.verdict["label"], 48))
    if budget is not None:
        ax.axvline(budget * 1000, color="#e41a1c", ls=":", lw=1, label=f"budget {per_1k(budget)} per 1k queries")
    if quality is not None:
        ax.axhline(quality, color="#e41a1c", ls=":", lw=1, label=f"quality floor {quality:g}")
    st.log_axis(ax, "x", money=True)
    ax.set_xlabel("mean cost on the test split, $ per 1,000 queries (" + ("estimated, " if costs_estimated else "")
                  + "log scale)")
    ax.set_ylabel("mean quality on the test split (higher is better)")
    ax.set_title(f"plan: {t.task}")
    ax.grid(alpha=0.3)
    st.legend_outside(ax)
    st.save(fig, path)


def policy_file_name(result: "PlanResult", task: str) -> str:
    return "policy.json" if len(result.tasks) == 1 else f"policy-{_safe(task)}.json"


def write_plan_files(result: "PlanResult", out: Path) -> list[Path]:
    """Into ``out``: one PNG per task and the recommended policy file(s) (``callwise serve`` / ``run`` take them)."""
    from ..core.policy_files import save_policy

    written: list[Path] = []
    m = result.meta
    for task, t in result.tasks.items():
        png = out / f"plan-{_safe(task)}.png"
        plot_plan(t, png, m["budget"], m["quality"], bool(m["data"].get("costs_estimated")))
        written.append(png)
        if t.policy is not None:
            data: dict[str, Any] = {"task": task, "chosen_by": "callwise plan", "label": t.verdict and t.verdict["label"],
                                    "target": t.selection.target, "fingerprint": m["data"].get("fingerprint")}
            written += list(save_policy(t.policy, out / policy_file_name(result, task), data=data))
    return written


__all__ = ["FAMILY_COLOURS", "plot_plan", "policy_file_name", "print_plan", "usd", "write_plan_files"]
