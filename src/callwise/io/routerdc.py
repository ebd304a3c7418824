"""RouterDC's per-query scores (Chen et al., NeurIPS 2024; repo ``shuhao02/RouterDC``,
``datasets/split2_model7/*.json``) -> the outcome table.

Layout: one ``.json`` / ``.json.gz`` file per task and split, each a JSON list of records
``{"question": str, "scores": {model: number}}`` (some training files also carry a
``cluster_id``, which is not used). What a score means depends on the task (the RouterDC README:
lm-evaluation-harness / bigcode-evaluation-harness): for MMLU, CMMLU, C-Eval and ARC the model's
probability of the correct option; for GSM8K the fraction of 10 samples that were right; for
HumanEval, MBPP and JavaScript the pass rate. All are in [0, 1] and become ``quality`` as they are.

Mapping (one outcome row per record and model):

- ``task`` = the file name without ``.json(.gz)`` and without a ``_train`` / ``-train`` /
  ``_test`` / ``-test`` suffix (``mmlu_test`` -> ``mmlu``, ``gsm8k-train`` -> ``gsm8k``,
  ``MATH_prealgebra`` stays); a file named only ``train`` / ``test`` takes its folder's name.
- ``split`` = ``train`` / ``test`` from that suffix; files without one (``ceval``, ``mbpp``,
  ``javascript``, ``MATH_prealgebra``) have no split, so their tasks get the seeded split.
- ``prompt_id`` = ``<file name without .json(.gz)>:<record index>`` (0-based: ``mmlu_test:17``),
  so a question that appears twice, or in both the train and the test file, stays two prompts
  (the notes count them); ``prompt`` = ``question``; ``model`` = the key in ``scores``;
  ``quality`` = the score.
- A score that is missing or ``null`` is *not recorded* (no row): the outcome table then names the
  prompts lacking that model (``--drop-incomplete`` drops them).

**Costs.** The files hold no costs, no token counts and no responses (the models are all open
~7B models). Loading therefore needs a price table (``--prices FILE`` / ``prices=``; an example is
``docs/examples/routerdc_prices.yaml``): input tokens are estimated from the question
(:func:`callwise.core.prices.estimate_tokens`, characters / 4), output tokens are the table's
``assumed_output_tokens`` (needed whenever a model has an output price), and the table is marked
``costs_estimated``. Without a price table the loader says that costs are missing and lists the
models to price.

Errors name the file, the record (``record <i>``, 0-based) and the field (``question``,
``scores``, ``scores.<model>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import json_type
from ..core.outcomes import Provenance
from ..core.prices import PriceTable
from .jsonlist import json_files, peek_first_record, read_json_list, stem_of

REQUIRED_FIELDS = ("question", "scores")
WHAT = "a JSON list of {question, scores} records (scores: an object of model -> score in [0, 1])"
_SPLIT_SUFFIX = re.compile(r"^(?:(?P<task>.*?)[_.\-])?(?P<split>train|test)$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# finding the files


def is_score_record(obj: Any) -> bool:
    """Whether a parsed record looks like ``{question, scores: {...}}`` (and not a MoT record)."""
    if isinstance(obj, str):  # a giant first record's raw text (see peek_first_record)
        return '"question"' in obj and '"scores"' in obj and '"generated"' not in obj
    return (isinstance(obj, dict) and "question" in obj and isinstance(obj.get("scores"), dict)
            and "generated" not in obj)


def is_score_file(path: str | Path) -> bool:
    """Whether ``path`` is a ``.json(.gz)`` list of ``{question, scores}`` records (reads only the
    first record)."""
    status, first = peek_first_record(Path(path))
    return status == "record" and is_score_record(first)


def score_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the score-record files directly in ``folder``, the other JSON files there). A file that
    cannot be read is kept, so that reading it says why."""
    keep, skipped = [], []
    for p in json_files(folder):
        status, first = peek_first_record(p)
        (keep if status == "broken" or (status == "record" and is_score_record(first)) else skipped).append(p)
    return keep, skipped


def is_score_folder(folder: str | Path) -> bool:
    """Whether a folder holds at least one score-record file."""
    folder = Path(folder)
    return folder.is_dir() and any(is_score_file(p) for p in json_files(folder))


def task_and_split(path: Path, default_task: str | None = None) -> tuple[str, str | None]:
    """(task, split or None) of a score file from its name (see the module docstring)."""
    stem = stem_of(path)
    m = _SPLIT_SUFFIX.match(stem)
    if m is None:
        return stem, None
    task = m.group("task") or default_task or path.resolve().parent.name or stem
    return task, m.group("split").lower()


# --------------------------------------------------------------------------------------------
# reading one file


