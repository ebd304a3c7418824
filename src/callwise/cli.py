"""The ``callwise`` command. Each command is a thin layer over the Python API of the same name:

- ``callwise convert IN OUT.parquet``  -> :func:`callwise.load` + :func:`callwise.write_parquet`
- ``callwise info DATA``               -> :func:`callwise.load` (a summary of the table)
- ``callwise bench [DATA]``            -> :func:`callwise.split_outcomes` + :func:`callwise.bench`
- ``callwise fit DATA --policy P --save F.json`` -> :func:`callwise.fit_policy` + :func:`callwise.save_policy`
- ``callwise route F.json PROMPT...``   -> :func:`callwise.load_policy` + ``policy.route(prompts)``

Any :class:`~callwise.errors.CallwiseError` becomes one ``error:`` line on stderr and exit code 2;
nothing is written when an error occurs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional

import typer

from .errors import CallwiseError, DataError, PolicyError
from .io.files import json_default

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="callwise: spend LLM calls wisely. Evaluate routing and other call policies on recorded outcomes.")

FormatOpt = typer.Option(None, "--format", "-f", help="routerbench | long | rational-cascades | routellm (default: detect)")
MapOpt = typer.Option(None, "--map", help="Column mapping CANONICAL=ORIGINAL for long tables, repeatable (e.g. --map quality=correct)")
PricesOpt = typer.Option(None, "--prices", help="Price table (YAML/JSON) for data without costs, e.g. RouteLLM evals")
TrustOpt = typer.Option(False, "--trust-pickle", help="Allow loading pickles (unpickling runs code: only for files you trust)")
DropOpt = typer.Option(False, "--drop-incomplete", help="Drop prompts that lack some model of their task instead of failing")
RangeOpt = typer.Option(None, "--quality-range", help="Declared quality range LO,HI of the input (rescaled to [0, 1])")


def _parse_map(items: Optional[List[str]]) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DataError(f"--map expects CANONICAL=ORIGINAL, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _parse_range(text: Optional[str]) -> tuple[float, float]:
    if text is None:
        return (0.0, 1.0)
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise DataError(f"--quality-range expects LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def _load(path: Path, format: Optional[str], map_: Optional[List[str]], prices: Optional[Path], trust: bool,
          drop: bool, qrange: Optional[str]):
    from .io import load

    return load(path, format, mapping=_parse_map(map_), prices=prices, trust_pickle=trust,
                drop_incomplete=drop, quality_range=_parse_range(qrange))


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(code=2)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Input file or folder"),
    dst: Path = typer.Argument(..., help="Output .parquet (the canonical outcome table)"),
    format: Optional[str] = FormatOpt, map: Optional[List[str]] = MapOpt, prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Load recorded outcomes (any supported format) and write the canonical Parquet table."""
    try:
        if dst.suffix.lower() != ".parquet":
            raise DataError("the output must be a .parquet file", file=str(dst))
        table = _load(src, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        table.to_parquet(dst)
    except CallwiseError as e:
        _fail(e)
    typer.echo(f"wrote {dst}: {table!r}")


@app.command()
def info(
    data: Path = typer.Argument(..., help="Input file or folder"),
    format: Optional[str] = FormatOpt, map: Optional[List[str]] = MapOpt, prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Load recorded outcomes and print a summary per task and model."""
    from rich.console import Console
    from rich.table import Table

    try:
        t = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
    except CallwiseError as e:
        _fail(e)
    console = Console()
    console.print(f"{t!r}\nformat: {t.meta.get('format')}  fingerprint: {t.fingerprint()}  "
                  f"costs estimated: {t.costs_estimated}")
    for note in t.meta.get("notes", []):
        console.print(f"note: {note}")
    g = t.frame[t.frame["sample"] == 0].groupby(["task", "model"]).agg(
        prompts=("prompt_id", "nunique"), quality=("quality", "mean"), cost=("cost", "mean"))
    table = Table("task", "model", "prompts", "mean quality", "mean cost")
    for (task, model), r in g.iterrows():
        table.add_row(task, model, str(r.prompts), f"{r.quality:.4f}", f"${r.cost:.3e}")
    console.print(table)


@app.command()
def bench(
    data: Optional[Path] = typer.Argument(None, help="Recorded outcomes (file or folder); default: the bundled sample"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json and one PNG per task here"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded per-task split (default: the data's own split, else 0.7)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the random policies and the bootstrap"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test set (DATA is all train)"),
    policy: Optional[List[str]] = typer.Option(None, "--policy", help="Only these registered policies (repeatable)"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples for confidence intervals (0: none)"),
    format: Optional[str] = FormatOpt, map: Optional[List[str]] = MapOpt, prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Evaluate every registered policy against the single models, the zero router and the oracle."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import bench as run_bench
    from .bench import split_outcomes
    from .report import print_tables

    console = _console()
    try:
        if bootstrap < 0:
            raise DataError(f"--bootstrap must be >= 0, got {bootstrap}")
        if data is None:
            from .sample import load_sample, sample_path

            table = load_sample()
            console.print(f"no DATA given: using the bundled sample {sample_path().name} "
                          "(RouteLLM GSM8K + MT-Bench, costs estimated; see callwise/data/SAMPLE.md)")
        else:
            table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range)
                      if test is not None else None)
        train, test_t, info = split_outcomes(table, fraction=split, seed=seed, test=test_table)
        tasks = test_t.tasks()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = progress.add_task("bench", total=len(tasks))

            result = run_bench(train, test_t, policies=policy, n_boot=bootstrap, seed=seed,
                                     split_info=info, on_task=lambda t: (progress.update(bar, description=f"task {t}"),
                                                                         progress.advance(bar)))
    except CallwiseError as e:
        _fail(e)
    print_tables(result, console)
    if out is not None:
        _write_outputs(result, out)
        console.print(f"wrote {out / 'results.json'} and {len(result.tasks)} plot(s)")


def _console() -> Any:
    """A rich console; when output is not a terminal (a file, a pipe, CI logs) it is 110 columns wide."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=110)


def _parse_params(items: Optional[List[str]]) -> dict[str, Any]:
    """--param KEY=VALUE items; VALUE is read as JSON when it parses (numbers, true, lists), else as text."""
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise DataError(f"--param expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@app.command()
def fit(
    data: Path = typer.Argument(..., help="Recorded outcomes (file or folder)"),
    policy: str = typer.Option(..., "--policy", "-p", help="Registered policy: knn, linear, mlp, mf, threshold, ..."),
    save: Path = typer.Option(..., "--save", help="Write the fitted policy here (.json, with its arrays in .npz beside it)"),
    budget: Optional[float] = typer.Option(None, "--budget", help="Calibrate to this mean cost in dollars per query"),
    quality: Optional[float] = typer.Option(None, "--quality", help="Calibrate to the cheapest setting reaching this mean quality"),
    task: Optional[str] = typer.Option(None, "--task", help="Fit on this task only"),
    param: Optional[List[str]] = typer.Option(None, "--param", help="Policy setting KEY=VALUE, repeatable (e.g. --param features=embed)"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded split (default: the data's own split, else 0.7)"),
    no_holdout: bool = typer.Option(False, "--no-holdout", help="Fit on all the data (no held-out evaluation)"),
    test: Optional[Path] = typer.Option(None, "--test", help="Evaluate on this file/folder (DATA is all train)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, CV folds and bootstrap"),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the fit report (JSON) here"),
    format: Optional[str] = FormatOpt, map: Optional[List[str]] = MapOpt, prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Fit a policy on the training part of DATA, calibrate it to a budget or quality, evaluate it on the held-out part, save it."""
    from rich.console import Console

    from .fitting import fit_policy
    from .policy_io import save_policy

    console = Console()
    try:
        if save.suffix.lower() != ".json":
            raise DataError("the policy file must end in .json", file=str(save))
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range)
                      if test is not None else None)
        with console.status(f"fitting {policy} (cross-validation on the training split)..."):
            rep_ = fit_policy(table, policy, params=_parse_params(param), task=task, budget=budget, quality=quality,
                              fraction=split, holdout=not no_holdout, test=test_table, seed=seed)
        save_policy(rep_.policy, save, data=rep_.data)
        if report is not None:
            report.write_text(json.dumps(_finite(rep_.to_dict()), indent=1, default=json_default, allow_nan=False))
    except CallwiseError as e:
        _fail(e)
    _print_fit(rep_, console)
    console.print(f"wrote {save} and {save.with_suffix('.npz').name}")


def _print_fit(rep_: Any, console: Any) -> None:
    d = rep_.to_dict()
    console.print(f"policy {d['policy']} fitted on {d['data']['n_prompts']} prompts "
                  f"(split: {d['split'].get('method')}; data fingerprint {d['data']['fingerprint']})")
    cv = getattr(rep_.policy, "cv_", None)
    if cv:
        console.print(f"cross-validation ({cv['folds']} folds): chose {cv['chosen']}")
    cal = d["calibration"]
    if cal:
        console.print(f"calibrated {cal['knob']}={cal['value']:.6g} for {cal['goal']} {cal['target']:.6g}: "
                      f"calibration mean cost ${cal['calibration_cost']:.6g}, quality {cal['calibration_quality']:.4f} "
                      f"on {cal['n_prompts']} training prompts (out-of-fold)")
    t = d["test"]
    if t:
        lv = f"{t['level']:.0%}"
        console.print(f"held-out ({t['n_prompts']} prompts): mean cost ${t['cost']:.6g} "
                      f"[{lv} CI {t['cost_ci'][0]:.6g}, {t['cost_ci'][1]:.6g}], quality {t['quality']:.4f} "
                      f"[{t['quality_ci'][0]:.4f}, {t['quality_ci'][1]:.4f}]")
        b = t["best_single_model"]
        console.print(f"best single model {b['model']}: cost ${b['cost']:.6g}, quality {b['quality']:.4f}")
    for n in d["notes"]:
        console.print(f"note: {n}")


@app.command()
def route(
    policy_file: Path = typer.Argument(..., help="A policy saved by `callwise fit --save`"),
    prompt: List[str] = typer.Argument(..., help="One or more prompts to route"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per prompt) instead of a table"),
) -> None:
    """Print the model a saved policy chooses for each prompt, with its predicted qualities and costs."""
    from rich.console import Console
    from rich.table import Table

    from .policy_io import load_policy

    try:
        pol = load_policy(policy_file)
        if not hasattr(pol, "route"):
            raise DataError(f"policy {pol.name!r} does not route single prompts", file=str(policy_file))
        routes = pol.route(prompt).to_dicts()
    except CallwiseError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(routes if len(routes) > 1 else routes[0], indent=1))
        return
    console = Console()
    for text, r in zip(prompt, routes):
        console.print(f"[bold]{r['model']}[/bold]  <- {text[:80]!r}")
        t = Table("model", "predicted quality", "expected cost")
        for m, qv in r["predicted_quality"].items():
            mark = " *" if m == r["model"] else ""
            t.add_row(m + mark, f"{qv:.4f}", f"${r['expected_cost'][m]:.3e}")
        console.print(t)


def _write_outputs(result: Any, out: Path, plots: Any = None) -> None:
    """Write results.json and the plots (``plots(result, folder)``, bench's by default) into a
    temporary folder, then move them into ``out``."""
    from .report import write_plots

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".callwise-"))
    try:
        payload = _finite(result.to_dict())
        (tmp / "results.json").write_text(json.dumps(payload, indent=1, allow_nan=False, default=json_default))
        (plots or write_plots)(result, tmp)
        for f in tmp.iterdir():
            dest = out / f.name
            if f.is_dir() and dest.is_dir():
                shutil.rmtree(dest)
            os.replace(f, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@app.command()
def cascade(
    data: Path = typer.Argument(..., help="Recorded outcomes with a confidence per answer (file or folder)"),
    small: Optional[str] = typer.Option(None, "--small", help="The small (cheap) model of the pair"),
    large: Optional[str] = typer.Option(None, "--large", help="The large model of the pair"),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="Every (small, large) pair where the small is cheaper, per task"),
    chain: bool = typer.Option(False, "--chain", help="Also each task's full chain (3+ models, cheapest first) as an n-tier cascade"),
    task: Optional[List[str]] = typer.Option(None, "--task", help="Only these tasks (repeatable)"),
    signal: str = typer.Option("recorded", "--signal", help="Confidence signal of the cascade: recorded | agreement"),
    method: Optional[List[str]] = typer.Option(None, "--method", help="Only these methods (repeatable; default all)"),
    budgets: int = typer.Option(100, "--budgets", help="Budgets evenly from c_S to c_S + c_L"),
    orders: int = typer.Option(3, "--orders", help="Random orders of the test stream to average over"),
    warmup: int = typer.Option(20, "--warmup", help="Streaming: queries seen before the first escalation"),
    features: Optional[str] = typer.Option(None, "--features", help="Features of the learned baselines (default tfidf:svd=exact)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, curves/*.png and summary.png here"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded per-task split (default: the data's own split, else 0.7)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the stream orders and tie-breaking"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test set (DATA is all calibration/train)"),
    format: Optional[str] = FormatOpt, map: Optional[List[str]] = MapOpt, prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Uncertainty cascades under a budget: the confidence cascade against learned and random baselines."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import split_outcomes
    from .cascade_eval import METHODS, plan_cascades, run_cascades
    from .report import print_cascade_tables, write_cascade_plots

    console = _console()
    try:
        if (small is None) != (large is None):
            raise PolicyError("give both --small and --large, or neither (with --all-pairs / --chain)")
        for name, v, least in (("--budgets", budgets, 2), ("--orders", orders, 1), ("--warmup", warmup, 0)):
            if v < least:
                raise PolicyError(f"{name} must be >= {least}, got {v}")
        if signal not in ("recorded", "agreement"):
            raise PolicyError(f"--signal must be 'recorded' or 'agreement' (recorded data has no logprob payloads "
                              f"for 'margin'), got {signal!r}")
        methods = tuple(method) if method else METHODS
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range)
                      if test is not None else None)
        train, test_t, info = split_outcomes(table, fraction=split, seed=seed, test=test_table)
        pairs = [(small, large)] if small is not None and large is not None else None
        plan = plan_cascades(train, test_t, pairs=pairs, all_pairs=all_pairs, chains=chain, tasks=task)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = progress.add_task("cascade", total=len(plan))
            run = run_cascades(train, test_t, pairs=pairs, all_pairs=all_pairs, chains=chain, tasks=task,
                               signal=signal, methods=methods, n_budgets=budgets, n_orders=orders, warmup=warmup,
                               seed=seed, features=features, split_info=info,
                               on_item=lambda d: (progress.update(bar, description=d), progress.advance(bar)))
    except CallwiseError as e:
        _fail(e)
    print_cascade_tables(run, console)
    if out is not None:
        _write_outputs(run, out, write_cascade_plots)
        console.print(f"wrote {out / 'results.json'} and the plots under {out}")


def _finite(o: Any) -> Any:
    """The same structure with NaN and infinities as null (JSON has no NaN)."""
    import math

    import numpy as np

    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    return o


def main() -> None:
    try:
        app()
    except CallwiseError as e:  # pragma: no cover - commands catch their own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
