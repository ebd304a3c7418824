"""Exact scoring of ensemble-vote allocations (callwise.pipelines.ensemble) against brute force,
reference inference, and joining tasks that asked the same questions."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from callwise.core.errors import DataError, PolicyError
from callwise.core.normalise import text
from callwise.core.outcomes import DenseView, OutcomeTable
from callwise.io import load
from callwise.pipelines.ensemble import (
    EnsembleOutcomes,
    all_allocations,
    infer_references,
    join_by_prompt,
)
from callwise.voting.engine import EMPTY_QUALITY

#: raw answers for random data: " A " and "a." normalise (text) to "a"; "" and None abstain
RAW = np.array(["a", "b", "c", " A ", "a.", "B", "", None], dtype=object)


def make_view(Q: int, M: int, seed: int, refs: bool = False) -> DenseView:
    """Random recorded answers with many ties and abstentions (a few all-abstaining questions)."""
    rng = np.random.default_rng(seed)
    ans = RAW[rng.integers(0, len(RAW), (Q, M))]
    ans[: max(1, Q // 10)] = None  # every model abstains on the first questions
    quality = rng.choice([0.0, 0.25, 1.0], (Q, M))
    cost = rng.random((Q, M)) * 0.01
    references = np.array([["a", "b", "zz"][i % 3] for i in range(Q)], dtype=object) if refs else None
    return DenseView(prompt_ids=np.array([f"q{i}" for i in range(Q)], dtype=object),
                     tasks=np.full(Q, "t", dtype=object), prompts=np.array([f"text {i}" for i in range(Q)], dtype=object),
                     models=tuple(f"m{j}" for j in range(M)), quality=quality[:, :, None], cost=cost[:, :, None],
                     answers=ans[:, :, None], references=references)


def brute_force(view: DenseView, allocs: np.ndarray, graded_by_refs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per allocation and question: Counter over the slots' normalised answers (abstentions skipped),
    the first-seen answer among the most common wins; its quality is 1/0 against the reference, or
    the mean recorded quality of the models that gave it; cost sums the distinct models' costs."""
    Q = view.n_prompts
    ans = view.answers[:, :, 0]
    qual = view.quality[:, :, 0]
    cost = view.cost[:, :, 0]
    A = len(allocs)
    out_q = np.zeros((A, Q))
    out_c = np.zeros((A, Q))
    for a, alloc in enumerate(allocs.tolist()):
        for q in range(Q):
            votes = [text(ans[q, m]) for m in alloc]
            counts = Counter(v for v in votes if v is not None)
            if not counts:
                out_q[a, q] = EMPTY_QUALITY
            else:
                top = max(counts.values())
                win = next(v for v in votes if v is not None and counts[v] == top)
                if graded_by_refs:
                    out_q[a, q] = float(win == view.references[q])
                else:
                    holders = [m for m in range(ans.shape[1]) if text(ans[q, m]) == win]
                    out_q[a, q] = float(np.mean(qual[q, holders]))
            out_c[a, q] = sum(cost[q, m] for m in set(alloc))
    return out_q, out_c


