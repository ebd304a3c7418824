"""The MoT-cascade sample files (Yue et al., "Large Language Model Cascades with Mixture of
Thought Representations", ICLR 2024): many sampled answers per question, per model.

Layout: one folder per model (``GPT3_result/``, ``GPT4_result/``, ``llama2_13B_result/``) holding
``<task>_<cot|pot><1|2>[...].json(.gz)`` files, each a JSON list of records with ``question``,
``answer`` (the gold: a string, a number, or for Llama-2 DATE a ``{candidate: score}`` mapping
whose gold is the candidate(s) scored 1), ``generated`` (the N sampled completions) and
``results`` (the answer extracted from each; null where a program failed). ``result_counter``,
``prediction`` and ``explain`` are not used.

Mapping (one outcome row per generated sample):

- ``task`` = the file name without ``.json(.gz)`` (``date_cot1_t=0.4``), so one file name under two
  model folders is one task with two models (a GPT-3.5 -> GPT-4 cascade); ``prompt_id`` =
  ``<task>:<record index>`` (0-based; the files of one task list the same questions in the same
  order, which the loader checks); ``prompt`` = ``question``.
- ``model`` from the folder: ``GPT3_result`` -> ``gpt-3.5-turbo``, ``GPT4_result`` -> ``gpt-4``,
  ``llama2_13B_result`` -> ``llama-2-13b``, any other folder -> its name; ``model=`` overrides.
- ``sample`` = the completion's index; ``answer`` = ``results[i]`` normalised
  (:mod:`callwise.core.normalise`), None where it cannot be read or where ``results`` is shorter than
  ``generated`` (failed program runs were dropped from ``results``; the missing ones are padded at
  the end as no-answer); ``quality`` = 1.0 when the answer equals the normalised gold, else 0.0;
  ``reference`` = the normalised gold (the first in sorted order when a Llama-2 record scores
  several candidates 1), which metric-aware aggregation scores its predictions against.
- Normaliser by task: ``date*`` -> date, ``gsm*``/``asdiv*`` -> number, ``tabmwp*`` -> number where
  the gold is a number or a fraction and text where it is not (TabMWP mixes ``6.0``, ``"7/41"``,
  ``"3:15 P.M."`` and ``"Champ"``), anything else -> text; ``normaliser=`` overrides for all tasks.
- Costs are not recorded: they are estimated from token counts (:func:`callwise.core.prices.estimate_tokens`
  of the question and of each completion) with :data:`DEFAULT_PRICES` or ``prices=``. The few-shot
  prompt the authors sent is not recorded, so input tokens, and costs, are a lower bound.

Errors name the file, the record (``record <i>``, 0-based) and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import json_type
from ..core.normalise import get_normaliser, normalise_array
from ..core.outcomes import Provenance
from ..core.prices import ModelPrice, PriceTable
from .jsonlist import json_files, peek_first_record, read_json_list, stem_of

#: Model folder name -> model name.
MODEL_OF_FOLDER = {"GPT3_result": "gpt-3.5-turbo", "GPT4_result": "gpt-4", "llama2_13B_result": "llama-2-13b"}

#: Per-token prices for the MoT models (USD per 1M tokens).
DEFAULT_PRICES = PriceTable(
    models={
        "gpt-3.5-turbo": ModelPrice(input_per_1m=1.5, output_per_1m=2.0),
        "gpt-4": ModelPrice(input_per_1m=30.0, output_per_1m=60.0),
        "llama-2-13b": ModelPrice(input_per_1m=0.225, output_per_1m=0.225),
    },
    source=("MoT-cascade default prices, USD per 1M tokens: gpt-3.5-turbo 1.5 input / 2.0 output and gpt-4 "
            "30 / 60 (the OpenAI list prices of the paper's time, $0.0015/$0.002 and $0.03/$0.06 per 1K "
            "tokens); llama-2-13b 0.225 / 0.225 (a hosted-inference price)"),
)

REQUIRED_FIELDS = ("question", "answer", "generated", "results")
WHAT = "a JSON list of MoT-cascade records (objects with question, answer, generated, results)"
_OTHER_DATA = (".csv", ".jsonl", ".parquet", ".pkl", ".pickle")
_NUMBER_LIKE = re.compile(r"\s*[-\u2212]?\s*[$\u20ac\u00a3]?\s*[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?"
                          r"(?:\s*/\s*\d+)?\s*%?\s*\.?\s*")


# --------------------------------------------------------------------------------------------
# finding the files


def task_of(path: Path) -> str:
    """The task of a MoT file: its name without ``.json`` / ``.json.gz``."""
    return stem_of(path)


def sniff(path: Path) -> str:
    """'mot' when the file is a JSON list whose first object has ``generated`` and ``results``;
    'other' when it is readable but not that (or not named .json / .json.gz); 'broken' when it
    cannot be read (bad gzip, bad UTF-8, truncated JSON). Reads only up to the first record."""
    status, first = peek_first_record(path)
    if status != "record":
        return status
    if isinstance(first, str):  # a giant first record: judge by its keys
        return "mot" if '"generated"' in first and '"results"' in first else "other"
    return "mot" if isinstance(first, dict) and "generated" in first and "results" in first else "other"


def is_mot_file(path: str | Path) -> bool:
    """Whether ``path`` is a MoT-cascade file: a ``.json`` / ``.json.gz`` holding a list of objects
    with ``generated`` and ``results`` (only the first record is read)."""
    return sniff(Path(path)) == "mot"


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_mot_folder(folder: str | Path) -> bool:
    """Whether a folder holds MoT files, or (when it holds no data files of its own) has
    subfolders that do."""
    folder = Path(folder)
    own = json_files(folder)
    if any(sniff(p) == "mot" for p in own):
        return True
    if own or any(p.is_file() and p.name.lower().removesuffix(".gz").endswith(_OTHER_DATA) for p in folder.iterdir()):
        return False
    return any(sniff(p) == "mot" for sub in _subfolders(folder) for p in json_files(sub))


def mot_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(the MoT files to read, the JSON files skipped as not MoT) for a file, a folder of files or
    a folder of such folders. A file that cannot be read is kept, so that reading it says why."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise DataError("no such file or folder", file=str(path))
    candidates = json_files(path) + [p for sub in _subfolders(path) for p in json_files(sub)]
    keep, skipped = [], []
    for p in candidates:
        (skipped if sniff(p) == "other" else keep).append(p)
    if not keep:
        raise DataError(f"no MoT-cascade files in this folder or its subfolders: expected .json / .json.gz files "
                        f"holding {WHAT}" + (f"; skipped {[p.name for p in skipped][:5]}" if skipped else ""),
                        file=str(path))
    return keep, skipped


# --------------------------------------------------------------------------------------------
# reading one file


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one MoT file (the top-level list), checked to be a non-empty list."""
    return read_json_list(path, WHAT)


