"""The ``callwise`` command. Each command is a thin layer over the Python API of the same name:

- ``callwise convert IN OUT.parquet``  -> :func:`callwise.load` + :func:`callwise.write_parquet`
- ``callwise info DATA``               -> :func:`callwise.load` (a summary of the table)
- ``callwise bench [DATA]``            -> :func:`callwise.split_outcomes` + :func:`callwise.bench`
- ``callwise plan DATA --budget B | --quality Q`` -> :func:`callwise.plan` (one verdict across every family)
- ``callwise fit DATA --policy P --save F.json`` -> :func:`callwise.fit_policy` + :func:`callwise.save_policy`
- ``callwise route F.json PROMPT...``   -> :func:`callwise.load_policy` + ``policy.route(prompts)``
- ``callwise scale DATA --model M``     -> :func:`callwise.voting.curves.scale` (vote accuracy against K, best K)
- ``callwise aggregate DATA --metric mae`` -> :func:`callwise.aggregation.comparison.evaluate` (which way of combining samples wins per metric)
- ``callwise run F.json PROMPTS.jsonl --out O.parquet`` -> :func:`callwise.live.runs.run_policy` on a :class:`~callwise.live.backend.Live` backend
- ``callwise collect M1,M2 PROMPTS.jsonl --out O.parquet`` -> :func:`callwise.live.runs.collect`
- ``callwise serve F.json ...``         -> :class:`callwise.live.server.PolicyServer` (FastAPI + uvicorn)
- ``callwise replay-server DATA``       -> :func:`callwise.live.replay_server.build_replay_app`
- ``callwise cache stats|clear``        -> :class:`callwise.live.cache.ResponseCache`

Any :class:`~callwise.core.errors.CallwiseError` becomes one ``error:`` line on stderr and exit code 2;
nothing is written when an error occurs.

Long commands show a progress bar over units of real work (policies, folds, pairs x budgets, rules,
bootstrap chunks, prompts), fed by the API's ``on_progress(done, total, what)``
(:mod:`callwise.core.progress`). ``callwise --quiet CMD`` drops the bars and the informational lines
(what was written, which data was used) and keeps the tables, warnings and errors; ``callwise --verbose
CMD`` also prints each finished unit with its time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from .core.errors import CallwiseError, DataError, PolicyError


def json_default(o: Any) -> Any:
    """numpy scalars and arrays in JSON (:func:`callwise.core.files.json_default`, imported on first use:
    ``callwise --help`` does not load numpy or pandas)."""
    from .core.files import json_default as default

    return default(o)


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="callwise: spend LLM calls wisely. Evaluate routing and other call policies on recorded outcomes.")



def _version(value: bool) -> None:
    if value:
        from .core.version import __version__

        typer.echo(f"callwise {__version__}")
        raise typer.Exit()


#: Set by the root options: ``--quiet`` (no progress bars, no informational lines: the tables, warnings and
#: errors still print) and ``--verbose`` (also one line per unit of work with its time).
_CHATTER = {"quiet": False, "verbose": False}


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print callwise's version and exit"),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no informational lines "
                                     "(which files were written, which data was used); tables, warnings and errors "
                                     "still print. Give it before the command: callwise --quiet bench"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print each unit of work as it finishes "
                                       "(each policy's fit and run, fold, pair, bootstrap chunk) with its time")) -> None:
    """callwise: spend LLM calls wisely. Evaluate routing and other call policies on recorded outcomes."""
    if quiet and verbose:
        _fail(DataError("give --quiet or --verbose, not both"))
    _CHATTER.update(quiet=quiet, verbose=verbose)


def _info(console: Any, text: str) -> None:
    """An informational line (not a result): left out under --quiet."""
    if not _CHATTER["quiet"]:
        console.print(text, highlight=False, markup=False)


@contextmanager
def _work(console: Any, label: str, total: Optional[int] = None, every: int = 1) -> Iterator[Any]:
    """A progress bar over units of real work, advanced by the ``on_progress(done, total, what)`` it
    yields (the callback the API functions take; :mod:`callwise.core.progress`). Under --quiet it
    yields None (the API then counts nothing); under --verbose each finished unit is also printed with
    the seconds it took (``every``: only every so many units, for per-call counts)."""
    if _CHATTER["quiet"]:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=total)
        last = [time.perf_counter(), 0]

        def on_progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what[:80])
            if _CHATTER["verbose"] and (done - last[1] >= every or done >= total):
                now = time.perf_counter()
                bar.console.print(f"{label} [{done}/{total}] {what}: {now - last[0]:.2f} s", highlight=False,
                                  markup=False)
                last[0], last[1] = now, done

        yield on_progress


def _per_unit(on_progress: Any, total: int, unit: str) -> Any:
    """``progress(n)`` (n more units done, as the live runs report) over ``on_progress``."""
    if on_progress is None:
        return None
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        on_progress(done[0], total, f"{done[0]:,} {unit}")

    return progress


FormatOpt = typer.Option(None, "--input-format", "-f", help="Data format: routerbench | long | rational-cascades | routellm | mot | routerdc | llmrouter (default: detect)")
OutputOpt = typer.Option(None, "--format", help="Output of the tables: table | csv | json | md (default table; csv, json "
                         "and md go to stdout, everything else to stderr). An input format name here still sets "
                         "--input-format (deprecated)")
LegacyFormatOpt = typer.Option(None, "--format", hidden=True, help="Deprecated: the data format is --input-format")
MapOpt = typer.Option(None, "--map", help="Column mapping CANONICAL=ORIGINAL for long tables, repeatable (e.g. --map quality=correct)")
PricesOpt = typer.Option(None, "--prices", help="Price table (YAML/JSON, or LLMRouter's default_llm.json) for data without costs (RouteLLM evals, RouterDC) or with token columns")
TrustOpt = typer.Option(False, "--trust-pickle", help="Allow loading pickles (unpickling runs code: only for files you trust)")
DropOpt = typer.Option(False, "--drop-incomplete", help="Drop prompts that lack some model of their task instead of failing")
RangeOpt = typer.Option(None, "--quality-range", help="Declared quality range LO,HI of the input (rescaled to [0, 1])")


def _commas(items: Optional[List[str]]) -> Optional[List[str]]:
    """A repeatable list option also takes comma lists: ``--task a,b`` is ``--task a --task b``."""
    if items is None:
        return None
    return [x.strip() for it in items for x in it.split(",") if x.strip()]


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
          drop: bool, qrange: Optional[str], columns: Optional[frozenset[str]] = None):
    """``load``, with the command's optional columns (None: all): see ``load(columns=...)``."""
    from .io import load

    return load(path, format, mapping=_parse_map(map_), prices=prices, trust_pickle=trust,
                drop_incomplete=drop, quality_range=_parse_range(qrange), columns=columns)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(code=2)