def random_allocs(M: int, L: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    allocs = rng.integers(0, M, (n, L))
    allocs[0] = 0  # one model in every slot
    if L > 1:
        allocs[1, : L // 2 + 1] = allocs[1, 0]  # a repeated model holds a majority of the slots
    return allocs


# --------------------------------------------------------------------------------------------
# the vote against brute force


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("L", [1, 2, 3, 4, 5])
def test_score_matches_brute_force(seed: int, L: int) -> None:
    M = 2 + (seed + L) % 5  # 2..6 models
    view = make_view(40, M, seed)
    allocs = random_allocs(M, L, 60, seed + 100)
    for graded_by_refs in (False, True):
        v = make_view(40, M, seed, refs=True) if graded_by_refs else view
        e = EnsembleOutcomes.from_table(v, references="infer" if graded_by_refs else None)
        q, c = e.score(allocs)
        ref_q, ref_c = brute_force(v, allocs, graded_by_refs)
        assert q.shape == (60, 40) and q.dtype == np.float32 and c.dtype == np.float64
        np.testing.assert_allclose(q, ref_q, rtol=0, atol=1e-6)
        np.testing.assert_allclose(c, ref_c, rtol=1e-12, atol=1e-15)


def test_tie_rule_and_abstentions_by_hand() -> None:
    # one question; models give b, a, None, "A " (= a), b
    ans = np.array([[["b"], ["a"], [None], ["A "], ["b"]]], dtype=object)
    view = DenseView(np.array(["q"], dtype=object), np.array(["t"], dtype=object), np.array(["x"], dtype=object),
                     ("m0", "m1", "m2", "m3", "m4"), np.ones((1, 5, 1)), np.array([[[1.0], [2.0], [4.0], [8.0], [16.0]]]),
                     answers=ans, references=np.array(["a"], dtype=object))
    e = EnsembleOutcomes.from_table(view)
    cases = {(0, 1, 3, 4): 0.0,  # b a a b: 2-2 tie, b seen first wins (wrong)
             (1, 0, 4, 3): 1.0,  # a b b a: a seen first wins
             (2, 2, 0, 1): 0.0,  # abstain abstain b a: abstentions cast no vote, b first
             (2, 1, 0, 4): 0.0,  # abstain a b b: b has two votes
             (2, 2, 2, 2): EMPTY_QUALITY,  # every slot abstains
             }
    q, c = e.score(np.array(list(cases)))
    assert q[:, 0].tolist() == list(cases.values())
    assert c[:, 0].tolist() == [27.0, 27.0, 7.0, 23.0, 4.0]  # repeated models are paid once


def test_repeated_model_paid_once_and_one_dim_alloc() -> None:
    e = EnsembleOutcomes.from_table(make_view(20, 4, 3))
    q1, c1 = e.score(np.array([2, 2, 2]))  # (L,) is one allocation
    q2, c2 = e.score(np.array([[2]]))
    assert q1.shape == (1, 20)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(c1, e.cost[:, 2][None, :])
    np.testing.assert_array_equal(c1, c2)


def test_mean_scores_equal_score_means_with_small_chunks() -> None:
    e = EnsembleOutcomes.from_table(make_view(50, 5, 7))
    allocs = all_allocations(5, 3)
    q, c = e.score(allocs)
    mq, mc = e.mean_scores(allocs, chunk=7)
    np.testing.assert_allclose(mq, q.mean(axis=1, dtype=np.float64), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mc, c.mean(axis=1), rtol=1e-12)
    # on a subset of the rows (indices and a mask) the same as scoring a take() of them
    rows = np.arange(0, 50, 3)
    mask = np.zeros(50, bool)
    mask[rows] = True
    sub_q, sub_c = e.take(rows).mean_scores(allocs)
    for r in (rows, mask):
        rq, rc = e.mean_scores(allocs, rows=r, chunk=11)
        np.testing.assert_allclose(rq, sub_q, rtol=1e-6)
        np.testing.assert_allclose(rc, sub_c, rtol=1e-12)
        np.testing.assert_array_equal(e.score(allocs, rows=r)[0], q[:, rows])


def test_slot_quality_is_each_slots_own_answer() -> None:
    view = make_view(30, 4, 5, refs=True)
    e = EnsembleOutcomes.from_table(view)
    allocs = random_allocs(4, 3, 20, 9)
    for slot in range(3):
        got = e.slot_quality(allocs, slot)
        expect = np.array([[float(text(view.answers[q, m, 0]) == view.references[q]) for q in range(30)]
                           for m in allocs[:, slot]])
        np.testing.assert_array_equal(got, expect)
    with pytest.raises(PolicyError, match="slot 3 is out of range for allocations of 3 slot"):
        e.slot_quality(allocs, 3)


def test_all_allocations_count_and_order() -> None:
    a = all_allocations(3, 4)
    assert a.shape == (81, 4) and np.issubdtype(a.dtype, np.integer)
    assert a.tolist() == [list(p) for p in itertools.product(range(3), repeat=4)]
    assert all_allocations(9, 5).shape == (59_049, 5)
    assert all_allocations(1, 1).tolist() == [[0]]
    with pytest.raises(PolicyError, match="at least 1 model and 1 slot"):
        all_allocations(0, 3)
    with pytest.raises(PolicyError, match="more than 50,000,000"):
        all_allocations(100, 5)


@pytest.mark.parametrize("allocs, message", [
    (np.zeros((2, 3, 1), int), r"\(A, L\) array of model indices .* shape \(2, 3, 1\)"),
    (np.array([[0.0, 1.0]]), r"integer model indices in \[0, 4\), got dtype float64"),
    (np.array([[0, 4]]), r"allocation 0 slot 1 holds model index 4, outside \[0, 4\)"),
    (np.array([[0, 1], [-1, 2]]), r"allocation 1 slot 0 holds model index -1"),
    (np.zeros((2, 0), int), r"at least one slot"),
    (np.array([[True, False]]), r"got dtype bool"),
])
def test_invalid_allocations_raise_policy_error(allocs: Any, message: str) -> None:
    e = EnsembleOutcomes.from_table(make_view(5, 4, 0))
    for call in (e.score, e.mean_scores):
        with pytest.raises(PolicyError, match=message):
            call(allocs)


# --------------------------------------------------------------------------------------------
# references


def hand_view(references: np.ndarray | None = None) -> DenseView:
    ans = np.array([["A", "a ", "B"],      # agreement: both correct answers are "a"
                    ["A", "B", "C"],       # nobody correct -> None
                    ["A", "B", "a"],       # correct: A, B, a -> conflict; "a" twice wins
                    ["x", None, "y"]],     # correct but unreadable middle one; ref "x"
                   dtype=object)[:, :, None]
    quality = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 1, 0]], float)[:, :, None]
    return DenseView(np.array(["p0", "p1", "p2", "p3"], dtype=object), np.full(4, "t", dtype=object),
                     np.array(["t0", "t1", "t2", "t3"], dtype=object), ("m0", "m1", "m2"), quality,
                     np.full((4, 3, 1), 0.01), answers=ans, references=references)


