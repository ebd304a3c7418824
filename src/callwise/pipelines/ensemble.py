"""Exact, vectorised scoring of ensemble-vote pipelines on recorded outcomes.

An *ensemble-vote pipeline* has ``L`` answerer slots, each a call to one model on the same
question, followed by a plurality vote over the slots' answers. LLMSelector (Chen et al. 2025)
picks a model per slot; an *allocation* is the int array of model indices, shape ``(L,)``, and
many allocations are an ``(A, L)`` array. With one recorded answer per model per question, every
allocation's answer on every question is determined, so allocations can be scored exactly rather
than estimated -- and exhaustively: 9 models x 5 slots is 9^5 = 59,049 allocations.

What is here:

- :func:`join_by_prompt` puts the models of several tasks that asked the same questions side by
  side (rational-cascades records MMLU once per model chain: 5 Llama models under ``mmlu-llama``
  and 4 others under ``mmlu-qwen_oai``; joined, each question has 9 models to choose from).
- :func:`infer_references` recovers each question's gold answer from the answers graded correct,
  for data that records correctness but no reference column (rational-cascades, RouterBench).
- :class:`EnsembleOutcomes` holds the encoded answers and scores allocations:
  :meth:`~EnsembleOutcomes.score` per query, :meth:`~EnsembleOutcomes.mean_scores` averaged
  and chunked (what an exhaustive search calls), :meth:`~EnsembleOutcomes.slot_quality` per slot.
- :func:`all_allocations` enumerates every allocation in ``itertools.product`` order.

**Vote semantics** (those of :func:`callwise.voting.plurality`): abstentions (a missing answer or
one the normaliser cannot read) cast no vote; among the answers with the most votes the one seen
first in slot order wins; when every slot abstains the vote has no answer, worth
:data:`callwise.voting.EMPTY_QUALITY`.

**Cost semantics ("reuse").** A model used in several slots is asked the same question with the
same prompt; on recorded data it gives the same answer, and a live system deduplicates identical
calls (a response cache at temperature 0), so it is paid once: an allocation's cost on a question
is the sum of the recorded costs of its *distinct* models.

**How the vote is vectorised.** Answers are small per-question integer categories ``codes (Q, M)``.
A precomputed agreement table ``agree[m1 * M + m2, q] = (codes[q, m1] == codes[q, m2] >= 0)``,
laid out ``(M * M, Q)``, turns "how many slots share slot i's answer" into a sum of gathered rows:
``count_i = sum_j agree[a_i * M + a_j]``, each unordered pair of slots gathered once and added
to both. Gathering a row copies one contiguous block of queries, so a chunk of allocations costs
``L (L + 1) / 2`` row gathers of ``uint8`` and a few adds. The winner is the first slot holding
the largest count (a running strict maximum over the slots), which is exactly the first-seen tie
rule, and its quality is gathered from a per-model table ``model_value[m, q]`` (the value of
model ``m``'s answer, ``EMPTY_QUALITY`` where it abstains): if every slot abstains, all counts are
0, slot 0 wins and its abstention is worth ``EMPTY_QUALITY``, as it should be. No Python loop
runs over queries or allocations; the only loops are over slots, slot pairs and chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..core.errors import DataError, PolicyError
from ..core.normalise import normalise_array
from ..core.outcomes import DenseView, OutcomeTable
from ..voting import EMPTY_QUALITY, encode

__all__ = ["EnsembleOutcomes", "all_allocations", "infer_references", "join_by_prompt"]

#: A normaliser: a name from :mod:`callwise.core.normalise` or a function value -> str | None.
NormaliseSpec = Union[str, Callable[[Any], Any]]
#: Bytes of working memory one chunk of :meth:`EnsembleOutcomes.mean_scores` may use (~64 MB).
_CHUNK_BYTES = 64 * 1024 * 1024
#: Largest number of allocations :func:`all_allocations` will enumerate.
_MAX_ALLOCATIONS = 50_000_000
#: Quality at or above which a recorded answer counts as correct when inferring references.
CORRECT = 0.5


# --------------------------------------------------------------------------------------------
# joining tasks that asked the same questions


def _joined_name(tasks: Sequence[str]) -> str:
    """The common prefix before '-' of the task names (``mmlu-llama``, ``mmlu-qwen_oai`` -> ``mmlu``),
    or the names joined with '+' when they share none."""
    heads = {t.split("-", 1)[0] for t in tasks}
    if len(heads) == 1:
        head = heads.pop()
        if head:
            return head
    return "+".join(tasks)


def join_by_prompt(table: OutcomeTable, tasks: Sequence[str], task: str | None = None, *,
                   drop_incomplete: bool = False) -> OutcomeTable:
    """One task whose prompts are the questions the listed ``tasks`` share, with all their models.

    Rows of the listed tasks whose prompt text (and split, when the table has one) are equal
    become ONE prompt: its ``prompt_id`` is that of the first listed task's row and its task is
    ``task`` (default: the tasks' common name before '-', e.g. ``mmlu``). Datasets that record the
    same benchmark once per group of models (rational-cascades' two model chains) thereby get all
    their models side by side, so a selector can pick among all of them per question. Only the
    listed tasks' rows are returned. A prompt text that occurs several times within one task (a
    benchmark's duplicated question) is paired by occurrence order: the k-th copy in one task (in
    the table's prompt-id order) with the k-th copy in each other task.

    Raises :class:`DataError` when a listed task does not exist, a task has no prompt texts, the
    same model appears in two of the tasks (rename one first), or a prompt is not in every task
    (unless ``drop_incomplete``: those prompts are then dropped and ``meta['notes']`` says how
    many). The result is re-validated through :meth:`OutcomeTable.from_frame`.
    """
    tasks = list(tasks)
    if not tasks:
        raise DataError("join_by_prompt needs at least one task to join", column="task")
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise DataError(f"task(s) {dup} are listed more than once; list each task to join once", column="task")
    known = table.tasks()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise DataError(f"unknown task(s) {unknown}; the known tasks are {known}", column="task")
    f = table.frame
    if "prompt" not in f.columns:
        raise DataError(f"task {tasks[0]!r} has no prompt texts: the table has no 'prompt' column, and "
                        "joining tasks matches their prompts by text", column="prompt")
    sub = f[f["task"].isin(tasks)]

    # one row per (task, prompt): its text, split and occurrence rank among equal texts
    firsts = sub.drop_duplicates(["task", "prompt_id"])
    for t in tasks:
        p = firsts[firsts["task"] == t]
        missing = p["prompt"].isna().to_numpy()
        if missing.all():
            raise DataError(f"task {t!r} has no prompt texts; joining tasks matches their prompts by text",
                            column="prompt")
        if missing.any():
            ex = p["prompt_id"].to_numpy()[missing][:3].tolist()
            raise DataError(f"task {t!r}: {int(missing.sum())} of {len(p)} prompts have no prompt text "
                            f"(e.g. {ex}); joining tasks matches their prompts by text", column="prompt")

    # a model may belong to one task only, else the joined prompt would hold two outcomes of it
    owner: dict[str, str] = {}
    for t, models in sub.groupby("task", sort=False, observed=True)["model"].unique().items():
        for m in models:
            if m in owner:
                a, b = sorted([owner[m], str(t)], key=tasks.index)
                raise DataError(f"model {m!r} appears in both task {a!r} and task {b!r}; a joined prompt can "
                                "hold one outcome per model, so rename the model in one of the tasks first "
                                "(e.g. 'model@task')", column="model")
            owner[m] = str(t)

    keys = pd.DataFrame({
        "task": firsts["task"].to_numpy(),
        "prompt_id": firsts["prompt_id"].to_numpy(),
        "text": firsts["prompt"].to_numpy(),
        "split": (firsts["split"].fillna("").to_numpy() if "split" in firsts.columns else ""),
    })
    keys["rank"] = keys.groupby(["task", "text", "split"], sort=False, observed=True).cumcount()
    repeated = keys[keys["rank"] > 0].groupby("task", sort=False, observed=True).size()
    kcols = ["text", "split", "rank"]
    keys["key"] = keys.groupby(kcols, sort=False, observed=True).ngroup()
    n_tasks_per_key = keys.groupby("key", observed=True)["task"].nunique()
    complete = n_tasks_per_key.reindex(keys["key"]).to_numpy() == len(tasks)
    notes = list(table.meta.get("notes", []))
    if not complete.all():
        bad = keys[~complete]
        n_bad_keys = int(bad["key"].nunique())
        if not drop_incomplete:
            lines = []
            for t in tasks:
                have = set(keys.loc[keys["task"] == t, "key"])
                lack = bad[~bad["key"].isin(have)]
                if len(lack):
                    ex = lack.drop_duplicates("key")
                    lines.append(f"task {t!r} lacks {ex['key'].nunique()} of them (e.g. the prompt of "
                                 f"{ex['task'].iloc[0]!r} {ex['prompt_id'].iloc[0]!r})")
            raise DataError(f"{n_bad_keys} prompt(s) are not in every task of {tasks} (matched by prompt text"
                            f"{' and split' if 'split' in f.columns else ''}): " + "; ".join(lines)
                            + ". Pass drop_incomplete=True to drop those prompts.", column="prompt")
        notes.append(f"join_by_prompt: dropped {n_bad_keys} prompt(s) that are not in every task of {tasks}")
        keys = keys[complete]
    if keys.empty:
        raise DataError(f"the tasks {tasks} share no prompt text", column="prompt")

    name = task if task is not None else _joined_name(tasks)
    lead = keys[keys["task"] == tasks[0]].set_index("key")["prompt_id"]
    keys["new_id"] = lead.reindex(keys["key"]).to_numpy()
    new_id = pd.Series(keys["new_id"].to_numpy(),
                       index=pd.MultiIndex.from_arrays([keys["task"].to_numpy(), keys["prompt_id"].to_numpy()]))
    row_key = pd.MultiIndex.from_arrays([sub["task"].to_numpy(), sub["prompt_id"].to_numpy()])
    ids = new_id.reindex(row_key).to_numpy()
    keep = pd.notna(ids)
    df = sub[keep].copy()
    df["prompt_id"] = ids[keep]
    df["task"] = name
    n_prompts = int(keys["key"].nunique())
    notes.append(f"join_by_prompt: tasks {tasks} joined by prompt text"
                 f"{' and split' if 'split' in f.columns else ''} into task {name!r}: {n_prompts} prompts, "
                 f"{len(owner)} models")
    if len(repeated):
        per_task = ", ".join(f"{t!r}: {int(n)}" for t, n in repeated.items())
        notes.append(f"join_by_prompt: some prompts repeat an earlier prompt's text within their task ({per_task}); "
                     "the copies were paired across tasks in prompt-id order")
    meta = {**table.meta, "notes": notes, "joined_tasks": tasks}
    meta.pop("dropped_prompts", None)
    return OutcomeTable.from_frame(df, meta=meta, drop_incomplete=drop_incomplete)


# --------------------------------------------------------------------------------------------
# references


def _first_valid(norm: np.ndarray) -> np.ndarray:
    """Boolean mask of the cells of an object array that hold an answer (not None)."""
    return np.frompyfunc(lambda v: v is not None, 1, 1)(norm).astype(bool)


def infer_references(view: DenseView, normalise: NormaliseSpec = "text") -> tuple[np.ndarray, dict[str, int]]:
    """Each question's gold answer, inferred from the recorded answers graded correct.

    The reference of a question is the normalised answer of its recorded calls with quality >=
    0.5 (every model and sample); when those disagree the most common one is taken (ties: first in
    model order) and the question counts as a conflict; None when no call was correct (or no
    correct answer is readable). If the view has references (a ``reference`` column), those are
    used (normalised) instead. Datasets that record correctness but not the gold answer need this
    to score a vote exactly: the vote's winner may be an answer no single model's grade covers.

    Returns ``(refs, stats)``: ``refs`` a (Q,) object array, ``stats`` counts of questions and
    cells: ``given`` (references taken from the data), ``inferred`` (questions given an inferred
    reference), ``none_correct`` (questions no recorded call answered correctly), ``conflicts``
    (questions whose correct answers disagree), ``unreadable_correct`` (correct calls whose answer
    the normaliser cannot read) and ``regraded`` (recorded calls whose grade disagrees with
    ``answer == reference``: how much exact re-scoring departs from the recorded grades).
    """
    if view.answers is None:
        raise DataError("the data has no 'answer' column; references are inferred from the recorded answers",
                        column="answer")
    Q = view.n_prompts
    ans = view.answers.reshape(Q, -1)
    qual = view.quality.reshape(Q, -1)
    norm = normalise_array(ans, normalise)
    has = _first_valid(norm)
    recorded = np.isfinite(qual)
    correct = recorded & (np.nan_to_num(qual, nan=0.0) >= CORRECT)
    stats = {"given": 0, "inferred": 0, "none_correct": int((~correct.any(axis=1)).sum()), "conflicts": 0,
             "unreadable_correct": int((correct & ~has).sum()), "regraded": 0}
    if view.references is not None:
        refs = normalise_array(np.asarray(view.references, dtype=object), normalise)
        stats["given"] = int(_first_valid(refs).sum())
    else:
        refs = np.full(Q, None, dtype=object)
        use = correct & has
        rows = np.broadcast_to(np.arange(Q)[:, None], use.shape)[use]
        if rows.size:
            counts = pd.DataFrame({"q": rows, "a": norm[use]}).groupby(["q", "a"], sort=False, observed=True).size()
            # groups keep first-appearance order (row-major: model order), so idxmax takes the first on ties
            best = counts.groupby(level=0, sort=False).idxmax()
            refs[best.index.to_numpy()] = [k[1] for k in best.to_numpy()]
            n_distinct = counts.groupby(level=0).size()
            stats["conflicts"] = int((n_distinct > 1).sum())
        stats["inferred"] = int(_first_valid(refs).sum())
    ok = has & _first_valid(refs)[:, None]
    match = np.zeros(norm.shape, dtype=bool)
    if ok.any():
        match[ok] = norm[ok] == np.broadcast_to(refs[:, None], norm.shape)[ok]
    stats["regraded"] = int((recorded & (match != correct)).sum())
    return refs, stats


# --------------------------------------------------------------------------------------------
# allocations


def all_allocations(M: int, L: int) -> np.ndarray:
    """Every allocation of ``M`` models to ``L`` slots: an (M**L, L) int64 array in lexicographic
    (``itertools.product(range(M), repeat=L)``) order, the input of an exhaustive search."""
    if int(M) < 1 or int(L) < 1:
        raise PolicyError(f"all_allocations needs at least 1 model and 1 slot, got M={M}, L={L}")
    n = int(M) ** int(L)
    if n > _MAX_ALLOCATIONS:
        raise PolicyError(f"{M} models in {L} slots make {n:,} allocations, more than {_MAX_ALLOCATIONS:,}; "
                          "search them another way (greedy or per-slot) or use fewer models")
    return np.stack(np.unravel_index(np.arange(n, dtype=np.int64), (int(M),) * int(L)), axis=1).astype(np.int64)


def _check_allocs(allocs: Any, M: int, models: Sequence[str]) -> np.ndarray:
    """``allocs`` as a validated (A, L) int64 array (a 1-D allocation becomes A = 1)."""
    a = np.asarray(allocs)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise PolicyError(f"allocations must be an (A, L) array of model indices (or one (L,) allocation), "
                          f"got an array of shape {np.shape(allocs)}")
    if a.shape[1] == 0:
        raise PolicyError("an allocation needs at least one slot; got allocations with L = 0")
    if a.size and not (np.issubdtype(a.dtype, np.integer) and a.dtype != np.bool_):
        raise PolicyError(f"allocations must hold integer model indices in [0, {M}), got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    bad = (a < 0) | (a >= M)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise PolicyError(f"allocation {int(r)} slot {int(c)} holds model index {int(a[r, c])}, outside [0, {M}): "
                          f"the models are {list(models)}")
    return a


# --------------------------------------------------------------------------------------------
# the encoded outcomes


@dataclass(frozen=True)
class EnsembleOutcomes:
    """Recorded answers of ``M`` models on ``Q`` questions, encoded to score ensemble-vote allocations exactly.

    ``codes (Q, M)``: small int answer category of each model's (normalised) answer, numbered per
    question in model order; -1 is an abstention (no answer, or one the normaliser cannot read).
    ``value (Q, C)``: the quality of each category -- 1.0 / 0.0 against the reference when
    references are given or inferred, else the mean recorded quality of the models holding it.
    ``cost (Q, M)`` dollars and ``latency (Q, M)`` (or None) per call; ``answers (Q, M)`` the
    normalised answers. ``references`` (Q,) the references the values were graded against (None
    when graded by recorded quality) and ``reference_stats`` the counts of :func:`infer_references`.
    Build one with :meth:`from_table`.
    """

    models: tuple[str, ...]
    prompt_ids: np.ndarray
    codes: np.ndarray
    value: np.ndarray
    cost: np.ndarray
    latency: np.ndarray | None
    answers: np.ndarray
    references: np.ndarray | None = None
    reference_stats: Mapping[str, int] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_table(cls, data: OutcomeTable | DenseView, *, models: Sequence[str] | None = None,
                   normalise: NormaliseSpec = "text",
                   references: Literal["infer"] | None | np.ndarray | Sequence[Any] = "infer") -> "EnsembleOutcomes":
        """Encode sample 0 of each (question, model) of ``data`` (a table, or a dense view of one).

        ``models`` picks and orders the models (default: all, in the data's order); every chosen
        model needs a recorded call on every question (exact scoring has no room for a gap: join
        tasks with :func:`join_by_prompt` or pick one task first). ``normalise`` names how answers
        are compared (``"choice"`` for multiple-choice letters, ``"number"``, ``"text"``...).
        ``references``: ``"infer"`` grades categories against the data's reference column, or
        when it has none against references inferred from the answers graded correct
        (:func:`infer_references`); an array gives them (Q,); None grades each category by the mean
        recorded quality of the models that gave it (for answers no reference can settle).
        """
        if isinstance(data, OutcomeTable):
            if "answer" not in data.frame.columns or data.frame["answer"].isna().all():
                raise DataError("the data has no 'answer' column; scoring an ensemble vote needs each model's "
                                "recorded answer", column="answer")
            if models is not None:
                have = data.models()
                unknown = [m for m in models if m not in have]
                if unknown:
                    raise DataError(f"model(s) {unknown} are not in this data; models are {have}", column="model")
            view = data.dense(models)
        elif isinstance(data, DenseView):
            view = data
            if models is not None:
                idx = [view.model_index(m) for m in models]
                view = DenseView(view.prompt_ids, view.tasks, view.prompts, tuple(models), view.quality[:, idx],
                                 view.cost[:, idx], None if view.latency is None else view.latency[:, idx],
                                 None if view.confidence is None else view.confidence[:, idx],
                                 None if view.answers is None else view.answers[:, idx],
                                 None if view.keep is None else view.keep[:, idx], view.references)
        else:
            raise PolicyError(f"EnsembleOutcomes.from_table needs an OutcomeTable or a DenseView, got "
                              f"{type(data).__name__}")
        if view.answers is None:
            raise DataError("the data has no 'answer' column; scoring an ensemble vote needs each model's "
                            "recorded answer", column="answer")
        Q, M = view.quality.shape[:2]
        if M == 0:
            raise DataError("no models to encode", column="model")
        quality = view.quality[:, :, 0]
        cost = view.cost[:, :, 0]
        gap = ~np.isfinite(quality) | ~np.isfinite(cost)
        if gap.any():
            q, m = np.argwhere(gap)[0]
            raise DataError(f"{int(gap.sum())} (prompt, model) pair(s) have no recorded call (sample 0), e.g. "
                            f"model {view.models[m]!r} on prompt {view.prompt_ids[q]!r}; exact scoring needs every "
                            "model on every prompt: pick models of one task, or join tasks with join_by_prompt",
                            row=f"prompt {view.prompt_ids[q]!r}", column="model")
        norm = normalise_array(view.answers[:, :, 0], normalise)
        # the answers' per-question categories (numbered by first appearance) and each category's
        # mean recorded quality, exactly as votes encode samples; ``str`` keeps the normalised text
        enc = encode(norm, quality, cost, recorded=np.ones((Q, M), bool), normalise=str)
        codes = enc.codes.astype(np.int8 if M < 127 else np.int16)
        has = codes >= 0
        rows, local = np.nonzero(has)[0], codes[has]

        refs: np.ndarray | None
        stats: dict[str, int] | None = None
        if isinstance(references, str):
            if references != "infer":
                raise PolicyError(f"references must be 'infer', None or an array of Q answers, got {references!r}")
            sample0 = DenseView(view.prompt_ids, view.tasks, view.prompts, view.models, view.quality[:, :, :1],
                                view.cost[:, :, :1], answers=view.answers[:, :, :1], references=view.references)
            refs, stats = infer_references(sample0, normalise)
        elif references is None:
            refs = None
        else:
            given = np.asarray(references, dtype=object)
            if given.shape != (Q,):
                raise PolicyError(f"references must hold one answer per prompt, shape ({Q},), got {given.shape}")
            refs = normalise_array(given, normalise)

        if refs is not None:
            value = np.zeros(enc.value.shape, dtype=float)
            if rows.size:
                value[rows, local] = (norm[has] == refs[rows]).astype(float)
        else:
            value = np.nan_to_num(enc.value, nan=0.0)  # columns past a question's last category: 0
        latency = None if view.latency is None else np.asarray(view.latency[:, :, 0], dtype=float)
        return cls(tuple(view.models), np.asarray(view.prompt_ids, dtype=object), codes, value,
                   np.asarray(cost, dtype=float), latency, norm, refs, stats)

    # -- basic facts -----------------------------------------------------------------------
    @property
    def n_queries(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.codes.shape[1])

    def __repr__(self) -> str:
        return f"EnsembleOutcomes({self.n_queries} queries, {self.n_models} models: {list(self.models)})"

    def take(self, rows: np.ndarray | Sequence[int]) -> "EnsembleOutcomes":
        """The same outcomes on the questions at ``rows`` (a split, a bootstrap resample)."""
        r = self._rows(rows)
        opt = lambda a: None if a is None else a[r]  # noqa: E731
        return EnsembleOutcomes(self.models, self.prompt_ids[r], self.codes[r], self.value[r], self.cost[r],
                                opt(self.latency), self.answers[r], opt(self.references), self.reference_stats)

    def model_index(self, names: str | Sequence[str]) -> np.ndarray:
        """Indices of the named models (one name gives a 0-d array): turns names into an allocation."""
        single = isinstance(names, str)
        out = []
        for n in ([names] if single else list(names)):
            try:
                out.append(self.models.index(n))
            except ValueError:
                raise DataError(f"model {n!r} is not in this data; models are {list(self.models)}",
                                column="model") from None
        return np.asarray(out[0] if single else out, dtype=np.int64)

    # -- precomputed tables ------------------------------------------------------------------
    def _rows(self, rows: Any) -> np.ndarray:
        if rows is None:
            return np.arange(self.n_queries)
        r = np.asarray(rows)
        if r.dtype == np.bool_:
            if r.shape != (self.n_queries,):
                raise PolicyError(f"a boolean row mask needs {self.n_queries} entries, got shape {r.shape}")
            return np.flatnonzero(r)
        if r.size and not np.issubdtype(r.dtype, np.integer):
            raise PolicyError(f"rows must be integer indices or a boolean mask, got dtype {r.dtype}")
        r = r.astype(np.int64).reshape(-1)
        if r.size and (r.min() < -self.n_queries or r.max() >= self.n_queries):
            raise PolicyError(f"row index out of range for {self.n_queries} queries")
        return r

    def _agree(self) -> np.ndarray:
        """(M * M, Q) uint8: 1 where models m1 and m2 give the same (non-abstaining) answer."""
        if "agree" not in self._cache:
            c = self.codes.T  # (M, Q)
            M = self.n_models
            agree = (c[:, None, :] == c[None, :, :]) & (c >= 0)[:, None, :]
            self._cache["agree"] = np.ascontiguousarray(agree.reshape(M * M, -1), dtype=np.uint8)
        return self._cache["agree"]

    def _model_value(self) -> np.ndarray:
        """(M, Q) float32: the value of each model's own answer, EMPTY_QUALITY where it abstains."""
        if "model_value" not in self._cache:
            Q = self.n_queries
            got = self.value[np.arange(Q)[:, None], np.maximum(self.codes, 0)]
            mv = np.where(self.codes >= 0, got, EMPTY_QUALITY).T
            self._cache["model_value"] = np.ascontiguousarray(mv, dtype=np.float32)
        return self._cache["model_value"]

    def _tables(self, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(agree, model_value, cost (M, Q)) restricted to ``rows`` (contiguous copies)."""
        agree, mv, cost = self._agree(), self._model_value(), self.cost.T
        if rows is None:
            return agree, mv, np.ascontiguousarray(cost)
        r = self._rows(rows)
        return (np.ascontiguousarray(agree[:, r]), np.ascontiguousarray(mv[:, r]), np.ascontiguousarray(cost[:, r]))

    # -- scoring ---------------------------------------------------------------------------
    @staticmethod
    def _vote(allocs: np.ndarray, agree: np.ndarray, mv: np.ndarray, M: int, out: np.ndarray) -> None:
        """Write the vote's quality of each allocation of a chunk (B, L) into ``out`` (B, Q) float32."""
        B, L = allocs.shape
        Q = agree.shape[1]
        dt = np.uint8 if L < 255 else np.uint16
        counts = np.zeros((L, B, Q), dtype=dt)
        buf = np.empty((B, Q), dtype=np.uint8)
        base = allocs * M
        for i in range(L):
            np.take(agree, base[:, i] + allocs[:, i], axis=0, out=buf)  # slot i's own vote (0 if it abstains)
            counts[i] += buf
            for j in range(i + 1, L):
                np.take(agree, base[:, i] + allocs[:, j], axis=0, out=buf)
                counts[i] += buf
                counts[j] += buf
        best = counts[0]
        np.take(mv, allocs[:, 0], axis=0, out=out)
        vbuf = np.empty((B, Q), dtype=np.float32)
        better = np.empty((B, Q), dtype=bool)
        for i in range(1, L):
            np.greater(counts[i], best, out=better)  # strict: the first slot holding the maximum wins ties
            np.maximum(best, counts[i], out=best)
            np.take(mv, allocs[:, i], axis=0, out=vbuf)
            np.copyto(out, vbuf, where=better)

    def _used(self, allocs: np.ndarray) -> np.ndarray:
        """(A, M) float64: 1 where the allocation uses the model (in any number of slots)."""
        used = np.zeros((allocs.shape[0], self.n_models), dtype=np.float64)
        used[np.arange(allocs.shape[0])[:, None], allocs] = 1.0
        return used

    def _chunk(self, L: int, Q: int, chunk: int | None) -> int:
        if chunk is not None:
            if int(chunk) < 1:
                raise PolicyError(f"chunk must be a positive number of allocations, got {chunk}")
            return int(chunk)
        per_alloc = max(Q, 1) * (L + 1 + 4 + 4 + 1)  # counts, gather buffer, values, value buffer, mask
        return max(1, _CHUNK_BYTES // per_alloc)

    def score(self, allocs: Any, rows: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-query quality (A, Q) float32 and cost (A, Q) float64 of each allocation on ``rows``.

        ``allocs`` is (A, L) model indices (one (L,) allocation is A = 1); ``rows`` picks questions
        (indices or a boolean mask; default all). Quality is the value of the plurality answer of
        the L slots (abstentions cast no vote; ties to the answer seen first in slot order;
        ``EMPTY_QUALITY`` when every slot abstains); cost is the summed cost of the allocation's
        distinct models (a model used in several slots is paid once). Memory is A x Q x ~14
        bytes: to average many allocations call :meth:`mean_scores`, which works in chunks.
        """
        a = _check_allocs(allocs, self.n_models, self.models)
        agree, mv, cost = self._tables(rows)
        A, L = a.shape
        Q = agree.shape[1]
        quality = np.empty((A, Q), dtype=np.float32)
        step = self._chunk(L, Q, None)
        for s in range(0, A, step):
            self._vote(a[s:s + step], agree, mv, self.n_models, quality[s:s + step])
        return quality, self._used(a) @ cost

    def mean_scores(self, allocs: Any, rows: Any = None, *, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(A,) mean quality and mean cost over ``rows`` of each allocation, chunked over A.

        The same numbers as ``score(allocs, rows)`` averaged over queries, with working memory
        bounded (~64 MB; ``chunk`` sets the allocations per chunk): what an exhaustive search over
        all 9^5 = 59,049 or 11^5 = 161,051 allocations calls.
        """
        a = _check_allocs(allocs, self.n_models, self.models)
        agree, mv, cost = self._tables(rows)
        A, L = a.shape
        Q = agree.shape[1]
        mean_q = np.empty(A, dtype=np.float64)
        if Q == 0:
            mean_q[:] = np.nan
            return mean_q, np.full(A, np.nan)
        step = self._chunk(L, Q, chunk)
        buf = np.empty((min(step, A), Q), dtype=np.float32)
        for s in range(0, A, step):
            part = a[s:s + step]
            out = buf[:len(part)]
            self._vote(part, agree, mv, self.n_models, out)
            mean_q[s:s + len(part)] = out.mean(axis=1, dtype=np.float64)
        return mean_q, self._used(a) @ cost.mean(axis=1)

    def slot_quality(self, allocs: Any, slot: int, rows: Any = None) -> np.ndarray:
        """(A, Q) float32: the value of slot ``slot``'s own answer under each allocation
        (``EMPTY_QUALITY`` where it abstains) -- a diagnoser's signal of whether that module was right."""
        a = _check_allocs(allocs, self.n_models, self.models)
        L = a.shape[1]
        if not -L <= int(slot) < L:
            raise PolicyError(f"slot {slot} is out of range for allocations of {L} slot(s)")
        _, mv, _ = self._tables(rows)
        return np.take(mv, a[:, int(slot)], axis=0)