def _formats(input_format: Optional[str], output: Optional[str], tables: bool = True) -> tuple[Optional[str], str]:
    """(data format, output format) from --input-format and --format. ``--format table|csv|json|md`` is the
    output; any other value of --format is the data format as before (one deprecation line on stderr)."""
    from .evaluation.tables import OUTPUT_FORMATS

    if output is None:
        return input_format, "table"
    if output in OUTPUT_FORMATS:
        if not tables:
            _fail(DataError(f"this command prints no table, so --format {output} does not apply; the data format "
                            "is --input-format"))
        return input_format, output
    if input_format is not None and input_format != output:
        _fail(DataError(f"--format {output!r} reads as a data format but --input-format says {input_format!r}; give "
                        "the data format once, with --input-format (--format takes table, csv, json or md)"))
    typer.echo(f"note: --format {output} as the data format is deprecated: use --input-format {output} "
               "(--format now chooses the output: table, csv, json or md)", err=True)
    return output, "table"


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Input file or folder"),
    dst: Path = typer.Argument(..., help="Output .parquet (the canonical outcome table)"),
    format: Optional[str] = FormatOpt, legacy_format: Optional[str] = LegacyFormatOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Load recorded outcomes (any supported format) and write the canonical Parquet table."""
    format, _ = _formats(format, legacy_format, tables=False)
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
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Load recorded outcomes and print a summary per task and model."""
    from .evaluation.report import print_info

    format, output = _formats(format, output)
    try:
        t = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
    except CallwiseError as e:
        _fail(e)
    print_info(t, _console(output), output)