def test_infer_references_agreement_none_and_conflict() -> None:
    refs, stats = infer_references(hand_view(), "text")
    assert refs.tolist() == ["a", None, "a", "x"]
    assert stats == {"given": 0, "inferred": 3, "none_correct": 1, "conflicts": 1, "unreadable_correct": 1,
                     # p2: the correct "B" disagrees with ref "a"; p3: the correct abstention
                     "regraded": 2}


def test_infer_references_prefers_given_references() -> None:
    refs, stats = infer_references(hand_view(np.array(["B", "C", " b", None], dtype=object)), "text")
    assert refs.tolist() == ["b", "c", "b", None]
    assert stats["given"] == 3 and stats["inferred"] == 0 and stats["conflicts"] == 0
    # p0: A, a (correct, now wrong), B (wrong, now right) = 3; p1: C = 1; p2: A, a = 2; p3 unknown ref: x (correct) + abstention = 2
    assert stats["regraded"] == 8


def test_from_table_values_against_inferred_references() -> None:
    e = EnsembleOutcomes.from_table(hand_view(), normalise="text")
    assert e.codes.tolist() == [[0, 0, 1], [0, 1, 2], [0, 1, 0], [0, -1, 1]]
    assert e.value.tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert e.reference_stats is not None and e.reference_stats["conflicts"] == 1
    graded = EnsembleOutcomes.from_table(hand_view(), references=None)  # mean recorded quality per category
    assert graded.value.tolist() == [[1, 0, 0], [0, 0, 0], [1, 1, 0], [1, 0, 0]]
    given = EnsembleOutcomes.from_table(hand_view(), references=np.array(["B", "c.", "zz", "Y"], dtype=object))
    assert given.references is not None and given.references.tolist() == ["b", "c", "zz", "y"]
    assert given.value.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]]
    with pytest.raises(PolicyError, match=r"one answer per prompt, shape \(4,\), got \(2,\)"):
        EnsembleOutcomes.from_table(hand_view(), references=np.array(["a", "b"], dtype=object))


def test_from_table_needs_answers_and_complete_cells(write_file: Any) -> None:
    table = load(write_file("t.csv", "prompt_id,model,quality,cost\np1,a,1,0.01\np1,b,0,0.02\n"))
    with pytest.raises(DataError, match="no 'answer' column"):
        EnsembleOutcomes.from_table(table)
    two_tasks = load(write_file("u.csv", "prompt_id,task,model,answer,quality,cost\n"
                                         "p1,t1,a,x,1,0.01\np2,t2,b,y,1,0.02\n"))
    with pytest.raises(DataError, match="no recorded call .* join tasks with join_by_prompt"):
        EnsembleOutcomes.from_table(two_tasks)
    with pytest.raises(DataError, match=r"model\(s\) \['zz'\] are not in this data"):
        EnsembleOutcomes.from_table(two_tasks, models=["a", "zz"])


# --------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def rational(shared_data: Path) -> OutcomeTable:
    return load(shared_data / "rational-cascades")


def test_join_by_prompt_mmlu_nine_models(rational: OutcomeTable) -> None:
    joined = join_by_prompt(rational, ["mmlu-llama", "mmlu-qwen_oai"])
    assert joined.tasks() == ["mmlu"]
    assert len(joined.models()) == 9
    f = joined.frame
    assert (f.groupby("prompt_id")["model"].nunique() == 9).all()
    assert f["prompt_id"].nunique() == rational.frame.query("task == 'mmlu-llama'")["prompt_id"].nunique()
    assert f["prompt_id"].str.startswith("mmlu:llama:").all()
    assert any("joined by prompt text and split into task 'mmlu'" in n for n in joined.meta["notes"])
    # the qwen_oai chain's row for a question is now under the llama prompt id of the same text
    orig = rational.frame
    row = orig[(orig["prompt_id"] == "mmlu:qwen_oai:test:1") & (orig["model"] == "gpt-4o")].iloc[0]
    new = f[(f["prompt_id"] == "mmlu:llama:test:1") & (f["model"] == "gpt-4o")].iloc[0]
    assert (new["prompt"], new["answer"], new["quality"], new["cost"]) == (row["prompt"], row["answer"], row["quality"],
                                                                           row["cost"])
    assert joined.dense().quality.shape[:2] == (f["prompt_id"].nunique(), 9)
    named = join_by_prompt(rational, ["mmlu-qwen_oai", "mmlu-llama"], task="mmlu-all")
    assert named.tasks() == ["mmlu-all"] and named.frame["prompt_id"].str.startswith("mmlu:qwen_oai:").all()
    e = EnsembleOutcomes.from_table(joined, normalise="choice")
    assert e.n_models == 9 and e.reference_stats is not None and e.reference_stats["regraded"] == 0


