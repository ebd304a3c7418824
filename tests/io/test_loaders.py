"""Loaders into the outcome table: one test per real shared dataset, plus small long / pickle /
Parquet inputs built in tmp_path, the Parquet round trip, the dense view and ``callwise convert``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import callwise
from callwise import OutcomeTable, write_parquet
from callwise.core.prices import CHARS_PER_TOKEN, PriceTable, estimate_tokens

RB_TASKS = ["arc-challenge", "mbpp", "winogrande"]
RB_MODELS = sorted([
    "WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2", "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat", "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat",
])
ROUTELLM_MODELS = ["gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"]
ROUTELLM_PRICES = """\
source: "test prices"
assumed_output_tokens: 7          # MMLU has no response text
models:
  gpt-4-1106-preview: {input: 10.0, output: 30.0}
  mistralai/Mixtral-8x7B-Instruct-v0.1: {input: 0.6, output: 0.6}
"""


def _check_canonical(t: OutcomeTable) -> None:
    """Invariants every loaded table keeps."""
    f = t.frame
    for col in ("prompt_id", "task", "model", "sample", "quality", "cost"):
        assert col in f.columns
    assert f["quality"].between(0, 1).all()
    assert np.isfinite(f["cost"]).all() and (f["cost"] >= 0).all()
    assert not f.duplicated(["prompt_id", "model", "sample"]).any()
    # every prompt has sample 0 of every model of its task
    s0 = f[f["sample"] == 0]
    per_task = s0.groupby("task")["model"].nunique()
    per_prompt = s0.groupby(["task", "prompt_id"])["model"].nunique()
    assert (per_prompt.to_numpy() == per_task.reindex(per_prompt.index.get_level_values(0)).to_numpy()).all()
    # sorted by (task, prompt_id, model, sample)
    key = f[["task", "prompt_id", "model", "sample"]]
    assert key.equals(key.sort_values(list(key.columns)).reset_index(drop=True))


# -- RouterBench ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routerbench(shared_data: Path) -> OutcomeTable:
    return callwise.load(shared_data / "routerbench-subset")


@pytest.fixture(scope="module")
def routerbench_raw(shared_data: Path) -> pd.DataFrame:
    files = sorted((shared_data / "routerbench-subset").glob("*.csv.gz"))
    return pd.concat([pd.read_csv(f).assign(_file=f.name) for f in files], ignore_index=True)


@pytest.mark.slow
def test_routerbench_folder(routerbench: OutcomeTable, routerbench_raw: pd.DataFrame) -> None:
    t = routerbench
    _check_canonical(t)
    assert t.meta["format"] == "routerbench"
    assert t.costs_estimated is False
    assert t.tasks() == RB_TASKS
    assert t.models() == RB_MODELS
    for task in RB_TASKS:
        assert t.models(task) == RB_MODELS
    # split column present and complete
    assert t.has_split
    assert set(t.frame["split"]) == {"train", "test"}
    # one prompt per unique sample_id, each with all 11 models (the duplicated ids are merged)
    ids = routerbench_raw["sample_id"].astype(str)
    n_prompts = ids.nunique()
    assert t.frame["prompt_id"].nunique() == n_prompts
    assert len(t) == n_prompts * 11
    assert (t.frame.groupby("prompt_id")["model"].nunique() == 11).all()
    assert (t.frame["sample"] == 0).all()


@pytest.mark.slow
def test_routerbench_duplicate_ids_merged_and_split_conflicts(routerbench: OutcomeTable,
                                                               routerbench_raw: pd.DataFrame) -> None:
    raw = routerbench_raw
    dup = raw[raw["sample_id"].duplicated(keep=False)]
    dup_ids = sorted(dup["sample_id"].unique())
    assert len(dup_ids) == 9  # RouterBench stores these ids twice (gpt-3.5's outcome in one row, the rest in the other)
    f = routerbench.frame
    for pid in dup_ids:
        rows = f[f["prompt_id"] == pid]
        assert sorted(rows["model"]) == RB_MODELS, pid
        assert rows["split"].nunique() == 1, pid
    # ids whose two rows sit in the train and the test file
    straddle = sorted(pid for pid, g in dup.groupby("sample_id") if g["_file"].str.contains("_train").any()
                      and g["_file"].str.contains("_test").any())
    assert straddle  # the shared copy has some
    assert routerbench.meta["split_conflicts"] == straddle
    assert any("train and test" in n for n in routerbench.meta["notes"])
    # each goes to the split whose file held most of its outcomes
    models = [c[: -len("|total_cost")] for c in raw.columns if c.endswith("|total_cost")]
    for pid in straddle:
        g = dup[dup["sample_id"] == pid]
        n = {("train" if "_train" in r["_file"] else "test"): int(r[models].notna().sum()) for _, r in g.iterrows()}
        want = max(n, key=n.get)
        assert set(f.loc[f["prompt_id"] == pid, "split"]) == {want}, pid


@pytest.mark.slow
def test_routerbench_values_match_raw(routerbench: OutcomeTable, routerbench_raw: pd.DataFrame) -> None:
    raw = routerbench_raw[~routerbench_raw["sample_id"].duplicated(keep=False)]
    f = routerbench.frame.set_index(["prompt_id", "model"])
    rng = np.random.default_rng(0)
    for i in rng.choice(len(raw), size=25, replace=False):
        r = raw.iloc[i]
        split = "train" if "_train" in r["_file"] else "test"
        for m in RB_MODELS:
            row = f.loc[(r["sample_id"], m)]
            assert row["task"] == r["eval_name"]
            assert row["quality"] == pytest.approx(float(r[m]))
            assert row["cost"] == pytest.approx(float(r[m + "|total_cost"]))
            assert row["split"] == split
        # the stringified one-element list is unwrapped
        assert not str(row["prompt"]).startswith("['")
        assert row["prompt"] == ast.literal_eval(r["prompt"])[0]


def test_routerbench_single_csv(shared_data: Path) -> None:
    path = shared_data / "routerbench-subset" / "mbpp_test.csv.gz"
    t = callwise.load(path)
    _check_canonical(t)
    raw = pd.read_csv(path)
    assert t.meta["format"] == "routerbench"
    assert t.tasks() == ["mbpp"]
    assert t.models() == RB_MODELS
    assert t.frame["prompt_id"].nunique() == len(raw) == raw["sample_id"].nunique()
    assert len(t) == len(raw) * 11
    assert set(t.frame["split"]) == {"test"}  # from the file name
    assert "split_conflicts" not in t.meta
    # responses are kept as answers
    assert t.frame["answer"].notna().all()
    # a value
    r = raw.iloc[0]
    row = t.frame[(t.frame["prompt_id"] == r["sample_id"]) & (t.frame["model"] == "claude-v2")].iloc[0]
    assert row["quality"] == float(r["claude-v2"])
    assert row["cost"] == pytest.approx(float(r["claude-v2|total_cost"]))


def test_routerbench_single_file_with_half_a_duplicate(shared_data: Path) -> None:
    """arc_challenge_test holds only one of the two rows of some duplicated ids: those prompts lack
    models, which is an error naming the file, and --drop-incomplete drops exactly them."""
    path = shared_data / "routerbench-subset" / "arc_challenge_test.csv.gz"
    with pytest.raises(callwise.DataError) as ei:
        callwise.load(path)
    msg = str(ei.value)
    assert path.name in msg and "arc-challenge.val.136" in msg and "--drop-incomplete" in msg
    t = callwise.load(path, drop_incomplete=True)
    _check_canonical(t)
    dropped = t.meta["dropped_prompts"]
    assert "arc-challenge.val.136" in dropped
    assert not t.frame["prompt_id"].isin(dropped).any()
    assert t.frame["prompt_id"].nunique() == pd.read_csv(path)["sample_id"].nunique() - len(dropped)


# -- rational-cascades ------------------------------------------------------------------------


def test_rational_cascades_folder(shared_data: Path) -> None:
    folder = shared_data / "rational-cascades"
    t = callwise.load(folder)
    _check_canonical(t)
    assert t.meta["format"] == "rational-cascades"
    assert t.costs_estimated is False
    raw = pd.read_csv(folder / "outcomes.csv.gz")
    assert len(t) == len(raw)
    tasks = t.tasks()
    assert "mmlu-llama" in tasks and "mmlu-qwen_oai" in tasks
    assert set(tasks) == {f"{b}-{c}" for b, c in raw[["benchmark", "chain"]].drop_duplicates().itertuples(index=False)}
    assert t.has_split
    # each chain of a benchmark is its own task with its own models
    assert t.models("mmlu-llama") == sorted(raw.loc[raw["chain"] == "llama", "model"].unique())
    assert set(t.models("mmlu-llama")).isdisjoint(t.models("mmlu-qwen_oai"))

    # values: confidence = raw_confidence, latency in seconds, real costs and token counts
    raw = raw.assign(prompt_id=raw["benchmark"] + ":" + raw["chain"] + ":" + raw["split"] + ":" + raw["qid"].astype(str))
    m = t.frame.merge(raw, on=["prompt_id", "model"], suffixes=("", "_raw"), validate="one_to_one")
    assert len(m) == len(raw)
    np.testing.assert_allclose(m["confidence"], m["raw_confidence"])
    assert (t.frame["confidence"] <= 0).all()
    np.testing.assert_allclose(m["latency"], m["latency_ms"] / 1000.0)
    assert t.frame["latency"].median() < 60  # seconds, not milliseconds
    np.testing.assert_allclose(m["cost"], m["cost_usd"])
    np.testing.assert_allclose(m["quality"], m["correct"].astype(float))
    assert (m["input_tokens"].astype(int) == m["tokens_in"]).all()
    assert (m["output_tokens"].astype(int) == m["tokens_out"]).all()
    assert (m["split_raw"] == m["split"]).all()
    assert (m["task"] == m["benchmark"] + "-" + m["chain"]).all()
    # prompt text comes from prompts.csv
    assert t.frame["prompt"].notna().mean() > 0.99

    d = t.for_task("mmlu-llama").dense()
    assert d.confidence is not None and d.latency is not None
    assert d.quality.shape == (t.for_task("mmlu-llama").frame["prompt_id"].nunique(), 5, 1)


# -- RouteLLM ---------------------------------------------------------------------------------


def test_routellm_with_price_table(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "routellm-evals"
    prices_path = tmp_path / "prices.yaml"
    prices_path.write_text(ROUTELLM_PRICES)
    t = callwise.load(folder, prices=prices_path)
    _check_canonical(t)
    assert t.meta["format"] == "routellm"
    assert t.costs_estimated is True
    assert t.meta["price_table"]["source"] == "test prices"
    assert any("estimated" in n for n in t.meta["notes"])
    assert t.tasks() == ["gsm8k", "mmlu", "mt_bench"]
    assert t.models() == sorted(ROUTELLM_MODELS)
    f = t.frame
    assert (f["cost"] > 0).all()

    # MT-Bench: scores 1-10 rescaled to [0, 1] as (score - 1) / 9
    judg = pd.read_json(folder / "mt_bench" / "judgements.jsonl", lines=True)
    mt = f[f["task"] == "mt_bench"]
    assert len(mt) == len(judg)
    assert mt["quality"].between(0, 1).all()
    assert mt["quality"].min() == 0.0 and mt["quality"].max() == 1.0
    judg["prompt_id"] = "mt_bench/" + judg["question_id"].astype(str) + "/turn" + judg["turn"].astype(str)
    m = mt.merge(judg, on=["prompt_id", "model"], validate="one_to_one")
    np.testing.assert_allclose(m["quality"], (m["score"] - 1) / 9)
    assert any("MT-Bench" in n for n in t.meta["notes"])
    # the answer text is read out of the judge's prompt for both turns, so output tokens are counted
    assert mt["answer"].notna().all()
    assert (mt["output_tokens"] > 0).all()

    # MMLU: no response text, so output tokens are the table's assumed_output_tokens
    mm = f[f["task"] == "mmlu"]
    assert (mm["output_tokens"] == 7).all()
    gpt4 = mm[mm["model"] == "gpt-4-1106-preview"]
    want = estimate_tokens(gpt4["prompt"]) * 10.0 / 1e6 + 7 * 30.0 / 1e6
    np.testing.assert_allclose(gpt4["cost"], want)
    assert (gpt4["input_tokens"] == np.ceil(gpt4["prompt"].str.len() / CHARS_PER_TOKEN)).all()
    # GSM8K: output tokens from the response texts
    gs = f[f["task"] == "gsm8k"]
    assert gs["answer"].notna().all()
    np.testing.assert_array_equal(gs["output_tokens"].astype(int), estimate_tokens(gs["answer"]))
    # correctness columns are booleans -> 0/1
    assert set(mm["quality"].unique()) <= {0.0, 1.0}


def test_routellm_price_table_object(tmp_path: Path, write_file) -> None:
    """A PriceTable object works as well as a path; a tiny MMLU-layout folder."""
    write_file("r/mmlu/responses/mmlu_x.csv", "prompt,a,b\nWhat is 2+2?,True,False\nQ2,False,True\n")
    prices = PriceTable.from_dict({"models": {"a": {"per_call": 0.5}, "b": {"input": 4e6, "output": 0}}})
    t = callwise.load(tmp_path / "r", prices=prices)
    assert t.costs_estimated and t.tasks() == ["mmlu"]
    f = t.frame.set_index(["prompt_id", "model"])
    assert f.loc[("mmlu/mmlu_x/0", "a"), "cost"] == pytest.approx(0.5)
    assert f.loc[("mmlu/mmlu_x/0", "b"), "cost"] == pytest.approx(3 * 4.0)  # ceil(12 chars / 4) = 3 tokens
    assert f.loc[("mmlu/mmlu_x/1", "b"), "quality"] == 1.0


# -- long tables ------------------------------------------------------------------------------

LONG_ROWS = [
    # prompt_id, task, model, sample, quality, cost, latency, confidence, split, answer, input_tokens
    ("p1", "qa", "a", 0, 1.0, 0.01, 0.5, -0.1, "train", "yes", 10),
    ("p1", "qa", "b", 0, 0.0, 0.20, 1.5, -2.0, "train", "no", 10),
    ("p1", "qa", "a", 1, 0.0, 0.01, 0.4, -0.3, "train", "no", 10),
    ("p2", "qa", "a", 0, 0.5, 0.02, 0.6, -0.2, "test", "maybe", 12),
    ("p2", "qa", "b", 0, 1.0, 0.30, 2.0, 0.0, "test", "yes", 12),
    ("m1", "math", "c", 0, 1.0, 0.00, 0.1, -1.0, "test", "4", 3),
]
LONG_COLS = ["prompt_id", "task", "model", "sample", "quality", "cost", "latency", "confidence", "split",
             "answer", "input_tokens"]


@pytest.fixture
def long_df() -> pd.DataFrame:
    return pd.DataFrame(LONG_ROWS, columns=LONG_COLS)


def _check_long(t: OutcomeTable, df: pd.DataFrame) -> None:
    _check_canonical(t)
    assert t.meta["format"] == "long"
    assert t.tasks() == ["math", "qa"]
    assert t.models("qa") == ["a", "b"] and t.models("math") == ["c"]
    assert len(t) == len(df)
    got = t.frame.set_index(["prompt_id", "model", "sample"]).sort_index()
    want = df.set_index(["prompt_id", "model", "sample"]).sort_index()
    for col in ("quality", "cost", "latency", "confidence"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), err_msg=col)
    for col in ("task", "split", "answer"):
        assert got[col].tolist() == want[col].tolist(), col
    assert got["input_tokens"].astype(int).tolist() == want["input_tokens"].tolist()


def test_long_csv(tmp_path: Path, long_df: pd.DataFrame) -> None:
    path = tmp_path / "outcomes.csv"
    long_df.to_csv(path, index=False)
    assert callwise.detect_format(path) == "long"
    _check_long(callwise.load(path), long_df)


def test_long_csv_gz(tmp_path: Path, long_df: pd.DataFrame, write_file) -> None:
    path = write_file("outcomes.csv.gz", long_df.to_csv(index=False))
    _check_long(callwise.load(path), long_df)


def test_long_jsonl(tmp_path: Path, long_df: pd.DataFrame, write_file) -> None:
    lines = [json.dumps(r) for r in long_df.to_dict(orient="records")]
    path = write_file("outcomes.jsonl", "\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line
    assert callwise.detect_format(path) == "long"
    _check_long(callwise.load(path), long_df)


def test_long_parquet(tmp_path: Path, long_df: pd.DataFrame) -> None:
    path = tmp_path / "outcomes.parquet"
    long_df.to_parquet(path, index=False)
    assert callwise.detect_format(path) == "long"
    t = callwise.load(path)
    _check_long(t, long_df)
    assert "converted_from" not in t.meta  # a plain Parquet file carries no callwise meta


def test_long_folder(tmp_path: Path, long_df: pd.DataFrame) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    long_df.iloc[:3].to_csv(folder / "a.csv", index=False)
    long_df.iloc[3:].to_json(folder / "b.jsonl", orient="records", lines=True)
    _check_long(callwise.load(folder), long_df)


def test_long_minimal_columns_get_defaults(write_file, long_csv_text: str) -> None:
    t = callwise.load(write_file("min.csv", long_csv_text.replace(",task", "").replace(",t,", ",")))
    assert t.tasks() == ["default"]
    assert (t.frame["sample"] == 0).all()
    assert len(t) == 4


def test_long_csv_with_mapping(write_file) -> None:
    path = write_file("other.csv", "qid,model,correct,usd,notes\n"
                                   "q1,a,True,0.1,x\nq1,b,False,0.2,y\nq2,a,False,0.1,z\nq2,b,True,0.2,w\n")
    mapping = {"quality": "correct", "cost": "usd", "prompt_id": "qid"}
    t = callwise.load(path, mapping=mapping)
    _check_canonical(t)
    assert t.meta["format"] == "long"
    assert "notes" not in t.frame.columns and "correct" not in t.frame.columns
    f = t.frame.set_index(["prompt_id", "model"])
    assert f.loc[("q1", "a"), "quality"] == 1.0 and f.loc[("q1", "b"), "quality"] == 0.0
    assert f.loc[("q2", "b"), "cost"] == pytest.approx(0.2)
    # the same with the format named explicitly
    t2 = callwise.load(path, format="long", mapping=mapping)
    pd.testing.assert_frame_equal(t.frame, t2.frame)


def test_mapping_errors_name_the_column(write_file) -> None:
    path = write_file("other.csv", "qid,model,correct,usd\nq1,a,1,0.1\n")
    with pytest.raises(callwise.DataError, match=r"other\.csv.*'kost'.*not in the file"):
        callwise.load(path, mapping={"quality": "correct", "cost": "kost", "prompt_id": "qid"})
    with pytest.raises(callwise.DataError, match=r"unknown canonical column.*'qualty'"):
        callwise.load(path, format="long", mapping={"qualty": "correct"})


# -- RouterBench-style pickle -----------------------------------------------------------------


def _wide() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["t.1", "t.2", "t.3"],
        "prompt": ["['What is 1+1?']", "['Turn one', 'Turn two']", "plain text"],
        "eval_name": ["tiny", "tiny", "tiny"],
        "m1": [1.0, 0.0, 1.0],
        "m1|total_cost": [0.001, 0.002, 0.003],
        "m1|model_response": ["['2']", "['a']", "['b']"],
        "m2": [0.0, 1.0, np.nan],  # NaN quality = not recorded
        "m2|total_cost": [0.01, 0.02, np.nan],
        "oracle_model_to_route_to": ["m1", "m2", "m1"],
    })


def test_routerbench_pickle_trusted(tmp_path: Path) -> None:
    path = tmp_path / "tiny_train.pkl"
    _wide().to_pickle(path)
    assert callwise.detect_format(path) == "routerbench"
    t = callwise.load(path, trust_pickle=True, drop_incomplete=True)
    assert t.meta["dropped_prompts"] == ["t.3"]  # m2 not recorded for t.3
    _check_canonical(t)
    assert t.tasks() == ["tiny"] and t.models() == ["m1", "m2"]
    assert set(t.frame["split"]) == {"train"}  # from the file name
    f = t.frame.set_index(["prompt_id", "model"])
    assert f.loc[("t.1", "m1"), "prompt"] == "What is 1+1?"
    assert f.loc[("t.2", "m1"), "prompt"] == "Turn one\n\nTurn two"
    assert f.loc[("t.1", "m1"), "answer"] == "2"
    assert f.loc[("t.2", "m2"), "quality"] == 1.0
    assert f.loc[("t.2", "m2"), "cost"] == pytest.approx(0.02)


def test_routerbench_gzipped_pickle_trusted(tmp_path: Path, write_file) -> None:
    import pickle

    w = _wide().iloc[:2]
    path = write_file("tiny.pkl.gz", pickle.dumps(w, protocol=4))
    t = callwise.load(path, trust_pickle=True)
    assert len(t) == 4 and "split" not in t.frame.columns


# -- Parquet round trip, dense view, CLI convert ---------------------------------------------


def test_parquet_round_trip_keeps_frame_and_meta(tmp_path: Path, write_file) -> None:
    write_file("r/mmlu/responses/mmlu_x.csv", "prompt,a,b\nWhat is 2+2?,True,False\nQ2,False,True\n")
    prices = PriceTable.from_dict({"source": "rt", "assumed_output_tokens": 3,
                                   "models": {"a": {"input": 1.0, "output": 2.0}, "b": {"per_call": 0.01}}})
    t = callwise.load(tmp_path / "r", prices=prices)
    assert t.costs_estimated
    out = tmp_path / "out" / "table.parquet"
    write_parquet(t, out)
    assert [p.name for p in out.parent.iterdir()] == ["table.parquet"]  # no temp files left behind
    back = callwise.load(out)
    pd.testing.assert_frame_equal(back.frame, t.frame)
    assert back.costs_estimated is True
    assert back.meta["price_table"]["source"] == "rt"
    assert back.meta["converted_from"] == str(tmp_path / "r")
    assert back.meta["format"] == "long" and back.meta["source"] == str(out)
    assert back.fingerprint() == t.fingerprint()


def test_parquet_round_trip_real_routerbench_file(shared_data: Path, tmp_path: Path) -> None:
    t = callwise.load(shared_data / "routerbench-subset" / "mbpp_train.csv.gz")
    out = tmp_path / "mbpp.parquet"
    t.to_parquet(out)
    back = callwise.load(out)
    pd.testing.assert_frame_equal(back.frame, t.frame)
    assert back.costs_estimated is False
    assert back.fingerprint() == t.fingerprint()


def test_write_parquet_is_atomic_on_failure(tmp_path: Path, long_df: pd.DataFrame, monkeypatch) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "in.csv"
    long_df.to_csv(path, index=False)
    t = callwise.load(path)

    def boom(table, where, *a, **k):  # write half a file through whatever it is given, then fail
        if isinstance(where, (str, Path)):
            Path(where).write_bytes(b"PAR1 half")
        else:
            where.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        write_parquet(t, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_dense_view_matches_frame(tmp_path: Path, long_df: pd.DataFrame) -> None:
    path = tmp_path / "o.csv"
    long_df.to_csv(path, index=False)
    t = callwise.load(path)
    for task in t.tasks():
        sub = t.for_task(task)
        d = sub.dense()
        f = sub.frame
        P, M, S = f["prompt_id"].nunique(), f["model"].nunique(), int(f["sample"].max()) + 1
        assert d.quality.shape == d.cost.shape == (P, M, S)
        assert d.models == tuple(sub.models())
        assert list(d.prompt_ids) == list(dict.fromkeys(f["prompt_id"]))
        assert set(d.tasks) == {task}
        for r in f.itertuples():
            i, j = list(d.prompt_ids).index(r.prompt_id), d.model_index(r.model)
            assert d.quality[i, j, r.sample] == r.quality
            assert d.cost[i, j, r.sample] == r.cost
            assert d.latency[i, j, r.sample] == r.latency
            assert d.confidence[i, j, r.sample] == r.confidence
            assert d.answers[i, j, r.sample] == r.answer
        # cells with no recorded call are NaN, and there are exactly as many recorded cells as rows
        assert np.isfinite(d.quality).sum() == len(f)
    qa = t.for_task("qa").dense()
    assert np.isnan(qa.quality[:, 1, 1]).all()  # model b has no sample 1
    assert qa.quality.shape == (2, 2, 2)
    # a chosen model order, and take()
    d2 = t.for_task("qa").dense(models=["b", "a"])
    np.testing.assert_array_equal(d2.cost[:, 0, 0], qa.cost[:, 1, 0])
    sub = qa.take([1])
    assert list(sub.prompt_ids) == ["p2"] and sub.quality.shape == (1, 2, 2)


@pytest.mark.slow
def test_dense_view_real_routerbench(routerbench: OutcomeTable) -> None:
    for task in routerbench.tasks():
        sub = routerbench.for_task(task)
        d = sub.dense()
        f = sub.frame
        P = f["prompt_id"].nunique()
        assert d.quality.shape == d.cost.shape == (P, 11, 1)
        assert d.models == tuple(RB_MODELS)
        assert np.isfinite(d.quality).all() and np.isfinite(d.cost).all()
        # values: pivot of the frame in the same prompt order
        piv_q = f.pivot(index="prompt_id", columns="model", values="quality").loc[d.prompt_ids, list(d.models)]
        piv_c = f.pivot(index="prompt_id", columns="model", values="cost").loc[d.prompt_ids, list(d.models)]
        np.testing.assert_array_equal(d.quality[:, :, 0], piv_q.to_numpy())
        np.testing.assert_array_equal(d.cost[:, :, 0], piv_c.to_numpy())
        assert d.answers is not None and d.latency is None and d.confidence is None
        assert d.quality.mean() == pytest.approx(f["quality"].mean())


def test_cli_convert_round_trip(tmp_path: Path, long_df: pd.DataFrame) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    src = tmp_path / "in.jsonl"
    long_df.to_json(src, orient="records", lines=True)
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(app, ["convert", str(src), str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and out.is_file()
    back = callwise.load(out)
    pd.testing.assert_frame_equal(back.frame, callwise.load(src).frame)
    assert back.meta["converted_from"] == str(src)


def test_cli_convert_with_map_and_quality_range(tmp_path: Path, write_file) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    src = write_file("s.csv", "qid,model,score,usd\nq1,a,1,0.1\nq1,b,10,0.2\n")
    out = tmp_path / "s.parquet"
    res = CliRunner().invoke(app, ["convert", str(src), str(out), "--map", "prompt_id=qid", "--map",
                                   "quality=score", "--map", "cost=usd", "--quality-range", "1,10"])
    assert res.exit_code == 0, res.output
    back = callwise.load(out)
    assert back.frame["quality"].tolist() == [0.0, 1.0]
    assert back.meta["quality_range"] == [1.0, 10.0]


def test_long_csv_keeps_ids_as_text(write_file) -> None:
    t = callwise.load(write_file("ids.csv", "prompt_id,model,quality,cost\n001,a,1,0.1\n1,a,0,0.1\n"))
    assert sorted(t.frame["prompt_id"]) == ["001", "1"]


def test_folder_mixing_files_with_and_without_a_task_column(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("prompt_id,task,model,quality,cost\n1,x,a,1,0.1\n")
    (tmp_path / "b.csv").write_text("prompt_id,model,quality,cost\n2,a,0,0.2\n")
    t = callwise.load(tmp_path)
    assert dict(zip(t.frame["prompt_id"], t.frame["task"])) == {"1": "x", "2": "default"}
