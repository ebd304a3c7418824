"""The outcome table: callwise's one data currency.

One row per recorded call (prompt x model x sample) with its quality and dollar cost. Loaders in
:mod:`callwise.io` turn benchmark files into this table; policies and the frontier math read it as
dense ``prompts x models x samples`` arrays (:class:`DenseView`).

Validation is strict and happens once, when a table is built: every error names the file, the
row (line) or prompt, and the column, and says what was expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import DataError
from .files import atomic_write

#: Columns of the canonical table: name -> (kind, required). ``kind`` is one of str/int/float.
SCHEMA: dict[str, tuple[str, bool]] = {
    "prompt_id": ("str", True),
    "task": ("str", False),
    "prompt": ("str", False),
    "model": ("str", True),
    "sample": ("int", False),
    "answer": ("str", False),
    "reference": ("str", False),
    "quality": ("float", True),
    "cost": ("float", True),
    "latency": ("float", False),
    "input_tokens": ("int", False),
    "output_tokens": ("int", False),
    "confidence": ("float", False),
    "keep": ("float", False),
    "split": ("str", False),
}
REQUIRED = tuple(c for c, (_, req) in SCHEMA.items() if req)
#: Columns a command may leave unread: the text and the per-call signals that only some policies use
#: (:meth:`~callwise.core.policy.Policy.reads` declares a policy's). The others (the key, task,
#: quality, cost, split) are the outcomes themselves, read by every command.
OPTIONAL_COLUMNS: tuple[str, ...] = ("prompt", "answer", "reference", "latency", "input_tokens", "output_tokens",
                                     "confidence", "keep")
#: The columns every loaded table keeps, whatever a command reads: what ``fingerprint()`` hashes.
CORE_COLUMNS: tuple[str, ...] = tuple(c for c in SCHEMA if c not in OPTIONAL_COLUMNS)
KEY = ("prompt_id", "model", "sample")
DEFAULT_TASK = "default"
SPLITS = ("train", "test")


@dataclass
class Provenance:
    """Where each row of a candidate table came from, so errors can point at the input.

    ``file`` and ``line`` are per row (or one value for all rows); ``columns`` maps a canonical
    column to the name it had in the input (one name, or one per row for wide tables).
    """

    file: Any = None
    line: Any = None
    columns: dict[str, Any] = field(default_factory=dict)
    unit: str = "row"

    def where(self, i: int) -> tuple[str | None, str]:
        f = self.file[i] if isinstance(self.file, np.ndarray) else self.file
        if self.line is None:
            return f, f"row {i + 1}"
        ln = self.line[i] if isinstance(self.line, np.ndarray) else self.line
        return f, (f"{self.unit} {ln}" if isinstance(ln, (int, np.integer)) else str(ln))

    def column(self, name: str, i: int) -> str:
        c = self.columns.get(name, name)
        return str(c[i]) if isinstance(c, np.ndarray) else str(c)

    def take(self, idx: np.ndarray) -> "Provenance":
        pick = lambda v: v[idx] if isinstance(v, np.ndarray) else v  # noqa: E731
        return Provenance(pick(self.file), pick(self.line), {k: pick(v) for k, v in self.columns.items()}, self.unit)


@dataclass(frozen=True)
class DenseView:
    """Prompts x models x samples arrays of one table (or one task of it), for fast simulation.

    Cells with no recorded call are NaN in ``quality`` and ``cost``. ``answers`` is an object array
    of the same shape (None where absent) when the table has answers; ``keep`` holds a filter's
    recorded verdicts (1 keep, 0 drop; Filter-Vote reads them) when the table has them.
    ``references`` holds each prompt's gold answer (the ``reference`` column: what metric-aware
    aggregation scores its predictions against) when the table has one.
    """

    prompt_ids: np.ndarray
    tasks: np.ndarray
    prompts: np.ndarray
    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray | None = None
    confidence: np.ndarray | None = None
    answers: np.ndarray | None = None
    keep: np.ndarray | None = None
    references: np.ndarray | None = None

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise DataError(f"model {model!r} is not in this data; models are {list(self.models)}") from None

    def take(self, idx: np.ndarray | Sequence[int]) -> "DenseView":
        """The same view restricted to the prompts at ``idx`` (a bootstrap resample, a split)."""
        idx = np.asarray(idx)
        opt = lambda a: None if a is None else a[idx]  # noqa: E731
        return DenseView(self.prompt_ids[idx], self.tasks[idx], self.prompts[idx], self.models,
                         self.quality[idx], self.cost[idx], opt(self.latency), opt(self.confidence),
                         opt(self.answers), opt(self.keep), opt(self.references))


class OutcomeTable:
    """A validated long table of recorded calls.

    Build one with :meth:`from_frame` (validates) or a loader in :mod:`callwise.io`. ``frame`` is
    the canonical pandas DataFrame, sorted by (task, prompt_id, model, sample); ``meta`` records
    where the data came from and whether its costs were estimated.
    """

    def __init__(self, frame: pd.DataFrame, meta: dict[str, Any] | None = None) -> None:
        self.frame = frame
        self.meta: dict[str, Any] = dict(meta or {})

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        provenance: Provenance | None = None,
        *,
        quality_range: tuple[float, float] = (0.0, 1.0),
        drop_incomplete: bool = False,
        meta: Mapping[str, Any] | None = None,
        partial: bool = False,
    ) -> "OutcomeTable":
        """Validate a canonical frame and build the table.

        ``quality_range`` declares the range of the input's quality values; values are checked
        against it and rescaled linearly to [0, 1]. ``drop_incomplete`` drops prompts that lack an
        outcome for some model of their task instead of raising (the dropped prompts are listed in
        ``meta['dropped_prompts']``). ``partial=True`` skips that completeness check altogether (a
        live run's log of the calls a policy made; ``meta['partial']`` says so).
        """
        prov = provenance or Provenance(file=(meta or {}).get("source"))
        meta = dict(meta or {})
        df = df.reset_index(drop=True)
        _check_columns(df, prov)
        df = _coerce(df, prov)
        _check_values(df, prov, quality_range)
        lo, hi = quality_range
        if (lo, hi) != (0.0, 1.0):
            df["quality"] = (df["quality"] - lo) / (hi - lo)
            meta["quality_range"] = [lo, hi]
        df, kept = _dedupe(df, prov)
        prov = prov.take(kept) if kept is not None else prov
        if partial:
            dropped, meta["partial"] = [], True
        else:
            df, dropped = _check_complete(df, prov, drop_incomplete)
        if dropped:
            meta["dropped_prompts"] = dropped
        _check_prompt_consistency(df, prov)
        df = df.sort_values(["task", "prompt_id", "model", "sample"], kind="stable").reset_index(drop=True)
        return cls(df, meta)

    # -- basic facts ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (f"OutcomeTable({len(self)} outcomes, {self.frame['prompt_id'].nunique()} prompts, "
                f"{len(self.models())} models, tasks={self.tasks()})")

    def tasks(self) -> list[str]:
        return sorted(self.frame["task"].unique().tolist())

    def models(self, task: str | None = None) -> list[str]:
        f = self.frame if task is None else self.frame[self.frame["task"] == task]
        return sorted(f["model"].unique().tolist())

    def prompt_ids(self, task: str | None = None) -> np.ndarray:
        f = self.frame if task is None else self.frame[self.frame["task"] == task]
        return f["prompt_id"].drop_duplicates().to_numpy()

    @property
    def has_split(self) -> bool:
        return "split" in self.frame.columns and self.frame["split"].notna().all()

    @property
    def costs_estimated(self) -> bool:
        return bool(self.meta.get("costs_estimated", False))

    def fingerprint(self) -> str:
        """A content hash of the outcomes (the :data:`CORE_COLUMNS`; order-independent): names the data
        in results. It does not depend on which optional columns a command read (a table loaded with
        ``columns=`` has the same fingerprint as the whole file); :meth:`column_fingerprints` names those."""
        return _hash_rows(self.frame[[c for c in CORE_COLUMNS if c in self.frame.columns]])

    def column_fingerprints(self) -> dict[str, str]:
        """A content hash of each optional column this table holds (each row keyed by its outcome, so
        order-independent): with :meth:`fingerprint`, names exactly the data a result was computed from."""
        f = self.frame
        return {c: _hash_rows(f[["prompt_id", "model", "sample", c]]) for c in OPTIONAL_COLUMNS if c in f.columns}

    @property
    def columns_read(self) -> tuple[str, ...] | None:
        """The optional columns this table was loaded with (``load(columns=...)``, :meth:`project`);
        None: every column the data has."""
        got = self.meta.get("columns_read")
        return None if got is None else tuple(got)

    def project(self, columns: Iterable[str]) -> "OutcomeTable":
        """The table with only these of the :data:`OPTIONAL_COLUMNS` (and every core column): what
        ``load(path, columns=...)`` builds, from a table already in memory."""
        keep = check_columns(columns, where="project")
        drop = [c for c in OPTIONAL_COLUMNS if c in self.frame.columns and c not in keep]
        return OutcomeTable(self.frame.drop(columns=drop), {**self.meta, "columns_read": sorted(keep)})

    # -- views ---------------------------------------------------------------------------------
    def select(self, mask: np.ndarray | pd.Series) -> "OutcomeTable":
        """Rows where ``mask`` holds, as a new table (no re-validation: a subset stays valid)."""
        return OutcomeTable(self.frame[np.asarray(mask)].reset_index(drop=True), self.meta)

    def for_task(self, task: str) -> "OutcomeTable":
        """The rows of one task. The table is sorted by task, so this is one contiguous slice of the
        frame (found by binary search on the task codes), not a boolean mask over every row."""
        col = self.frame["task"]
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.is_monotonic_increasing:
            codes = col.cat.codes.to_numpy()
            at = col.cat.categories.get_indexer([task])[0]
            if at >= 0 and (len(codes) < 2 or bool((codes[1:] >= codes[:-1]).all())):
                lo, hi = np.searchsorted(codes, [at, at + 1])
                return OutcomeTable(self.frame.iloc[lo:hi].reset_index(drop=True), self.meta)
        return self.select(col == task)

    def for_prompts(self, prompt_ids: Sequence[str] | np.ndarray) -> "OutcomeTable":
        return self.select(self.frame["prompt_id"].isin(set(prompt_ids)))

    def dense(self, models: Sequence[str] | None = None) -> DenseView:
        """Prompts x models x samples arrays (prompts in table order; NaN where not recorded)."""
        f = self.frame
        models = tuple(models) if models is not None else tuple(self.models())
        pcode, pids = _factorize(f["prompt_id"])
        mcode = pd.Index(models).get_indexer(f["model"])
        keep = mcode >= 0
        s = f["sample"].to_numpy()
        P, M, S = len(pids), len(models), (int(s.max()) + 1 if len(s) else 1)
        first = np.unique(pcode, return_index=True)[1]

        def fill(col: str, dtype: Any = float, empty: Any = np.nan) -> np.ndarray:
            a = np.full((P, M, S), empty, dtype=dtype)
            a[pcode[keep], mcode[keep], s[keep]] = f[col].to_numpy()[keep]
            return a

        has = lambda c: c in f.columns and f[c].notna().any()  # noqa: E731
        at_first = lambda c: f[c].iloc[first].to_numpy(dtype=object)  # noqa: E731  (one value a prompt)
        prompts = at_first("prompt") if "prompt" in f.columns else np.asarray(pids, dtype=object)
        return DenseView(
            prompt_ids=np.asarray(pids, dtype=object),
            tasks=at_first("task"),
            prompts=prompts,
            models=models,
            quality=fill("quality"),
            cost=fill("cost"),
            latency=fill("latency") if has("latency") else None,
            confidence=fill("confidence") if has("confidence") else None,
            answers=fill("answer", object, None) if has("answer") else None,
            keep=fill("keep") if has("keep") else None,
            references=at_first("reference") if has("reference") else None,
        )

    # -- storage -------------------------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> None:
        """Write the canonical table (with ``meta`` in the Parquet metadata) atomically."""
        write_parquet(self, path)


def check_columns(columns: Iterable[str], *, where: str = "columns") -> frozenset[str]:
    """``columns`` as a set of optional column names; a name that is not one is a :class:`DataError`."""
    if isinstance(columns, str):
        columns = [c for c in columns.split(",") if c]
    keep = frozenset(str(c) for c in columns)
    unknown = sorted(keep - set(OPTIONAL_COLUMNS))
    if unknown:
        core, other = [c for c in unknown if c in CORE_COLUMNS], [c for c in unknown if c not in CORE_COLUMNS]
        why = "; ".join([f"{core} always read (the outcomes themselves)"] * bool(core)
                        + [f"{other} not a column of the outcome table"] * bool(other))
        raise DataError(f"{where}: {unknown} are not optional columns ({why}); expected some of "
                        f"{list(OPTIONAL_COLUMNS)}")
    return keep


def _hash_rows(f: pd.DataFrame) -> str:
    h = pd.util.hash_pandas_object(f, index=False).to_numpy()
    return hashlib.sha256(",".join(f.columns).encode() + np.sort(h).tobytes()).hexdigest()[:16]


def _factorize(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (order of first appearance) and distinct values of a column, through the category codes
    when it is categorical (integers are factorized, not strings)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, first_codes = pd.factorize(col.cat.codes.to_numpy(), sort=False)
        return codes, col.cat.categories.to_numpy(dtype=object)[first_codes]
    codes, uniques = pd.factorize(col, sort=False)
    return codes, np.asarray(uniques, dtype=object)


# --------------------------------------------------------------------------------------------
# validation helpers (vectorised; each raises at the first offending row with its provenance)


def _show(value: Any) -> str:
    """repr of a value as the user wrote it (numpy scalars as plain Python: 1.5, not np.float64(1.5))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _fail(prov: Provenance, i: int, column: str, message: str) -> DataError:
    file, row = prov.where(int(i))
    return DataError(message, file=file, row=row, column=prov.column(column, int(i)))


def _check_columns(df: pd.DataFrame, prov: Provenance) -> None:
    if len(df) == 0:
        raise DataError("no outcomes: the input holds no rows", file=prov.file if isinstance(prov.file, str) else None)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        names = [str(prov.columns.get(c, c)) for c in missing]
        raise DataError(
            f"missing required column(s) {names}; the outcome table needs {list(REQUIRED)} "
            f"(map other names with a column mapping, e.g. --map quality=correct); found {list(df.columns)}",
            file=prov.file if isinstance(prov.file, str) else None,
            column=names[0],
        )


def _coerce(df: pd.DataFrame, prov: Provenance) -> pd.DataFrame:
    df = df[[c for c in SCHEMA if c in df.columns]].copy()
    if "task" not in df.columns:
        df["task"] = DEFAULT_TASK
    if "sample" not in df.columns:
        df["sample"] = 0
    df = df[[c for c in SCHEMA if c in df.columns]].copy()  # canonical column order, whatever the input's
    for col in df.columns:
        kind = SCHEMA[col][0]
        if kind == "str":
            v = df[col]
            if col in ("prompt_id", "model", "task"):
                bad = v.isna().to_numpy()
                if bad.any():
                    raise _fail(prov, np.flatnonzero(bad)[0], col, f"empty {col}; every outcome needs one")
            df[col] = as_text(v, sort=col in SORT_KEY)
            continue
        if df[col].dtype == bool:
            df[col] = df[col].astype(float)
        num = pd.to_numeric(df[col], errors="coerce")
        bad = (num.isna() & df[col].notna()).to_numpy()
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise _fail(prov, i, col, f"expected a number, got {_show(df[col].iloc[i])}")
        if kind == "int":
            vals = num.to_numpy(dtype=float)
            bad = np.isfinite(vals) & (vals != np.round(vals)) | (np.isfinite(vals) & (vals < 0))
            if col == "sample":
                bad |= ~np.isfinite(vals)
            if bad.any():
                i = np.flatnonzero(bad)[0]
                raise _fail(prov, i, col, f"expected a non-negative integer, got {_show(df[col].iloc[i])}")
            df[col] = num.astype("Int64") if col != "sample" else num.astype(np.int64)
        else:
            df[col] = num.astype(float)
    if "split" in df.columns:
        bad = ~df["split"].isin(SPLITS) & df["split"].notna()
        if bad.any():
            i = np.flatnonzero(bad.to_numpy())[0]
            raise _fail(prov, i, "split", f"expected 'train' or 'test', got {df['split'].iloc[i]!r}")
    return df


#: The columns the table is sorted by (their text categories are kept in sorted order, so sorting by
#: category codes is sorting by text).
SORT_KEY = ("task", "prompt_id", "model")


def as_text(v: pd.Series, *, sort: bool = False) -> pd.Series:
    """A text column as a pandas categorical of ``str``: each distinct value is held once.

    A prompt repeated once per model and sample (and a task, model or split name repeated on every
    row) then costs a small integer code per row, not a string. Non-string values (ids read as
    numbers) become their ``str``; missing values stay missing. Only the distinct values pass
    through Python, never every row. ``sort`` orders the categories as text, so that sorting the
    table by this column (by its codes) orders it as text.
    """
    if isinstance(v.dtype, pd.CategoricalDtype):
        cats = v.cat.categories
        if cats.dtype == (TEXT_DTYPE or object) and (TEXT_DTYPE or all(isinstance(x, str) for x in cats)):
            # already distinct text (a dictionary-encoded Parquet column): at most reorder
            if sort and not cats.is_monotonic_increasing:
                return v.cat.reorder_categories(cats.sort_values())
            return v
        codes, distinct = v.cat.codes.to_numpy(), cats
    else:
        codes, distinct = pd.factorize(v, use_na_sentinel=True)
    if len(distinct) and not (getattr(distinct, "dtype", None) == "str" or all(isinstance(x, str) for x in distinct)):
        distinct = pd.Index([x if isinstance(x, str) else str(x) for x in distinct], dtype=object)
    # merge values that are equal as text (1 and "1"); order them as text when asked
    names = pd.Index(distinct, dtype=object)
    uniq = names.unique()
    if sort:
        uniq = uniq.sort_values()
    inv = uniq.get_indexer(names) if len(names) else np.zeros(0, dtype=np.intp)
    codes = np.where(codes >= 0, inv[np.maximum(codes, 0)] if len(inv) else -1, -1)
    cat = pd.Categorical.from_codes(codes, categories=pd.Index(uniq, dtype=TEXT_DTYPE or object))
    return pd.Series(cat, index=v.index, name=v.name)


#: The dtype of text categories: pandas 3's ``str`` (Arrow-backed), or None (object) before it.
TEXT_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else None


def _check_values(df: pd.DataFrame, prov: Provenance, quality_range: tuple[float, float]) -> None:
    cost = df["cost"].to_numpy()
    for bad, what in ((np.isnan(cost), "NaN"), (np.isinf(cost), "infinite"), (cost < 0, "negative")):
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise _fail(prov, i, "cost", f"{what} cost {_show(cost[i])}; costs must be finite US dollars >= 0")
    lo, hi = quality_range
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise DataError(f"quality range must be two finite numbers lo < hi, got {quality_range}")
    q = df["quality"].to_numpy()
    bad = ~np.isfinite(q) | (q < lo) | (q > hi)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise _fail(prov, i, "quality",
                    f"quality {_show(q[i])} is outside [{lo:g}, {hi:g}]; declare another range "
                    f"(--quality-range LO,HI) if your metric uses one")
    if "keep" in df.columns:
        k = df["keep"].to_numpy()
        bad = ~np.isnan(k) & (k != 0) & (k != 1)
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise _fail(prov, i, "keep", f"a filter verdict must be 1 (keep) or 0 (drop), got {_show(k[i])}")
    for col in ("latency", "confidence"):
        if col in df.columns:
            v = df[col].to_numpy()
            # a confidence may be -inf (log-probability of 0); nothing may be +inf; latency >= 0
            bad = (v == np.inf) | ((v < 0) if col == "latency" else np.zeros(len(v), bool))
            if bad.any():
                i = np.flatnonzero(bad)[0]
                raise _fail(prov, i, col, f"invalid {col} {_show(v[i])}")


def _dedupe(df: pd.DataFrame, prov: Provenance) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Collapse duplicate (prompt_id, model, sample) rows that agree; raise on ones that disagree."""
    dup = df.duplicated(list(KEY), keep=False).to_numpy()
    if not dup.any():
        return df, None
    sub = df[dup]
    compare = [c for c in ("quality", "cost", "answer", "task") if c in df.columns]
    n_distinct = sub.groupby(list(KEY), sort=False, observed=True)[compare].nunique(dropna=False).max(axis=1)
    conflict = n_distinct[n_distinct > 1]
    if len(conflict):
        key = conflict.index[0]
        rows = np.flatnonzero(((df["prompt_id"] == key[0]) & (df["model"] == key[1]) & (df["sample"] == key[2])).to_numpy())
        g = df.iloc[rows]
        col = next(c for c in compare if g[c].nunique(dropna=False) > 1)
        places = "; ".join(" ".join(x for x in prov.where(r) if x) for r in rows[:3])
        raise DataError(
            f"duplicate outcome for prompt {key[0]!r}, model {key[1]!r}, sample {key[2]} with different "
            f"{col} values {g[col].tolist()[:3]} ({places}); each (prompt_id, model, sample) must be recorded once",
            file=prov.where(int(rows[0]))[0], row=f"prompt {key[0]!r}", column=prov.column(col, int(rows[0])),
        )
    kept = np.flatnonzero(~df.duplicated(list(KEY), keep="first").to_numpy())
    return df.iloc[kept].reset_index(drop=True), kept


def _check_complete(df: pd.DataFrame, prov: Provenance, drop: bool) -> tuple[pd.DataFrame, list[str]]:
    """Every prompt must have sample 0 of every model that its task has."""
    s0 = df[df["sample"] == 0]
    per_task_models = s0.groupby("task", observed=True)["model"].nunique()
    per_prompt = s0.groupby(["task", "prompt_id"], observed=True)["model"].nunique()
    need = per_task_models.reindex(per_prompt.index.get_level_values(0)).to_numpy()
    short = per_prompt[per_prompt.to_numpy() < need]
    # prompts that only have samples > 0 for some model also count as incomplete
    all_prompts = df[["task", "prompt_id"]].drop_duplicates()
    no_s0 = all_prompts[~all_prompts.set_index(["task", "prompt_id"]).index.isin(per_prompt.index)]
    bad_ids = set(short.index.get_level_values(1)) | set(no_s0["prompt_id"])
    if not bad_ids:
        return df, []
    if drop:
        return df[~df["prompt_id"].isin(bad_ids)].reset_index(drop=True), sorted(bad_ids)
    lines = []
    for task, models in s0.groupby("task", observed=True)["model"].unique().items():
        tp = df[df["task"] == task]["prompt_id"].unique()
        bad_t = [p for p in tp if p in bad_ids]
        if not bad_t:
            continue
        have = s0[s0["prompt_id"].isin(bad_t)].groupby("model", observed=True)["prompt_id"].nunique()
        for m in sorted(models):
            n_missing = len(bad_t) - int(have.get(m, 0))
            if n_missing:
                have_m = set(s0[(s0["model"] == m) & s0["prompt_id"].isin(bad_t)]["prompt_id"])
                ex = [p for p in bad_t if p not in have_m][:5]
                lines.append(f"task {task!r}: model {m!r} missing for {n_missing} prompt(s), e.g. {ex}")
    if isinstance(prov.file, np.ndarray):  # per-row files (RouterBench, folders): name those of the bad prompts
        file = ", ".join(sorted({str(f) for f in prov.file[df["prompt_id"].isin(bad_ids).to_numpy()]})) or None
    else:
        file = prov.file if isinstance(prov.file, str) else None
    raise DataError(
        f"{len(bad_ids)} prompt(s) lack an outcome for some model of their task: " + "; ".join(lines)
        + ". Pass --drop-incomplete (drop_incomplete=True) to drop those prompts.",
        file=file, column="model",
    )


def _check_prompt_consistency(df: pd.DataFrame, prov: Provenance) -> None:
    n_tasks = df.groupby("prompt_id", observed=True)["task"].nunique()
    if (n_tasks > 1).any():
        pid = n_tasks[n_tasks > 1].index[0]
        raise DataError(f"prompt {pid!r} appears under several tasks {sorted(df[df.prompt_id == pid]['task'].unique())}; "
                        "prompt ids must be unique within a dataset", row=f"prompt {pid!r}", column=prov.column("task", 0))
    if "reference" in df.columns:
        n_ref = df.groupby("prompt_id", observed=True)["reference"].nunique()
        if (n_ref > 1).any():
            pid = n_ref[n_ref > 1].index[0]
            refs = sorted(df.loc[df.prompt_id == pid, "reference"].dropna().unique())[:3]
            raise DataError(f"prompt {pid!r} has different reference answers {refs}; the reference is the prompt's "
                            "gold answer and must be the same on every row of the prompt", row=f"prompt {pid!r}",
                            column=prov.column("reference", 0))
    if "split" in df.columns:
        n_split = df.groupby("prompt_id", observed=True)["split"].nunique()
        if (n_split > 1).any():
            pid = n_split[n_split > 1].index[0]
            raise DataError(f"prompt {pid!r} is in both train and test", row=f"prompt {pid!r}", column=prov.column("split", 0))


#: Parquet schema metadata key of the table's ``meta`` (JSON).
META_KEY = b"callwise.meta"


def write_parquet(table: OutcomeTable, path: str | Path) -> None:
    """Write the canonical table to Parquet with its ``meta``; atomic (temp file, then rename)."""
    atomic_write(Path(path), parquet_writer(table))


def parquet_writer(table: OutcomeTable) -> Callable[[IO[bytes]], None]:
    """A function writing the table as Parquet (with its ``meta``) to a binary file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table.frame, preserve_index=False)
    md = dict(arrow.schema.metadata or {})
    md[META_KEY] = json.dumps(table.meta, default=str).encode()
    arrow = arrow.replace_schema_metadata(md)
    return lambda f: pq.write_table(arrow, f)