def test_join_by_prompt_unknown_task(rational: OutcomeTable) -> None:
    with pytest.raises(DataError, match=r"unknown task\(s\) \['mmlu-gpt'\]; the known tasks are \[.*'mmlu-llama'"):
        join_by_prompt(rational, ["mmlu-llama", "mmlu-gpt"])


def small_table(rows: str) -> OutcomeTable:
    df = pd.DataFrame([r.split(",") for r in rows.strip().splitlines()],
                      columns=["prompt_id", "task", "prompt", "model", "answer", "quality", "cost"])
    return OutcomeTable.from_frame(df)


def test_join_by_prompt_model_collision() -> None:
    table = small_table("p1,x-1,what,a,A,1,0.1\np2,x-2,what,a,A,1,0.1\n")
    with pytest.raises(DataError, match="model 'a' appears in both task 'x-1' and task 'x-2'; .* rename"):
        join_by_prompt(table, ["x-1", "x-2"])


def test_join_by_prompt_incomplete_prompts_and_drop() -> None:
    table = small_table("p1,x-1,what,a,A,1,0.1\np2,x-1,why,a,B,0,0.1\n"
                        "r1,x-2,what,b,A,1,0.2\nr3,x-2,how,b,C,1,0.2\n")
    with pytest.raises(DataError, match=r"2 prompt\(s\) are not in every task .*task 'x-1' lacks 1 of them .*"
                                        r"drop_incomplete=True"):
        join_by_prompt(table, ["x-1", "x-2"])
    joined = join_by_prompt(table, ["x-1", "x-2"], drop_incomplete=True)
    assert joined.tasks() == ["x"] and joined.frame["prompt_id"].unique().tolist() == ["p1"]
    assert sorted(joined.models()) == ["a", "b"]
    assert any("dropped 2 prompt(s) that are not in every task" in n for n in joined.meta["notes"])


def test_join_by_prompt_needs_prompt_texts() -> None:
    df = pd.DataFrame({"prompt_id": ["p1", "r1"], "task": ["x-1", "x-2"], "model": ["a", "b"],
                       "quality": [1.0, 0.0], "cost": [0.1, 0.2]})
    with pytest.raises(DataError, match="task 'x-1' has no prompt texts"):
        join_by_prompt(OutcomeTable.from_frame(df), ["x-1", "x-2"])
    df["prompt"] = ["what", None]
    with pytest.raises(DataError, match="task 'x-2' has no prompt texts"):
        join_by_prompt(OutcomeTable.from_frame(df), ["x-1", "x-2"])


def test_from_table_routerbench_arc_choice(shared_data: Path) -> None:
    table = load(shared_data / "routerbench-subset" / "arc_challenge_test.csv.gz", drop_incomplete=True)
    e = EnsembleOutcomes.from_table(table, normalise="choice")
    assert e.n_models == 11 and e.references is not None
    view = table.dense()
    raw = view.answers[:, :, 0]
    assert raw.tolist() != e.answers.tolist()  # raw 'A\n', 'B)' were normalised
    has = e.codes >= 0
    own = np.where(has, e.value[np.arange(e.n_queries)[:, None], np.maximum(e.codes, 0)], np.nan)
    match = (e.answers == e.references[:, None]) & has
    assert ((own == 1.0) == match).all()  # value is 1 exactly where the answer equals the inferred reference
    assert (e.answers[~has] == None).all()  # noqa: E711  ('I do', 'Unfortunately I' abstain)
    stats = e.reference_stats
    assert stats is not None and stats["given"] == 0 and stats["inferred"] + stats["none_correct"] == e.n_queries
    # each model alone scores its recorded accuracy wherever the recorded grades agree with the references
    single_q, _ = e.mean_scores(np.arange(11)[:, None])
    recorded = view.quality[:, :, 0].mean(axis=0)
    assert np.abs(single_q - recorded).max() <= stats["regraded"] / e.n_queries + 1e-9