@app.command()
def bench(
    data: Optional[Path] = typer.Argument(None, help="Recorded outcomes (file or folder); default: the bundled sample"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, report.html and one PNG per task here"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded per-task split (default: the data's own split, else 0.7)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the random policies and the bootstrap"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test set (DATA is all train)"),
    policy: Optional[List[str]] = typer.Option(None, "--policy", callback=_commas, help="Only these registered policies (repeatable)"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples for confidence intervals (0: none)"),
    oracle: str = typer.Option("callwise", "--oracle", help="Oracle convention: callwise (an unsolved prompt goes to the cheapest model) | routerbench (it costs nothing)"),
    axis: str = typer.Option("cost", "--axis", help="cost | latency: also place every policy in the quality-latency plane (hulls, AIQ, a PNG per task)"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Local processes for the independent units (task x policy fits, bootstrap chunks); same results as 1"),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the units as Ray tasks: --ray alone starts a local cluster (or joins $RAY_ADDRESS), --ray HOST:PORT joins one; same results (docs/scale.md)"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Evaluate every registered policy against the single models, the zero router and the oracle."""
    from .core.split import split_outcomes
    from .evaluation.bench import bench as run_bench
    from .evaluation.bench import bench_columns
    from .evaluation.report import print_tables

    format, output = _formats(format, output)
    console = _console(output)
    try:
        if bootstrap < 0:
            raise DataError(f"--bootstrap must be >= 0, got {bootstrap}")
        columns = bench_columns(policy)  # only the optional columns these policies read
        if data is None:
            from .io import load_sample, sample_path

            table = load_sample()
            _info(console, f"no DATA given: using the bundled sample {sample_path().name} "
                  "(RouteLLM GSM8K + MT-Bench, costs estimated; see callwise/io/data/SAMPLE.md)")
        else:
            table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
                      if test is not None else None)
        train, test_t, info = split_outcomes(table, fraction=split, seed=seed, test=test_table)
        with _work(console, "bench") as on_progress:
            result = run_bench(train, test_t, policies=policy, n_boot=bootstrap, seed=seed, oracle=oracle, axis=axis,
                               split_info=info, on_progress=on_progress, jobs=jobs, ray=ray)
    except CallwiseError as e:
        _fail(e)
    print_tables(result, console, output)
    if out is not None:
        _write_outputs(result, out)
        _info(console, f"wrote {out / 'results.json'}, report.html and {len(result.tasks)} plot(s)")


@app.command()
def plan(
    data: Path = typer.Argument(..., help="Recorded outcomes (file or folder)"),
    budget: Optional[float] = typer.Option(None, "--budget", help="Dollars per query the choice must keep (with --risk)"),
    quality: Optional[float] = typer.Option(None, "--quality", help="Mean quality the choice must reach (with --risk), at least cost"),
    out: Path = typer.Option(..., "--out", "-o", help="Write results.json, report.html, the recommended policy file(s) and one PNG per task here"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test set (DATA is all train)"),
    task: Optional[List[str]] = typer.Option(None, "--task", callback=_commas, help="Only these tasks (repeatable; default all)"),
    risk: float = typer.Option(0.05, "--risk", help="Chance the budget (or floor) may be missed on the next queries"),
    bound: str = typer.Option("t", "--bound", help="t (prediction bound over --horizon queries) | bernstein (distribution-free, long-run mean)"),
    horizon: str = typer.Option("test", "--horizon", help="Queries the mean is kept over: test (the test split's size), a number, or inf"),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds inside the training split"),
    metric: Optional[str] = typer.Option(None, "--metric", help="Also compare metric-aware aggregation for this metric (needs samples)"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="The model you use today (default: the best single model on train)"),
    candidate: Optional[List[str]] = typer.Option(None, "--candidate", callback=_commas, help="Only these candidates or families (repeatable): single, zero, router, cascade, knn, ..."),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded per-task split (default: the data's own split, else 0.7)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the folds and the bootstrap"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples of the test prompts for the intervals"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Local processes for the independent units (candidate fits, task x fold x candidate, test runs); same plan as 1"),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run the units as Ray tasks: --ray alone starts a local cluster (or joins $RAY_ADDRESS), --ray HOST:PORT joins one; same plan (docs/scale.md)"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """What to run on this traffic under a budget or quality floor, across every family, and what it saves."""
    from .plan import plan as run_plan
    from .plan.candidates import plan_columns
    from .plan.report import print_plan, write_plan_files

    format, output = _formats(format, output)
    console = _console(output)
    try:
        if bootstrap < 1:
            raise DataError(f"--bootstrap must be >= 1, got {bootstrap}")
        try:
            hz: Any = horizon if horizon == "test" else float(horizon)
        except ValueError:
            raise DataError(f"--horizon must be 'test', a number of queries or inf, got {horizon!r}") from None
        columns = plan_columns(candidate, metric)  # only the optional columns these candidates read
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
                      if test is not None else None)
        with _work(console, "plan") as on_progress:
            result = run_plan(table, test=test_table, split=split, tasks=task, budget=budget, quality=quality,
                              risk=risk, bound=bound, horizon=hz, folds=folds, seed=seed, metric=metric,
                              baseline=baseline, candidates=candidate, n_boot=bootstrap, on_progress=on_progress,
                              jobs=jobs, ray=ray)
    except CallwiseError as e:
        _fail(e)
    print_plan(result, console, output)
    _write_outputs(result, out, plots=write_plan_files)
    _info(console, f"wrote {out / 'results.json'}, the recommended policy file(s) and {len(result.tasks)} plot(s)")


def _console(fmt: str = "table") -> Any:
    """A rich console as wide as the terminal, or $COLUMNS where set; off a terminal without $COLUMNS,
    240 columns (tables wider than the console are split into panels, never cut). With --format csv,
    json or md it writes to stderr, so stdout holds the tables only."""
    from rich.console import Console

    err = fmt != "table"
    stream = sys.stderr if err else sys.stdout
    if os.environ.get("COLUMNS", "").strip().isdigit() or stream.isatty():
        return Console(stderr=err)
    return Console(stderr=err, width=240)


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
    format: Optional[str] = FormatOpt, legacy_format: Optional[str] = LegacyFormatOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Fit a policy on the training part of DATA, calibrate it to a budget or quality, evaluate it on the held-out part, save it."""
    from .core.policy import columns_read_by
    from .core.policy_files import save_policy
    from .evaluation.fit import fit_policy

    format, _ = _formats(format, legacy_format, tables=False)
    console = _console()
    try:
        if save.suffix.lower() != ".json":
            raise DataError("the policy file must end in .json", file=str(save))
        columns = columns_read_by([policy])  # only the optional columns this policy reads
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range, columns)
                      if test is not None else None)
        with _work(console, f"fit {policy}") as on_progress:
            rep_ = fit_policy(table, policy, params=_parse_params(param), task=task, budget=budget, quality=quality,
                              fraction=split, holdout=not no_holdout, test=test_table, seed=seed,
                              on_progress=on_progress)
        save_policy(rep_.policy, save, data=rep_.data)
        if report is not None:
            report.write_text(json.dumps(_finite(rep_.to_dict()), indent=1, default=json_default, allow_nan=False))
    except CallwiseError as e:
        _fail(e)
    _print_fit(rep_, console)
    _info(console, f"wrote {save} and {save.with_suffix('.npz').name}")


def _print_fit(rep_: Any, console: Any) -> None:
    from .evaluation.tables import per_1k, usd

    d = rep_.to_dict()
    console.print(f"policy {d['policy']} fitted on {d['data']['n_prompts']} prompts "
                  f"(split: {d['split'].get('method')}; data fingerprint {d['data']['fingerprint']})")
    cv = getattr(rep_.policy, "cv_", None)
    if cv:
        console.print(f"cross-validation ({cv['folds']} folds): chose {cv['chosen']}")
    cal = d["calibration"]
    if cal:
        goal = (f"{usd(cal['target'])}/query" if cal["goal"] == "budget" else f"{cal['target']:.4g}")
        console.print(f"calibrated {cal['knob']}={cal['value']:.6g} for {cal['goal']} {goal}: "
                      f"calibration mean cost {per_1k(cal['calibration_cost'])} per 1k queries, quality "
                      f"{cal['calibration_quality']:.4f} on {cal['n_prompts']:,} training prompts (out-of-fold)",
                      highlight=False)
    t = d["test"]
    if t:
        lv = f"{t['level']:.0%}"
        console.print(f"held-out ({t['n_prompts']} prompts): mean cost {per_1k(t['cost'])} per 1k queries "
                      f"[{lv} CI {per_1k(t['cost_ci'][0])}, {per_1k(t['cost_ci'][1])}], quality {t['quality']:.4f} "
                      f"[{t['quality_ci'][0]:.4f}, {t['quality_ci'][1]:.4f}]", highlight=False, markup=False)
        b = t["best_single_model"]
        console.print(f"best single model {b['model']}: {per_1k(b['cost'])} per 1k queries, quality "
                      f"{b['quality']:.4f}", highlight=False)
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

    from .core.policy_files import load_policy
    from .evaluation.tables import per_1k

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
        t = Table("model", "predicted quality", "expected $/1k queries")
        for m, qv in r["predicted_quality"].items():
            mark = " *" if m == r["model"] else ""
            t.add_row(m + mark, f"{qv:.4f}", per_1k(r["expected_cost"][m]))
        console.print(t)


def _write_outputs(result: Any, out: Path, plots: Any = None) -> None:
    """Write results.json, report.html (its tables and interactive plots, built from the payload as
    written) and the plots (``plots(result, folder)``, bench's by default) into a temporary folder,
    then move them into ``out``."""
    from .evaluation.html_report import write_report
    from .evaluation.report import write_plots

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".callwise-"))
    try:
        payload = _finite(result.to_dict())
        text = json.dumps(payload, indent=1, allow_nan=False, default=json_default)
        (tmp / "results.json").write_text(text)
        try:
            write_report(json.loads(text), tmp / "report.html")
        except Exception as e:  # the page only shows results.json: a fault in it must not lose the results
            if os.environ.get("CALLWISE_STRICT_REPORT"):  # tests: a page that fails is a failure, not a warning
                raise
            typer.echo(f"warning: report.html not written ({type(e).__name__}: {e})", err=True)
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
    task: Optional[List[str]] = typer.Option(None, "--task", callback=_commas, help="Only these tasks (repeatable)"),
    signal: str = typer.Option("recorded", "--signal", help="Confidence signal of the cascade: recorded | agreement"),
    method: Optional[List[str]] = typer.Option(None, "--method", callback=_commas, help="Only these methods (repeatable; default all)"),
    budgets: int = typer.Option(100, "--budgets", help="Budgets evenly over the range (paper: c_S to c_L; extended: to c_S + c_L)"),
    range_: str = typer.Option("paper", "--range", help="paper (the authors' protocol: c_S to c_L, three-branch stream, their random mix) | extended (c_S to c_S + c_L, guarded stream)"),
    cost_mode: str = typer.Option("dollars", "--cost-mode", help="Paper protocol: price calls in recorded dollars | time (mean recorded latency)"),
    cost_ratio: Optional[str] = typer.Option(None, "--cost-ratio", help="Paper protocol: fixed costs 1:R (c_S = 1, c_L = R for every call), as in the paper's setups"),
    orders: int = typer.Option(3, "--orders", help="Random orders of the test stream to average over"),
    warmup: int = typer.Option(20, "--warmup", help="Streaming: queries seen before the first escalation"),
    features: Optional[str] = typer.Option(None, "--features", help="Features of the learned baselines (default tfidf:svd=auto: the exact SVD up to 1,000 texts, randomized above)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, report.html, curves/*.png and summary.png here"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded per-task split (default: the data's own split, else 0.7)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the stream orders and tie-breaking"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test set (DATA is all calibration/train)"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Uncertainty cascades under a budget: the confidence cascade against learned and random baselines."""
    from .cascades.protocol import METHODS, PROTOCOLS, run_cascades
    from .core.split import split_outcomes
    from .evaluation.report import print_cascade_tables, write_cascade_plots

    format, output = _formats(format, output)
    console = _console(output)
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
        if range_ not in PROTOCOLS:
            raise PolicyError(f"--range must be one of {list(PROTOCOLS)}, got {range_!r}")
        ratio = _cost_ratio(cost_ratio) if cost_ratio is not None else None
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        test_table = (_load(test, format, map, prices, trust_pickle, drop_incomplete, quality_range)
                      if test is not None else None)
        train, test_t, info = split_outcomes(table, fraction=split, seed=seed, test=test_table)
        pairs = [(small, large)] if small is not None and large is not None else None
        with _work(console, "cascade") as on_progress:
            run = run_cascades(train, test_t, pairs=pairs, all_pairs=all_pairs, chains=chain, tasks=task,
                               signal=signal, methods=methods, n_budgets=budgets, n_orders=orders, warmup=warmup,
                               seed=seed, features=features, split_info=info, protocol=range_,
                               cost_mode=cost_mode, cost_ratio=ratio, on_progress=on_progress)
    except CallwiseError as e:
        _fail(e)
    print_cascade_tables(run, console, output)
    if out is not None:
        _write_outputs(run, out, write_cascade_plots)
        _info(console, f"wrote {out / 'results.json'} and the plots under {out}")


def _cost_ratio(text: str) -> float:
    """``1:R`` (or ``R``) -> R, the large model's cost in units of the small one's."""
    head, sep, tail = text.partition(":")
    try:
        if sep and float(head) != 1.0:
            raise ValueError
        r = float(tail if sep else head)
    except ValueError:
        raise PolicyError(f"--cost-ratio must read 1:R with a number R > 1 (e.g. 1:10), got {text!r}") from None
    if not r > 1 or r != r or r == float("inf"):
        raise PolicyError(f"--cost-ratio must read 1:R with a number R > 1 (e.g. 1:10), got {text!r}")
    return r


@app.command()
def scale(
    data: Path = typer.Argument(..., help="Recorded outcomes with several samples (and answers) per prompt"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model whose samples are voted on (default: the data's only model)"),
    task: Optional[str] = typer.Option(None, "--task", help="The task (needed when the model has several)"),
    few: int = typer.Option(4, "--few", help="Samples per prompt the prediction is fitted on"),
    k_max: int = typer.Option(1000, "--k-max", help="Largest K of the fitted and predicted curves"),
    normalise: str = typer.Option("text", "--normalise", help="Answer normaliser: text | number | choice | date | none"),
    reps: int = typer.Option(400, "--reps", help="Monte Carlo draws per prompt where no exact formula applies"),
    tpr: float = typer.Option(0.9, "--tpr", help="Filter-Vote's simulated judge: chance to keep a right answer"),
    fpr: float = typer.Option(0.2, "--fpr", help="Filter-Vote's simulated judge: chance to keep a wrong answer"),
    ranker_accuracy: float = typer.Option(0.8, "--ranker-accuracy", help="Best-of-K's noisy ranker: chance to pick the best"),
    seed: int = typer.Option(0, "--seed", help="Seed of the Monte Carlo draws and the bootstrap"),
    fit_grid: str = typer.Option("paper", "--fit-grid", help="K values the scaling model is fitted at: paper (2..100) | authors-code (1, 10, ..., 10000)"),
    ties: str = typer.Option("scale", "--ties", help="A prompt whose answer ties for the mode: scale (fit m x accuracy, predict /m: the authors') | raw"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, report.html and scale.png here"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """How vote accuracy scales with the number of calls K: empirical, fitted and predicted curves and the best K."""
    from .evaluation.report import print_scale, write_scale_plots
    from .voting.curves import scale as run_scale

    format, output = _formats(format, output)
    console = _console(output)
    try:
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        with _work(console, "scale") as on_progress:
            result = run_scale(table, model, task=task, n_few=few, k_max=k_max, reps=reps, seed=seed,
                               fit_grid=fit_grid, ties=ties,
                               normalise=normalise, tpr=tpr, fpr=fpr, ranker_accuracy=ranker_accuracy,
                               on_progress=on_progress)
    except CallwiseError as e:
        _fail(e)
    print_scale(result, console, output)
    if out is not None:
        _write_outputs(result, out, write_scale_plots)
        _info(console, f"wrote {out / 'results.json'} and {out / 'scale.png'}")


@app.command()
def aggregate(
    data: Optional[Path] = typer.Argument(None, help="Recorded outcomes with several samples and a reference per prompt"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", callback=_commas, help="Metric, repeatable: mse | mae | exact-match | "
                                               "pinball:TAU | token-f1 | rouge-l | bleu | chrf | closeness | pearson | "
                                               "spearman (default: mse, mae, exact-match)"),
    n: int = typer.Option(8, "--n", help="Samples combined per prompt"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model whose samples are combined (default: "
                                        "the one with the most samples)"),
    task: Optional[List[str]] = typer.Option(None, "--task", callback=_commas, help="Task(s) to evaluate, repeatable (default: all of the model's)"),
    rule: Optional[List[str]] = typer.Option(None, "--rule", help="Extra rule(s) beyond the defaults, e.g. quantile:0.9, mbr:rouge-l"),
    draws: str = typer.Option("with-replacement", "--draws", help="with-replacement | without-replacement | first"),
    reps: int = typer.Option(200, "--reps", help="Random draws of n samples per prompt"),
    seed: int = typer.Option(0, "--seed", help="Seed of the draws and the bootstrap"),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use the synthetic suite (known distributions, with the "
                                   "Bayes-optimal rule as 'oracle') instead of DATA"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, report.html and aggregate.png here"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Which way of combining a model's samples (mean, median, mode, MBR, ...) wins under which metric."""
    from .aggregation.comparison import evaluate, synthetic_suite
    from .evaluation.report import print_aggregate, write_aggregate_plots

    format, output = _formats(format, output)
    console = _console(output)
    metrics = metric or ["squared-error", "absolute-error", "exact-match"]
    try:
        if synthetic == (data is not None):
            raise DataError("give DATA or --synthetic (not both)")
        oracle = None
        if synthetic:
            table, oracle = synthetic_suite(metrics, seed=seed)
        else:
            table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)  # type: ignore[arg-type]
        with _work(console, "aggregate") as on_progress:
            result = evaluate(table, metrics, model=model, tasks=task, n=n, draws=draws, reps=reps, seed=seed,
                              rules=rule or (), oracle=oracle, on_progress=on_progress)
    except CallwiseError as e:
        _fail(e)
    print_aggregate(result, console, output)
    if out is not None:
        _write_outputs(result, out, write_aggregate_plots)
        _info(console, f"wrote {out / 'results.json'} and {out / 'aggregate.png'}")


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


# -- live: run, collect, serve, replay-server, cache -----------------------------------------------------

ApiBaseOpt = typer.Option(None, "--api-base", help="Every model behind this OpenAI-compatible base URL (key from $CALLWISE_UPSTREAM_API_KEY)")
EndpointsOpt = typer.Option(None, "--endpoints", help="YAML mapping each model to its provider, key variable, limits and fallback")
LivePricesOpt = typer.Option(None, "--prices", help="Price overrides (YAML/JSON, USD per 1M tokens) over LiteLLM's price map")
ProviderCostOpt = typer.Option(False, "--provider-costs", help="Take every call's cost from the provider's usage.cost (no price needed)")
CacheOpt = typer.Option(None, "--cache", help="Response cache file (default: $CALLWISE_CACHE_DIR/responses.sqlite or ~/.cache/callwise)")
NoCacheOpt = typer.Option(False, "--no-cache", help="Do not read or write the response cache")
TransportOpt = typer.Option("litellm", "--transport", help="litellm (any provider) | http (lean client, OpenAI-compatible --api-base only)")
ConcurrencyOpt = typer.Option(32, "--concurrency", help="Concurrent requests per model (with --api-base)")
TimeoutOpt = typer.Option(60.0, "--timeout", help="Seconds per request (with --api-base)")
RetriesOpt = typer.Option(3, "--retries", help="Retries on retryable errors (with --api-base)")
RayJobOpt = typer.Option(None, "--ray", help="Run in shards on Ray: --ray alone starts a local cluster (or joins "
                         "$RAY_ADDRESS), --ray HOST:PORT joins one; finished shards are kept in OUT.shards/ and a "
                         "re-run of the same job skips them (docs/scale.md)")
ShardSizeOpt = typer.Option(None, "--shard-size", help="Prompts per Ray shard (with --ray; default 512; for run a "
                            "multiple of 256, the policy's chunk)")


def _ray_job(ray: Optional[str], shard_size: Optional[int], out: Path) -> dict[str, Any]:
    """The run/collect arguments of ``--ray`` / ``--shard-size`` (shards beside the output: OUT.shards/)."""
    if ray is None:
        if shard_size is not None:
            raise DataError("--shard-size splits a Ray job: give --ray too", column="shard_size")
        return {}
    return {"ray": ray, "shard_size": shard_size, "shards": out.with_suffix(".shards")}


def _ray_note(result: Any, console: Any) -> None:
    r = result.summary.get("ray")
    if r:
        _info(console, f"ray: {r['shards']} shards, {r['ran']} run now, {r['skipped']} already done in {r['folder']}")


def _live(models: List[str], api_base: Optional[str], endpoints: Optional[Path], prices: Optional[Path],
          provider_costs: bool, cache: Optional[Path], no_cache: bool, transport: str = "litellm",
          concurrency: int = 32, timeout: float = 60.0, retries: int = 3) -> Any:
    """The live backend the options describe (endpoints cover ``models``)."""
    from .live.backend import Live, endpoints_for_base, load_endpoints
    from .live.cache import ResponseCache
    from .live.prices import LivePrices

    if (api_base is None) == (endpoints is None):
        raise DataError("give the upstream: --api-base URL (every model behind one OpenAI-compatible server) or "
                        "--endpoints FILE (each model's provider)")
    if api_base is not None:
        eps = endpoints_for_base(models, api_base, transport=transport, max_concurrency=concurrency, timeout=timeout,
                                 max_retries=retries)
    else:
        eps = load_endpoints(endpoints)  # type: ignore[arg-type]
        missing = [m for m in models if m not in eps]
        if missing:
            raise DataError(f"model(s) {missing} are not in the endpoints file; it has {sorted(eps)}", file=str(endpoints),
                            column="models")
    rc = None if no_cache else ResponseCache(cache)
    return Live(eps, cache=rc, prices=LivePrices(prices, provider_only=provider_costs))


@app.command()
def allocate(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (nodes, or 'builtin: ensemble-vote' with its options)"),
    data: Path = typer.Argument(..., help="Questions: recorded outcomes (their answers score an ensemble vote "
                                "exactly; their reference column, or the answers graded correct, give the gold)"),
    method: str = typer.Option("llmselector", "--method", help="llmselector | llmselector-2stage | coordinate | random | exhaustive | single"),
    budget_evals: Optional[int] = typer.Option(None, "--budget-evals", help="Most allocations scored on the training "
                                               "questions (the baselines get what the method used)"),
    alpha: float = typer.Option(0.0, "--alpha", help="Weight of the LLM diagnoser's verdict (0: none, the authors' default)"),
    diagnoser: Optional[str] = typer.Option(None, "--diagnoser", help="Model that diagnoses module errors (needs --alpha > 0 or --method llmselector-2stage, and a backend)"),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", callback=_commas, help="Candidate models, repeatable (default: the data's)"),
    task: Optional[List[str]] = typer.Option(None, "--task", callback=_commas, help="Task to allocate for; several are joined by prompt text"),
    metric: str = typer.Option("exact-match", "--metric", help="End-to-end metric (see callwise aggregate)"),
    normalise: Optional[str] = typer.Option(None, "--normalise", help="Answer normaliser: text | choice | number | date "
                                            "(default: the pipeline's vote's, else text)"),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Only allocations costing at most this many dollars per query"),
    budget: Optional[List[float]] = typer.Option(None, "--budget", help="Report the best allocation found under this $/query, repeatable"),
    split: Optional[float] = typer.Option(None, "--split", help="Train fraction of a seeded split (default: the data's own split, else 0.7)"),
    test: Optional[Path] = typer.Option(None, "--test", help="Use this file/folder as the test questions (DATA is all train)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the start allocation, random search and the bootstrap"),
    calls: Optional[Path] = typer.Option(None, "--calls", help="Recorded module calls (an outcome table, replayed by prompt text) for a pipeline that is not an ensemble vote"),
    api_base: Optional[str] = ApiBaseOpt, endpoints: Optional[Path] = EndpointsOpt,
    cache: Optional[Path] = CacheOpt, no_cache: bool = NoCacheOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, report.html and allocations.png here"),
    format: Optional[str] = FormatOpt, output: Optional[str] = OutputOpt, map: Optional[List[str]] = MapOpt,
    drop_incomplete: bool = DropOpt,
) -> None:
    """Which model each module of a pipeline should use: LLMSelector and baselines, train vs test."""
    from .evaluation.report import print_allocation, write_allocation_plots
    from .pipelines import load_pipeline
    from .pipelines.allocate import allocate as run_allocate

    format, output = _formats(format, output)
    console = _console(output)
    try:
        pipe = load_pipeline(pipeline)
        table = _load(data, format, map, None, False, drop_incomplete, None)
        test_t = _load(test, format, map, None, False, drop_incomplete, None) if test is not None else None
        backend = diag = None
        if calls is not None and (api_base or endpoints):
            raise DataError("give recorded calls (--calls) or a live upstream (--api-base / --endpoints), not both")
        if calls is not None:
            from .core.replay import Replay

            backend = Replay(_load(calls, None, None, None, False, False, None), match="prompt")
        elif api_base or endpoints:
            wanted = list(model or table.models()) + ([diagnoser] if diagnoser else [])
            backend = _live(wanted, api_base, endpoints, None, True, cache, no_cache)
        if diagnoser is not None:
            if backend is None or (alpha <= 0 and method != "llmselector-2stage"):
                raise DataError("--diagnoser needs --alpha > 0 (or --method llmselector-2stage) and a backend to "
                                "call it (--calls, --api-base or --endpoints)")
            from .pipelines import LLMDiagnoser

            diag = LLMDiagnoser(diagnoser, backend)
        with _work(console, "allocate") as on_progress:
            result = run_allocate(pipe, table, method=method, budget=budget_evals, alpha=alpha, seed=seed,
                                  max_cost=max_cost, models=model, tasks=task, metric=metric, normalise=normalise,
                                  fraction=split, test=test_t, budgets=budget or (), backend=backend, diagnoser=diag,
                                  on_progress=on_progress)
    except CallwiseError as e:
        _fail(e)
    print_allocation(result, console, output)
    if out is not None:
        _write_outputs(result, out, write_allocation_plots)
        _info(console, f"wrote {out / 'results.json'} and {out / 'allocations.png'}")


def _write_run(result: Any, out: Path, console: Any) -> None:
    """The outcome table and its summary, written together or not at all (a full disk is a clean error)."""
    from .core.files import atomic_write_all
    from .core.outcomes import parquet_writer

    summary_path = out.with_suffix(".summary.json")
    text = json.dumps(_finite({**result.summary, "prices": result.outcomes.meta.get("prices")}), indent=1,
                      default=json_default, allow_nan=False)
    try:
        atomic_write_all([(out, parquet_writer(result.outcomes)), (summary_path, lambda f: f.write(text.encode()))])
    except OSError as e:
        raise DataError(f"could not write the outcomes and their summary ({e.strerror or e}); nothing was written "
                        "and the calls made are in the response cache, so a re-run resumes", file=str(out)) from None
    from .evaluation.report import print_summary

    print_summary(result.summary, console)
    _info(console, f"wrote {out} ({len(result.outcomes)} outcome rows) and {summary_path.name}")


@app.command()
def run(
    policy_file: Path = typer.Argument(..., help="A fitted policy (.json from callwise fit)"),
    prompts_file: Path = typer.Argument(..., help="Prompts, JSON Lines: {id, prompt | messages, task, reference}"),
    out: Path = typer.Option(..., "--out", help="Outcome table to write (.parquet): every call the policy made"),
    grade: Optional[str] = typer.Option(None, "--grade", help="Grade answers against 'reference': exact | contains | number | choice"),
    complete: bool = typer.Option(False, "--complete", help="Also call the models the policy skipped, so bench reads the table"),
    api_base: Optional[str] = ApiBaseOpt, endpoints: Optional[Path] = EndpointsOpt, prices: Optional[Path] = LivePricesOpt,
    provider_costs: bool = ProviderCostOpt, cache: Optional[Path] = CacheOpt, no_cache: bool = NoCacheOpt,
    transport: str = TransportOpt, concurrency: int = ConcurrencyOpt, timeout: float = TimeoutOpt, retries: int = RetriesOpt,
    ray: Optional[str] = RayJobOpt, shard_size: Optional[int] = ShardSizeOpt,
) -> None:
    """Run a fitted policy on live models over PROMPTS; resumable (finished calls are cached)."""
    from .core.policy import policy_models
    from .core.policy_files import load_policy
    from .live.prompts import load_prompts
    from .live.runs import run_policy

    console = _console()
    try:
        if out.suffix.lower() != ".parquet":
            raise DataError("the outcome table must end in .parquet", file=str(out))
        policy = load_policy(policy_file)
        prompts = load_prompts(prompts_file)
        on_ray = _ray_job(ray, shard_size, out)
        backend = _live(policy_models(policy), api_base, endpoints, prices, provider_costs, cache, no_cache, transport,
                        concurrency, timeout, retries)
        try:
            n = len(prompts)
            with _work(console, f"run {policy.name}", n, every=max(1, n // 10)) as on_progress:
                result = run_policy(policy, prompts, backend, grader=grade, complete=complete,
                                    progress=_per_unit(on_progress, n, "prompts"), **on_ray)
        finally:
            backend.close()
        _ray_note(result, console)
        _write_run(result, out, console)
    except CallwiseError as e:
        _fail(e)


@app.command()
def collect(
    models: str = typer.Argument(..., help="Comma-separated models to record"),
    prompts_file: Path = typer.Argument(..., help="Prompts, JSON Lines: {id, prompt | messages, task, reference}"),
    out: Path = typer.Option(..., "--out", help="Outcome table to write (.parquet)"),
    samples: int = typer.Option(1, "--samples", help="Samples per model and prompt"),
    logprobs: bool = typer.Option(False, "--logprobs", help="Ask for logprobs; the answer's log-probability becomes 'confidence'"),
    grade: Optional[str] = typer.Option(None, "--grade", help="Grade answers against 'reference': exact | contains | number | choice"),
    api_base: Optional[str] = ApiBaseOpt, endpoints: Optional[Path] = EndpointsOpt, prices: Optional[Path] = LivePricesOpt,
    provider_costs: bool = ProviderCostOpt, cache: Optional[Path] = CacheOpt, no_cache: bool = NoCacheOpt,
    transport: str = TransportOpt, concurrency: int = ConcurrencyOpt, timeout: float = TimeoutOpt, retries: int = RetriesOpt,
    ray: Optional[str] = RayJobOpt, shard_size: Optional[int] = ShardSizeOpt,
) -> None:
    """Record the outcomes of several models (and samples) on PROMPTS: a training set for callwise fit."""
    from .live.prompts import load_prompts
    from .live.runs import collect as collect_outcomes

    console = _console()
    try:
        if out.suffix.lower() != ".parquet":
            raise DataError("the outcome table must end in .parquet", file=str(out))
        names = [m.strip() for m in models.split(",") if m.strip()]
        if not names:
            raise DataError("give at least one model (comma-separated)", column="models")
        prompts = load_prompts(prompts_file)
        on_ray = _ray_job(ray, shard_size, out)
        backend = _live(names, api_base, endpoints, prices, provider_costs, cache, no_cache, transport, concurrency,
                        timeout, retries)
        try:
            n = len(prompts) * len(names) * samples
            with _work(console, "collect", n, every=max(1, n // 10)) as on_progress:
                result = collect_outcomes(names, prompts, backend, samples=samples, grader=grade, logprobs=logprobs,
                                          progress=_per_unit(on_progress, n, "calls"), **on_ray)
        finally:
            backend.close()
        _ray_note(result, console)
        _write_run(result, out, console)
    except CallwiseError as e:
        _fail(e)


@app.command()
def serve(
    policy_files: List[Path] = typer.Argument(..., help="Fitted policies (.json); each is served as callwise/<file stem>"),
    host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
    api_key: Optional[List[str]] = typer.Option(None, "--api-key", help="Require this bearer key (repeatable)"),
    keys: Optional[Path] = typer.Option(None, "--keys", help="YAML of keys and daily budgets: keys: {KEY: {budget: 5.0}}"),
    key_budget: Optional[float] = typer.Option(None, "--key-budget", help="Dollars per UTC day for each --api-key"),
    soft: float = typer.Option(0.5, "--budget-soft", help="Share of a key's daily budget after which its policy gets cheaper"),
    api_base: Optional[str] = ApiBaseOpt, endpoints: Optional[Path] = EndpointsOpt, prices: Optional[Path] = LivePricesOpt,
    provider_costs: bool = ProviderCostOpt, cache: Optional[Path] = CacheOpt, no_cache: bool = NoCacheOpt,
    transport: str = TransportOpt, concurrency: int = ConcurrencyOpt, timeout: float = TimeoutOpt, retries: int = RetriesOpt,
    max_body_mb: float = typer.Option(4.0, "--max-body-mb", help="Largest request body read; a bigger one gets 413 before it is read"),
    admin_key: Optional[str] = typer.Option(None, "--admin-key", envvar="CALLWISE_ADMIN_KEY", help="Key for /metrics and /health details (default: $CALLWISE_ADMIN_KEY; none: /metrics is open)"),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error: the JSON access log (one line per request) is info"),
    state: Optional[str] = typer.Option(None, "--state", help="Where key spend lives: sqlite:///PATH (default: state.sqlite in the cache folder; survives restarts), redis://HOST:PORT/DB (shared by instances), or memory"),
) -> None:
    """Serve fitted policies as an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models, /health, /metrics)."""
    import logging

    from .live import server as srv

    try:
        if not max_body_mb > 0:
            raise DataError(f"--max-body-mb must be a positive number of megabytes, got {max_body_mb}")
        level = getattr(logging, log_level.upper(), None)
        if log_level.lower() not in ("debug", "info", "warning", "error") or not isinstance(level, int):
            raise DataError(f"--log-level must be debug, info, warning or error, got {log_level!r}")
        app_ = build_server(policy_files, api_key, keys, key_budget, soft, api_base, endpoints, prices, provider_costs,
                            cache, no_cache, transport, concurrency, timeout, retries,
                            max_body=max(1024, int(max_body_mb * 1024 * 1024)), admin_key=admin_key,
                            state=state).app()
    except CallwiseError as e:
        _fail(e)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("callwise.access")
    access.addHandler(handler)
    access.setLevel(level)
    access.propagate = False
    if not _CHATTER["quiet"]:
        typer.echo(f"serving {', '.join(srv.PREFIX + p.stem for p in policy_files)} on http://{host}:{port}/v1", err=True)
    srv.serve(app_, host, port)


def build_server(policy_files: List[Path], api_key: Optional[List[str]], keys: Optional[Path], key_budget: Optional[float],
                 soft: float, api_base: Optional[str], endpoints: Optional[Path], prices: Optional[Path],
                 provider_costs: bool, cache: Optional[Path], no_cache: bool, transport: str = "litellm",
                 concurrency: int = 32, timeout: float = 60.0, retries: int = 3, max_body: int | None = None,
                 admin_key: str | None = None, state: str | None = None) -> Any:
    """The :class:`~callwise.live.server.PolicyServer` that ``callwise serve`` runs (also for tests and benchmarks)."""
    from .core.policy import policy_models
    from .live.server import KeyBudgets, PolicyServer, load_policies

    if keys is not None and api_key:
        raise DataError("give keys with --api-key or --keys, not both")
    if key_budget is not None and not api_key:
        raise DataError("--key-budget needs --api-key (the keys it applies to)")
    from .live.server import MAX_BODY
    from .live.state import open_store

    kb = KeyBudgets.load(keys, soft=soft) if keys is not None else KeyBudgets(
        {k: key_budget for k in (api_key or [])}, soft=soft)
    policies = load_policies(policy_files)
    models = sorted({m for p in policies.values() for m in policy_models(p)})
    backend = _live(models, api_base, endpoints, prices, provider_costs, cache, no_cache, transport, concurrency,
                    timeout, retries)
    if state is None:  # the default keeps spend across restarts
        base = Path(os.environ.get("CALLWISE_CACHE_DIR") or Path.home() / ".cache" / "callwise")
        state = f"sqlite:///{base / 'state.sqlite'}"
    kb.store = open_store(state)  # last: a bad setting above fails before any state file is made

    return PolicyServer(policies, backend, keys=kb, max_body=MAX_BODY if max_body is None else max_body,
                        admin_key=admin_key)


@app.command("replay-server")
def replay_server(
    data: Path = typer.Argument(..., help="Recorded outcomes (file or folder) to answer from"),
    host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8100, "--port"),
    latency_ms: Optional[List[str]] = typer.Option(None, "--latency-ms", help="Added latency: MS for all models, or MODEL=MS (repeatable)"),
    jitter_ms: float = typer.Option(0.0, "--jitter-ms", help="Uniform extra latency in [0, JITTER]"),
    fail_rate: Optional[List[str]] = typer.Option(None, "--fail-rate", help="Share of requests that fail: RATE, or MODEL=RATE (repeatable)"),
    fail_status: int = typer.Option(500, "--fail-status", help="HTTP status of injected failures"),
    confidence_as: str = typer.Option("logprob", "--confidence-as", help="The table's confidence is a 'logprob' or a 'margin'"),
    no_cost: bool = typer.Option(False, "--no-cost", help="Do not report the recorded cost in usage.cost"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require this bearer key"),
    seed: int = typer.Option(0, "--seed", help="Seed of the injected failures"),
    format: Optional[str] = FormatOpt, legacy_format: Optional[str] = LegacyFormatOpt, map: Optional[List[str]] = MapOpt,
    prices: Optional[Path] = PricesOpt,
    trust_pickle: bool = TrustOpt, drop_incomplete: bool = DropOpt, quality_range: Optional[str] = RangeOpt,
) -> None:
    """Serve recorded outcomes as an OpenAI-compatible endpoint (for tests, demos and fault drills)."""
    from .live.replay_server import build_replay_app
    from .live.server import serve as run_app

    format, _ = _formats(format, legacy_format, tables=False)
    try:
        table = _load(data, format, map, prices, trust_pickle, drop_incomplete, quality_range)
        app_ = build_replay_app(table, latency_ms=_per_model(latency_ms, "--latency-ms", 0.0), jitter_ms=jitter_ms,
                                fail_rate=_per_model(fail_rate, "--fail-rate", 0.0), fail_status=fail_status, seed=seed,
                                report_cost=not no_cost, confidence_as=confidence_as, api_key=api_key)
    except CallwiseError as e:
        _fail(e)
    if not _CHATTER["quiet"]:
        typer.echo(f"replaying {data} on http://{host}:{port}/v1", err=True)
    run_app(app_, host, port)


def _per_model(items: Optional[List[str]], flag: str, default: float) -> Any:
    """``X`` (every model) or ``MODEL=X`` items as a float or a per-model dict."""
    if not items:
        return default
    per: dict[str, float] = {}
    glob: float | None = None
    for it in items:
        name, eq, val = it.rpartition("=")
        try:
            x = float(val)
        except ValueError:
            raise DataError(f"{flag} expects a number or MODEL=NUMBER, got {it!r}") from None
        if eq:
            per[name] = x
        else:
            glob = x
    if per and glob is not None:
        raise DataError(f"{flag}: give one number for all models or MODEL=NUMBER items, not both")
    return per if per else glob


cache_app = typer.Typer(no_args_is_help=True, help="The response cache of live calls: stats and clear.")
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
def cache_stats(path: Optional[Path] = CacheOpt, as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Entries, size and the dollars re-runs save, per model."""
    from .evaluation.tables import usd
    from .live.cache import ResponseCache, default_cache_path

    try:
        p = path or default_cache_path()
        if not p.exists():
            raise DataError("no response cache here yet", file=str(p))
        with ResponseCache(p, readonly=True) as rc:
            st = rc.stats()
    except CallwiseError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(st, indent=1, default=json_default))
        return
    typer.echo(f"{st['path']}: {st['entries']} responses, {st['size_bytes'] / 1e6:.2f} MB, "
               f"oldest {st['oldest']}, newest {st['newest']}")
    for m, v in st["models"].items():
        typer.echo(f"  {m}: {v['entries']:,} responses, {usd(v['cost'])} recorded cost")


@cache_app.command("clear")
def cache_clear(path: Optional[Path] = CacheOpt,
                model: Optional[str] = typer.Option(None, "--model", help="Only this model's responses"),
                older_than_days: Optional[float] = typer.Option(None, "--older-than-days", help="Only responses older than this"),
                yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation")) -> None:
    """Remove cached responses (all, or one model's, or old ones)."""
    from .live.cache import ResponseCache, default_cache_path

    try:
        p = path or default_cache_path()
        if not p.exists():
            raise DataError("no response cache here", file=str(p))
        if not yes and not typer.confirm(f"remove cached responses from {p}?"):
            raise typer.Exit(code=1)
        with ResponseCache(p) as rc:
            n = rc.clear(model=model, older_than_days=older_than_days)
    except CallwiseError as e:
        _fail(e)
    typer.echo(f"removed {n} responses from {p}")


def main() -> None:
    from .core.cluster import normalise_argv

    try:
        app(args=normalise_argv(sys.argv[1:]), prog_name="callwise")
    except CallwiseError as e:  # pragma: no cover - commands catch their own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