def _number_like(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, str) and any(c.isdigit() for c in v) and _NUMBER_LIKE.fullmatch(v) is not None


def _default_kind(task: str) -> str:
    t = task.lower()
    if t.startswith("date"):
        return "date"
    if t.startswith(("gsm", "asdiv")):
        return "number"
    if t.startswith("tabmwp"):
        return "number-or-text"
    return "text"


def _gold_candidates(gold: Any, where: dict[str, Any]) -> list[Any]:
    """The gold answer(s) of a record, before normalisation."""
    if isinstance(gold, dict):
        keys = [k for k, v in gold.items()
                if not isinstance(v, bool) and isinstance(v, (int, float)) and v == 1]
        if not keys:
            raise DataError(f"the gold answer is a {{candidate: score}} mapping with no candidate scored 1 "
                            f"(scores {list(gold.values())[:6]}); expected exactly the correct candidate(s) "
                            "scored 1", **where)
        return keys
    if gold is None or isinstance(gold, list):
        raise DataError(f"the gold answer is a JSON {json_type(gold)}, expected a string, a number or a "
                        "{candidate: score} mapping", **where)
    return [gold]


class _FileRows:
    """The columns of one file's outcome rows (before normalisation and pricing)."""

    def __init__(self, path: Path, label: str, task: str, model: str, folder: str) -> None:
        self.path, self.label, self.task, self.model, self.folder = path, label, task, model, folder
        self.questions: list[str] = []
        self.counts: list[int] = []        # completions per record
        self.golds: list[list[Any]] = []   # raw gold candidates per record
        self.generated: list[str] = []     # flat over samples
        self.results: list[Any] = []       # flat over samples, padded with None
        self.padded = 0
        self.null = 0
        self.empty_records = 0


