"""What ``callwise plan`` prints and writes: tables, one plot per task, the recommended policy files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.frontier import Curve, densify

if TYPE_CHECKING:
    from rich.console import Console

    from .planner import PlanResult, TaskPlan

#: One colour per family, the same in every plot.
FAMILY_COLOURS = {"single": "0.35", "zero": "tab:gray", "router": "tab:blue", "cascade": "tab:orange",
                  "multi-call": "tab:green", "composition": "tab:purple", "fixed": "tab:brown"}


def usd(x: float | None) -> str:
    """Dollars per query with three significant digits."""
    if x is None or not np.isfinite(x):
        return "-"
    return f"${x:.3g}"


def _ci(lo_hi: list[float] | None, fmt: str = "{:.3f}") -> str:
    if not lo_hi or not all(np.isfinite(lo_hi)):
        return ""
    return f" [{fmt.format(lo_hi[0])}, {fmt.format(lo_hi[1])}]"


def _usd_ci(lo_hi: list[float] | None) -> str:
    if not lo_hi or not all(np.isfinite(lo_hi)):
        return ""
    return f" [{usd(lo_hi[0])}, {usd(lo_hi[1])}]"


def print_plan(result: "PlanResult", console: "Console") -> None:
    """Per task: the recommendation, what it saves, the best of each family; then the overall figures."""
    from rich.table import Table

    m = result.meta
    target = f"budget {usd(m['budget'])}/query" if m["budget"] is not None else f"quality floor {m['quality']:g}"
    console.print(f"[bold]plan[/bold]: {target}, risk {m['risk']:g} ({m['bound']} bound), {m['folds']}-fold "
                  f"cross-validation on the training split; the test split is read once, for the report")
    for task, t in result.tasks.items():
        console.print(f"\n[bold]{task}[/bold]  ({t.n_train} train / {t.n_test} test prompts)")
        console.print(t.selection.message)
        v = t.verdict
        if v is not None:
            tab = Table(show_header=True, header_style="bold", title="the recommendation")
            for col in ("", "cost $/query", "quality"):
                tab.add_column(col)
            tab.add_row("cv (train, out of fold)", f"{usd(v['cv']['cost'])} (bound {usd(v['cv']['cost_upper_bound'])})",
                        f"{v['cv']['quality']:.4f} (bound {v['cv']['quality_lower_bound']:.4f})")
            tab.add_row("test", usd(v["test"]["cost"]) + _usd_ci(v["test"]["cost_ci"]),
                        f"{v['test']['quality']:.4f}" + _ci(v["test"]["quality_ci"]))
            b = v["against_baseline"]
            tab.add_row(f"baseline {b['model']} (test)", usd(b["cost"]), f"{b['quality']:.4f}")
            share = "" if b["cost_saved_share"] is None else f" ({b['cost_saved_share']:.0%})"
            tab.add_row("saved vs baseline (test)", usd(b["cost_saved"]) + share + _usd_ci(b["cost_saved_ci"]),
                        f"{b['quality_gained']:+.4f}" + _ci(b["quality_gained_ci"], "{:+.3f}"))
            f = v["against_single_model_frontier"]
            tab.add_row("vs single-model frontier (test)",
                        f"saves {usd(f['cost_saved_at_equal_quality'])} at equal quality"
                        + _usd_ci(f["cost_saved_at_equal_quality_ci"]),
                        "gains " + ("-" if f["quality_gained_at_equal_cost"] is None else
                                    f"{f['quality_gained_at_equal_cost']:+.4f}") + " at equal cost"
                        + _ci(f["quality_gained_at_equal_cost_ci"], "{:+.3f}"))
            h = v["target_held"]
            tab.add_row("target on test", "held" if h["held"] else "[red]missed[/red]",
                        f"held in {h['share_of_resamples_held']:.0%} of bootstrap resamples")
            console.print(tab)
        fam = Table(show_header=True, header_style="bold", title="best admissible configuration of each family")
        for col in ("family", "configuration", "cv cost (bound)", "cv quality", "test cost", "test quality",
                    "gap closed"):
            fam.add_column(col)
        for name, d in t.family_test.items():
            g = d["test"].get("candidate_gap_closed")
            fam.add_row(name, d["label"], f"{usd(d['cv']['cost'])} ({usd(d['cv']['cost_upper_bound'])})",
                        f"{d['cv']['quality']:.4f}", usd(d["test"]["cost"]),
                        f"{d['test']['quality']:.4f}" + _ci(d["test"]["quality_ci"]),
                        "-" if g is None else f"{g:+.2f}")
        console.print(fam)
        cf = t.frontier["cross_family"]
        g = cf["gap_closed"]
        zero_aiq = t.frontier["zero"]["aiq"]["paper"]
        console.print(f"cross-family hull on test: AIQ {cf['aiq']['paper']:.4f} (zero {zero_aiq:.4f}, "
                      f"oracle {t.frontier['oracle']['aiq']['paper']:.4f}; gap closed "
                      f"{'-' if g is None else f'{g:+.2f}'}; hindsight: the best candidate per cost, chosen on test)")
        for n in t.notes:
            console.print(f"  note: {n}", style="dim")
    o = result.overall
    if len(result.tasks) > 1 and o.get("tasks_with_a_recommendation"):
        b = o["baseline"]
        console.print(f"\n[bold]overall[/bold] ({o['n_prompts']} test prompts, {o['tasks_with_a_recommendation']} tasks): "
                      f"cost {usd(o['cost'])}{_usd_ci(o['cost_ci'])}, quality {o['quality']:.4f}{_ci(o['quality_ci'])}; "
                      f"vs baselines {usd(b['cost_saved'])} saved, quality {b['quality_gained']:+.4f}; "
                      f"target held overall: {o['target_held']['held']} ({o['target_held']['tasks_held']} tasks)")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_plan(t: "TaskPlan", path: Path, budget: float | None, quality: float | None, costs_estimated: bool) -> None:
    """Every candidate's test points by family, the cross-family hull, zero, oracle, the recommendation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    seen: set[str] = set()
    for name, d in t.frontier["candidates"].items():
        p = np.asarray(d["points"])
        fam = d["family"]
        ax.scatter(p[:, 0], p[:, 1], s=10, alpha=0.55, color=FAMILY_COLOURS.get(fam, "tab:olive"),
                   label=None if fam in seen else fam, zorder=2)
        seen.add(fam)
    for key, style, label in (("zero", dict(color="tab:gray", lw=2.0, ls="-"), "zero router (test hindsight)"),
                              ("oracle", dict(color="black", lw=1.2, ls="--"), "oracle")):
        h = np.asarray(t.frontier[key]["hull"]) if t.frontier[key]["hull"] else np.empty((0, 2))
        if len(h):
            xs, ys = densify(h[:, 0], h[:, 1])
            ax.plot(xs, ys, label=f"{label} (AIQ {t.frontier[key]['aiq']['paper']:.3f})", zorder=1, **style)
    vx = t.frontier["cross_family"]["vertices"]
    if vx:
        c = Curve(np.array([v["cost"] for v in vx]), np.array([v["quality"] for v in vx]))
        xs, ys = densify(c.cost, c.quality)
        ax.plot(xs, ys, color="tab:red", lw=1.4, label=f"cross-family hull (AIQ "
                f"{t.frontier['cross_family']['aiq']['paper']:.3f})", zorder=3)
    if t.verdict is not None:
        ax.scatter([t.verdict["test"]["cost"]], [t.verdict["test"]["quality"]], marker="*", s=220, color="gold",
                   edgecolor="black", zorder=5, label=f"recommended: {t.verdict['label']}"[:70])
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls=":", lw=1, label=f"budget {usd(budget)}/query")
    if quality is not None:
        ax.axhline(quality, color="tab:red", ls=":", lw=1, label=f"quality floor {quality:g}")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query on the test split (USD" + (", estimated" if costs_estimated else "")
                  + ", log scale)")
    ax.set_ylabel("mean quality on the test split (higher is better)")
    ax.set_title(f"plan: {t.task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