@dataclass
class ScoreFile:
    """One file's records: questions and a records x models score matrix (NaN = not recorded)."""

    path: Path
    stem: str
    task: str
    split: str | None
    questions: np.ndarray
    models: list[str]
    scores: np.ndarray


def _first_bad(values: list[Any], ok: Any) -> int | None:
    return next((i for i, v in enumerate(values) if not ok(v)), None)


def _is_score(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def read_score_file(path: Path, default_task: str | None = None) -> ScoreFile:
    """One ``{question, scores}`` file, validated (see the module docstring for what is checked)."""
    records = read_json_list(path, WHAT)
    file = str(path)
    i = _first_bad(records, lambda r: isinstance(r, dict))
    if i is not None:
        raise DataError(f"the record is a JSON {json_type(records[i])}, expected an object with "
                        f"{', '.join(REQUIRED_FIELDS)}", file=file, row=f"record {i}")
    for field in REQUIRED_FIELDS:
        i = _first_bad(records, lambda r: field in r)
        if i is not None:
            raise DataError(f"missing field {field!r}; every record needs {', '.join(REQUIRED_FIELDS)}",
                            file=file, row=f"record {i}", column=field)
    questions = [r["question"] for r in records]
    i = _first_bad(questions, lambda q: isinstance(q, str))
    if i is not None:
        raise DataError(f"the question is a JSON {json_type(questions[i])}, expected a string",
                        file=file, row=f"record {i}", column="question")
    scores = [r["scores"] for r in records]
    i = _first_bad(scores, lambda s: isinstance(s, dict) and len(s) > 0)
    if i is not None:
        got = "an empty object" if isinstance(scores[i], dict) else f"a JSON {json_type(scores[i])}"
        raise DataError(f"'scores' is {got}, expected an object of model -> score in [0, 1]",
                        file=file, row=f"record {i}", column="scores")
    wide = pd.DataFrame.from_records(scores)
    models = [str(c) for c in wide.columns]
    if "" in models:
        i = _first_bad(scores, lambda s: "" not in s)
        raise DataError("a score has an empty model name; expected model -> score", file=file,
                        row=f"record {i}", column="scores")
    for m in wide.columns:
        col = wide[m]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            continue
        vals = col.to_numpy(dtype=object)
        bad = np.flatnonzero(~np.fromiter((_is_score(v) or (isinstance(v, float) and np.isnan(v)) for v in vals),
                                          dtype=bool, count=len(vals)))
        if len(bad):
            i = int(bad[0])
            raise DataError(f"the score is a JSON {json_type(vals[i])} ({vals[i]!r}), expected a number in [0, 1] "
                            "(or null where not recorded)", file=file, row=f"record {i}", column=f"scores.{m}")
    matrix = wide.apply(pd.to_numeric).to_numpy(dtype=float)
    task, split = task_and_split(path, default_task)
    return ScoreFile(path, stem_of(path), task, split, np.array(questions, dtype=object), models, matrix)


def read_score_files(files: list[Path], default_task: str | None = None) -> list[ScoreFile]:
    """Every file read and validated; file stems must differ (they prefix the prompt ids)."""
    out = [read_score_file(f, default_task) for f in files]
    seen: dict[str, Path] = {}
    for sf in out:
        if sf.stem in seen:
            raise DataError(f"has the same name as {seen[sf.stem].name} without .json(.gz); prompt ids are "
                            "<file name>:<record>, so each file needs its own name", file=str(sf.path))
        seen[sf.stem] = sf.path
    return out


# --------------------------------------------------------------------------------------------
# the outcome rows


def all_models(files: list[ScoreFile]) -> list[str]:
    """The models scored anywhere in ``files``, sorted."""
    return sorted({m for f in files for m in f.models})


def check_prices(files: list[ScoreFile], prices: PriceTable) -> None:
    """Every model of the data has a price (all missing ones are named at once)."""
    missing = [m for m in all_models(files) if m not in prices.models]
    if missing:
        raise DataError(f"no price for model(s) {missing}; the price table has {sorted(prices.models)}",
                        file=prices.path, column="models")


def outcome_rows(files: list[ScoreFile], prices: PriceTable) -> tuple[pd.DataFrame, Provenance]:
    """The canonical frame of ``files`` (one row per recorded score) with costs from ``prices``."""
    check_prices(files, prices)
    frames, file_col, rec_col, qcol = [], [], [], []
    for f in files:
        n, m = f.scores.shape
        cost = np.empty((n, m))
        tin = np.empty((n, m), dtype=np.int64)
        tout = np.empty((n, m), dtype=np.int64)
        for j, model in enumerate(f.models):
            cost[:, j], tin[:, j], tout[:, j] = prices.costs(model, f.questions, None)
        keep = ~np.isnan(f.scores.ravel())
        record = np.repeat(np.arange(n), m)[keep]
        models = np.tile(np.array(f.models, dtype=object), n)[keep]
        frames.append(pd.DataFrame({
            "prompt_id": np.char.add(f"{f.stem}:", record.astype(str)).astype(object),
            "task": f.task,
            "prompt": f.questions[record],
            "model": models,
            "quality": f.scores.ravel()[keep],
            "cost": cost.ravel()[keep],
            "input_tokens": tin.ravel()[keep],
            "output_tokens": tout.ravel()[keep],
            "split": f.split,
        }))
        file_col.append(np.full(len(record), str(f.path), dtype=object))
        rec_col.append(record)
        qcol.append(np.char.add("scores.", models.astype(str)).astype(object))
    df = pd.concat(frames, ignore_index=True)
    prov = Provenance(file=np.concatenate(file_col), line=np.concatenate(rec_col),
                      columns={"quality": np.concatenate(qcol), "prompt": "question", "prompt_id": "question",
                               "model": "scores", "cost": "(price table)", "input_tokens": "question",
                               "output_tokens": "(price table: assumed_output_tokens)",
                               "task": "(file name)", "split": "(file name)"},
                      unit="record")
    return df, prov


def repeat_notes(files: list[ScoreFile]) -> list[str]:
    """Notes on questions that appear more than once in a file, or in both splits of a task."""
    notes = []
    dup = [f"{f.path.name} {int(pd.Series(f.questions).duplicated().sum())}" for f in files
           if pd.Series(f.questions).duplicated().any()]
    if dup:
        notes.append("questions that appear more than once in one file (each record stays its own prompt): "
                     + "; ".join(dup))
    by_task: dict[str, dict[str, set[str]]] = {}
    for f in files:
        if f.split is not None:
            by_task.setdefault(f.task, {}).setdefault(f.split, set()).update(f.questions.tolist())
    both = [f"{task} {len(s['train'] & s['test'])}" for task, s in sorted(by_task.items())
            if "train" in s and "test" in s and s["train"] & s["test"]]
    if both:
        notes.append("questions in both the train and the test file of a task (kept as separate prompts, so the "
                     "origin split shares them): " + "; ".join(both))
    return notes


def files_of(path: Path) -> tuple[list[Path], list[Path]]:
    """(score files to read, other JSON files skipped) for a file or a folder."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise DataError("no such file or folder", file=str(path))
    keep, skipped = score_files(path)
    if not keep:
        raise DataError(f"no score files in this folder: expected .json / .json.gz files holding {WHAT}"
                        + (f"; skipped {[p.name for p in skipped][:5]}" if skipped else ""), file=str(path))
    return keep, skipped


# --------------------------------------------------------------------------------------------
# the loader


def read_routerdc(path: Path, prices: PriceTable | None) -> tuple[pd.DataFrame, Provenance, list[str]]:
    """RouterDC score files (a file or a folder of them) as a canonical frame, its provenance and
    notes; ``prices`` is required because the data has no costs (see the module docstring)."""
    path = Path(path)
    files, skipped = files_of(path)
    folder = path if path.is_dir() else path.parent
    parsed = read_score_files(files, default_task=folder.resolve().name)
    if prices is None:
        models = all_models(parsed)
        raise DataError(f"costs are missing: RouterDC's files record scores only (no costs, token counts or "
                        f"responses). Pass a price table (--prices FILE, prices=...) with a price for each of the "
                        f"{len(models)} models {models}; input tokens are estimated from the question and output "
                        "tokens are the table's assumed_output_tokens (docs/examples/routerdc_prices.yaml is one)",
                        file=str(path), column="cost")
    df, prov = outcome_rows(parsed, prices)
    notes = [f"costs estimated: the data records none; input tokens = ceil(characters / 4) of the question, output "
             f"tokens = {prices.assumed_output_tokens or 0} per call (assumed_output_tokens), priced with "
             f"{prices.source}"]
    unsplit = sorted({f.task for f in parsed if f.split is None})
    if unsplit:
        notes.append(f"no train/test file for task(s) {unsplit}: they get the seeded split")
    notes.extend(repeat_notes(parsed))
    if skipped:
        notes.append(f"skipped {len(skipped)} JSON file(s) that are not {{question, scores}} records: "
                     + ", ".join(p.name for p in skipped))
    return df, prov, notes


__all__ = ["ScoreFile", "is_score_file", "is_score_folder", "is_score_record", "outcome_rows", "read_routerdc",
           "read_score_file", "read_score_files", "repeat_notes", "score_files", "task_and_split"]
