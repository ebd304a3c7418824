"""The ``callwise`` command. Each command is a thin layer over the Python API of the same name:

- ``callwise convert IN OUT.parquet``  -> :func:`callwise.load` + :func:`callwise.write_parquet`
- ``callwise info DATA``               -> :func:`callwise.load` (a summary of the table)
- ``callwise bench [DATA]``            -> :func:`callwise.split_outcomes` + :func:`callwise.bench`

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

from .errors import CallwiseError, DataError

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
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import bench as run_bench
    from .bench import split_outcomes
    from .report import print_tables

    console = Console()
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


def _write_outputs(result: Any, out: Path) -> None:
    """Write results.json and the plots into a temporary folder, then move them into ``out``."""
    from .report import write_plots

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".callwise-"))
    try:
        payload = _finite(result.to_dict())
        (tmp / "results.json").write_text(json.dumps(payload, indent=1, allow_nan=False, default=_json_default))
        write_plots(result, tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def main() -> None:
    try:
        app()
    except CallwiseError as e:  # pragma: no cover - commands catch their own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