def _read_file(path: Path, label: str, model: str, folder: str) -> _FileRows:
    records = read_records(path)
    rows = _FileRows(path, label, task_of(path), model, folder)
    file = str(path)
    for i, rec in enumerate(records):
        row = f"record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"the record is a JSON {json_type(rec)}, expected an object with "
                            f"{', '.join(REQUIRED_FIELDS)}", file=file, row=row)
        missing = [k for k in REQUIRED_FIELDS if k not in rec]
        if missing:
            raise DataError(f"missing field {missing[0]!r}; every record needs {', '.join(REQUIRED_FIELDS)}",
                            file=file, row=row, column=missing[0])
        question, gen, res = rec["question"], rec["generated"], rec["results"]
        if not isinstance(question, str):
            raise DataError(f"the question is a JSON {json_type(question)}, expected a string",
                            file=file, row=row, column="question")
        if not isinstance(gen, list):
            raise DataError(f"'generated' is a JSON {json_type(gen)}, expected a list of completions (strings)",
                            file=file, row=row, column="generated")
        if not isinstance(res, list):
            raise DataError(f"'results' is a JSON {json_type(res)}, expected a list of extracted answers",
                            file=file, row=row, column="results")
        if len(res) > len(gen):
            raise DataError(f"'results' has {len(res)} answers but 'generated' only {len(gen)} completions; "
                            "expected at most one extracted answer per completion",
                            file=file, row=row, column="results")
        for j, g in enumerate(gen):
            if not isinstance(g, str):
                raise DataError(f"generated[{j}] is a JSON {json_type(g)}, expected completion text (a string)",
                                file=file, row=row, column="generated")
        for j, r in enumerate(res):
            if r is not None and not isinstance(r, (str, int, float)):
                raise DataError(f"results[{j}] is a JSON {json_type(r)}, expected an extracted answer "
                                "(a string, a number or null)", file=file, row=row, column="results")
        golds = _gold_candidates(rec["answer"], {"file": file, "row": row, "column": "answer"})
        rows.questions.append(question)
        rows.golds.append(golds)
        rows.counts.append(len(gen))
        rows.generated.extend(gen)
        rows.results.extend(res)
        short = len(gen) - len(res)
        if short:
            rows.results.extend([None] * short)
            rows.padded += short
        rows.null += sum(r is None for r in res)
        rows.empty_records += not gen
    return rows


