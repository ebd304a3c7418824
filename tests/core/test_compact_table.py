"""The outcome table holds text compactly (issue 22): each distinct text once, as pandas categoricals,
with the same values, order, fingerprint and dense arrays as a table of plain strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from callwise.core.outcomes import OutcomeTable, as_text
from callwise.io import load_sample


def test_as_text_holds_each_value_once_and_turns_ids_into_text() -> None:
    v = as_text(pd.Series([3, "3", None, 10, 3.5, "b", "b"], dtype=object), sort=True)
    assert isinstance(v.dtype, pd.CategoricalDtype)
    assert list(v.cat.categories) == sorted(["3", "10", "3.5", "b"])  # 3 and "3" are one text
    assert v.isna().tolist() == [False, False, True, False, False, False, False]
    assert v.astype(object).where(v.notna(), None).tolist() == ["3", "3", None, "10", "3.5", "b", "b"]


def test_as_text_keeps_a_dictionary_column_and_sorts_its_categories_when_asked() -> None:
    v = pd.Series(pd.Categorical(["z", "a", "z"], categories=pd.Index(["z", "a"], dtype=str)))
    out = as_text(v, sort=True)
    assert list(out.cat.categories) == ["a", "z"] and out.tolist() == ["z", "a", "z"]
    assert as_text(v, sort=False) is v


def _plain(t: OutcomeTable) -> pd.DataFrame:
    """The frame with every text column as plain strings (what the table held before issue 22)."""
    f = t.frame.copy()
    for c in f.columns:
        if isinstance(f[c].dtype, pd.CategoricalDtype):
            f[c] = f[c].astype(object).where(f[c].notna(), None)
    return f


def test_text_columns_are_categorical_and_the_table_is_unchanged_otherwise() -> None:
    t = load_sample()
    cats = [c for c in t.frame.columns if isinstance(t.frame[c].dtype, pd.CategoricalDtype)]
    assert {"prompt_id", "task", "model", "prompt"} <= set(cats)
    # the same table built from plain strings: same rows, same order, same fingerprint
    again = OutcomeTable.from_frame(_plain(t))
    pd.testing.assert_frame_equal(_plain(again), _plain(t))
    assert again.fingerprint() == t.fingerprint()
    # sorted as text: the canonical order is that of the plain strings
    f = _plain(t)
    order = f.sort_values(["task", "prompt_id", "model", "sample"], kind="stable").index.to_numpy()
    assert (order == np.arange(len(f))).all()


@pytest.mark.parametrize("task", ["first", "last"])
def test_for_task_slice_equals_the_masked_rows(task: str) -> None:
    t = load_sample()
    name = t.tasks()[0 if task == "first" else -1]
    fast, masked = t.for_task(name), t.select(t.frame["task"] == name)
    pd.testing.assert_frame_equal(fast.frame, masked.frame)
    assert t.for_task("no such task").frame.empty


def test_dense_equals_a_row_by_row_construction() -> None:
    t = load_sample()
    d = t.dense()
    f = _plain(t)
    pids = list(dict.fromkeys(f["prompt_id"]))  # order of first appearance
    assert d.prompt_ids.tolist() == pids
    first = f.drop_duplicates("prompt_id").set_index("prompt_id")
    assert d.tasks.tolist() == first.loc[pids, "task"].tolist()
    assert d.prompts.tolist() == first.loc[pids, "prompt"].tolist()
    for _, r in f.sample(200, random_state=0).iterrows():
        i, m = pids.index(r["prompt_id"]), d.models.index(r["model"])
        assert d.quality[i, m, r["sample"]] == r["quality"] and d.cost[i, m, r["sample"]] == r["cost"]