def _normalise_file(rows: _FileRows, normaliser: str | Callable[[Any], Any] | None,
                    ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(normalised answers, quality, answers present but unreadable, reference per sample) of one file's
    samples; the reference is the normalised gold (the first in sorted order where a record has several)."""
    counts = np.asarray(rows.counts, dtype=np.int64)
    n_records = len(counts)
    kind = _default_kind(rows.task) if normaliser is None else None
    # the normaliser of each record: one for all, or (TabMWP) by the type of the record's gold
    if kind == "number-or-text":
        by_record = ["number" if all(_number_like(g) for g in golds) else "text" for golds in rows.golds]
    else:
        by_record = [normaliser if normaliser is not None else kind] * n_records
    results = np.empty(len(rows.results), dtype=object)
    results[:] = rows.results
    record_of_sample = np.repeat(np.arange(n_records), counts)
    answers = np.empty(len(results), dtype=object)
    gold_sets = np.empty(n_records, dtype=object)
    groups: dict[Any, list[int]] = {}
    for r, spec in enumerate(by_record):
        groups.setdefault(spec if isinstance(spec, str) else id(spec), []).append(r)
    for rec_ids in groups.values():
        spec = by_record[rec_ids[0]]
        fn = get_normaliser(spec)  # type: ignore[arg-type]
        for r in rec_ids:
            norm = [fn(g) for g in rows.golds[r]]
            for g, v in zip(rows.golds[r], norm):
                if v is None:
                    name = f"the {spec!r} normaliser" if isinstance(spec, str) else "the user normaliser"
                    raise DataError(f"the gold answer {g!r} cannot be read by {name}; expected a gold answer that "
                                    "the task's normaliser understands (normaliser= chooses another)",
                                    file=str(rows.path), row=f"record {r}", column="answer")
            gold_sets[r] = frozenset(norm)
        mask = np.isin(record_of_sample, rec_ids) if len(groups) > 1 else slice(None)
        answers[mask] = normalise_array(results[mask], spec)  # type: ignore[arg-type]
    gold_rep = np.repeat(gold_sets, counts)
    quality = np.fromiter((a is not None and a in g for a, g in zip(answers, gold_rep)), dtype=float,
                          count=len(answers))
    present = np.fromiter((r is not None for r in results), dtype=bool, count=len(results))
    unreadable = int(np.sum(present & np.array([a is None for a in answers], dtype=bool)))
    reference = np.array([min(g) for g in gold_sets], dtype=object)
    return answers, quality, unreadable, np.repeat(reference, counts)


def _check_alignment(first: dict[str, _FileRows], rows: _FileRows) -> None:
    """Files of one task must list the same questions in the same order (prompt ids pair them)."""
    other = first.get(rows.task)
    if other is None:
        first[rows.task] = rows
        return
    for i, (a, b) in enumerate(zip(other.questions, rows.questions)):
        if a != b:
            raise DataError(f"the question differs from record {i} of {other.label} ({a[:60]!r} vs {b[:60]!r}); "
                            f"files of one task ({rows.task!r}) must list the same questions in the same order, "
                            "since prompt ids pair records by index", file=str(rows.path), row=f"record {i}",
                            column="question")


# --------------------------------------------------------------------------------------------
# the loader


def read_mot(
    path: Path,
    *,
    model: str | None = None,
    prices: PriceTable | None = None,
    normaliser: str | Callable[[Any], Any] | None = None,
) -> tuple[pd.DataFrame, Provenance, list[str]]:
    """MoT-cascade samples from a file, a folder of files or a folder of model folders, as a
    canonical frame, its provenance and notes (see the module docstring for the mapping)."""
    path = Path(path)
    prices = prices if prices is not None else DEFAULT_PRICES
    if normaliser is not None:
        get_normaliser(normaliser)  # an unknown name fails before any file is read
    files, skipped = mot_files(path)
    root = path if path.is_dir() else path.parent
    per_file: list[_FileRows] = []
    seen: dict[tuple[str, str], _FileRows] = {}
    first_of_task: dict[str, _FileRows] = {}
    for f in files:
        folder = f.parent.name
        m = model if model is not None else MODEL_OF_FOLDER.get(folder, folder)
        if m not in prices.models:  # before reading the file
            raise DataError(f"no price for model {m!r} (folder {folder!r}); the price table has "
                            f"{sorted(prices.models)}: pass prices= with this model, or model= to name it",
                            file=str(f), column="model")
        rows = _read_file(f, f.relative_to(root).as_posix(), m, folder)
        dup = seen.get((rows.task, m))
        if dup is not None:
            raise DataError(f"task {rows.task!r} of model {m!r} is also in {dup.label}; each task has one file per "
                            "model (model= gives every folder the same model)", file=str(f))
        seen[(rows.task, m)] = rows
        _check_alignment(first_of_task, rows)
        per_file.append(rows)

    frames, files_col, lines_col = [], [], []
    padded, unreadable, empty = [], [], []
    for rows in per_file:
        counts = np.asarray(rows.counts, dtype=np.int64)
        n = int(counts.sum())
        if rows.empty_records:
            empty.append(f"{rows.label} {rows.empty_records}")
        if n == 0:
            continue
        answers, quality, n_unreadable, reference = _normalise_file(rows, normaliser)
        record = np.repeat(np.arange(len(counts)), counts)
        starts = np.cumsum(counts) - counts
        sample = np.arange(n) - np.repeat(starts, counts)
        questions = np.array(rows.questions, dtype=object)[record]
        cost, tin, tout = prices.costs(rows.model, questions, rows.generated)
        frames.append(pd.DataFrame({
            "prompt_id": np.char.add(f"{rows.task}:", record.astype(str)).astype(object),
            "task": rows.task,
            "prompt": questions,
            "model": rows.model,
            "sample": sample,
            "answer": pd.Series(answers, dtype=object),  # None where no answer (not NaN)
            "reference": reference,
            "quality": quality,
            "cost": cost,
            "input_tokens": tin,
            "output_tokens": tout,
        }))
        files_col.append(np.full(n, str(rows.path), dtype=object))
        lines_col.append(record)
        if rows.padded:
            padded.append(f"{rows.label} {rows.padded} of {n}")
        if rows.null or n_unreadable:
            unreadable.append(f"{rows.label} {rows.null + n_unreadable} of {n} "
                              f"({rows.null} null, {n_unreadable} unreadable)")
    if not frames:
        raise DataError("no completions: every record's 'generated' list is empty", file=str(path),
                        column="generated")
    df = pd.concat(frames, ignore_index=True)
    prov = Provenance(file=np.concatenate(files_col), line=np.concatenate(lines_col),
                      columns={"answer": "results", "quality": "results", "reference": "answer", "prompt": "question",
                               "prompt_id": "question", "cost": "generated", "input_tokens": "question",
                               "output_tokens": "generated", "sample": "generated"},
                      unit="record")

    notes = [
        f"costs estimated: tokens = ceil(characters / 4) of the question (input) and of each completion (output), "
        f"priced with {prices.source}; the few-shot prompt the authors sent with each question is not recorded, "
        "so input tokens and costs are a lower bound",
        "answers normalised with " + (
            ("a user normaliser" if callable(normaliser) else f"the {normaliser!r} normaliser") if normaliser is not None
            else "'date' for date* tasks, 'number' for gsm* and asdiv*, 'number' or 'text' by the gold's type for "
                 "tabmwp*, 'text' otherwise") + "; quality = 1 when the answer equals the normalised gold",
    ]
    if padded:
        notes.append("samples padded as no-answer because 'results' is shorter than 'generated' (failed program "
                     "runs were dropped, so later answers may not line up with their completions): "
                     + "; ".join(padded))
    if unreadable:
        notes.append("answers that count as no answer (no vote, quality 0): null in 'results', or text the "
                     "normaliser could not read: " + "; ".join(unreadable))
    if empty:
        notes.append("records with no completions (no rows; their prompts are absent for that model): "
                     + "; ".join(empty))
    if skipped:
        notes.append(f"skipped {len(skipped)} JSON file(s) that are not MoT-cascade records: "
                     + ", ".join(p.relative_to(root).as_posix() for p in skipped))
    return df, prov, notes


__all__ = ["DEFAULT_PRICES", "MODEL_OF_FOLDER", "is_mot_file", "is_mot_folder", "mot_files", "read_mot",
           "read_records", "sniff", "task_of"]
