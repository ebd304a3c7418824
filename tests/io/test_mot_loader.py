"""The MoT-cascade loader (callwise.io.mot): small synthetic files in tmp_path for the mapping and
every bad-input message, format detection through callwise.load, and (slow) the real shared files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import callwise
from callwise.core.errors import DataError, PolicyError
from callwise.core.prices import ModelPrice, PriceTable, estimate_tokens
from callwise.io import detect_format
from callwise.io.mot import DEFAULT_PRICES, is_mot_file, is_mot_folder, read_mot

Q0 = "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?"
Q1 = "Today is 3/5, and it is Jane's second time in the year 1973 to see a meteor shower. What is the date today?"


def rec(question: str, answer: Any, generated: list[Any], results: list[Any], **extra: Any) -> dict[str, Any]:
    return {"question": question, "answer": answer, "generated": generated, "results": results,
            "result_counter": {}, "prediction": None, **extra}


def date_records() -> list[dict[str, Any]]:
    return [
        rec(Q0, "05/01/2021",
            ["Explain: ... A: 05/01/2021", "A: 5/1/2021", "Sorry, I cannot tell."],
            ["05/01/2021", "5/1/2021", "Sorry, I cannot tell."]),
        rec(Q1, "03/05/1973", ["ans = '03/05/1973'", "ans = oops(", "ans = '03/06/1973'"],
            ["03/05/1973"]),  # two failed programs: results shorter than generated
    ]


def write_json(path: Path, data: Any, gz: bool | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, indent=2).encode()
    if gz if gz is not None else path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


# -- mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["date_cot1.json", "date_cot1.json.gz"])
def test_one_file_maps_one_row_per_generated_sample(tmp_path, name):
    f = write_json(tmp_path / "GPT3_result" / name, date_records())
    df, prov, notes = read_mot(f)
    assert len(df) == 6
    assert df["sample"].tolist() == [0, 1, 2, 0, 1, 2]
    assert df["prompt_id"].tolist() == ["date_cot1:0"] * 3 + ["date_cot1:1"] * 3
    assert set(df["task"]) == {"date_cot1"} and set(df["model"]) == {"gpt-3.5-turbo"}
    assert df["prompt"].tolist() == [Q0] * 3 + [Q1] * 3
    # results normalised; the refusal and the two padded samples are no answer
    assert df["answer"].tolist() == ["05/01/2021", "05/01/2021", None, "03/05/1973", None, None]
    assert df["quality"].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    gen = [g for r in date_records() for g in r["generated"]]
    assert df["output_tokens"].tolist() == estimate_tokens(gen).tolist()
    assert df["input_tokens"].tolist() == estimate_tokens([Q0] * 3 + [Q1] * 3).tolist()
    expected = (df["input_tokens"] * 1.5 + df["output_tokens"] * 2.0) / 1e6
    np.testing.assert_allclose(df["cost"], expected)
    assert prov.where(4) == (str(f), "record 1")
    assert any("costs estimated" in n and "lower bound" in n for n in notes)
    assert any("padded" in n and f"{name} 2 of 6" in n for n in notes)
    assert any("no answer" in n and f"{name} 1 of 6 (0 null, 1 unreadable)" in n for n in notes)


def test_dict_gold_is_the_candidates_scored_1(tmp_path):
    f = write_json(tmp_path / "llama2_13B_result" / "date_pot1.json.gz", [
        rec(Q0, {"05/01/2021": 1, "04/30/2021": 0, "05/02/2021": 0},
            ["a", "b", "c", "d"], ["05/01/2021", "04/30/2021", "May 1, 2021"]),
        rec(Q1, {"03/05/1973": 1, "3/6/1973": 1, "03/07/1973": 0}, ["a", "b"], ["03/06/1973", "03/07/1973"]),
    ])
    df, _, notes = read_mot(f)
    assert set(df["model"]) == {"llama-2-13b"}
    assert df["quality"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert df["answer"].tolist()[3] is None  # padded
    np.testing.assert_allclose(df["cost"], (df["input_tokens"] + df["output_tokens"]) * 0.225 / 1e6)
    assert any("date_pot1.json.gz 1 of 6" in n for n in notes if "padded" in n)


def test_folder_of_model_folders_gives_one_task_with_two_models(tmp_path):
    write_json(tmp_path / "GPT3_result" / "date_cot1.json.gz", date_records())
    four = date_records()
    four[0]["generated"], four[0]["results"] = ["A: 05/01/2021"], ["05/01/2021"]
    write_json(tmp_path / "GPT4_result" / "date_cot1.json.gz", four)
    (tmp_path / "SOURCE.md").write_text("# not data\n")
    df, prov, notes = read_mot(tmp_path)
    assert sorted(df["model"].unique()) == ["gpt-3.5-turbo", "gpt-4"]
    assert set(df["task"]) == {"date_cot1"}
    g4 = df[df["model"] == "gpt-4"]
    assert g4["prompt_id"].tolist() == ["date_cot1:0", "date_cot1:1", "date_cot1:1", "date_cot1:1"]
    np.testing.assert_allclose(g4["cost"], (g4["input_tokens"] * 30 + g4["output_tokens"] * 60) / 1e6)
    assert any("GPT3_result/date_cot1.json.gz 2 of 6" in n and "GPT4_result/date_cot1.json.gz 2 of 4" in n
               for n in notes)
    assert set(prov.file) == {str(tmp_path / "GPT3_result" / "date_cot1.json.gz"),
                              str(tmp_path / "GPT4_result" / "date_cot1.json.gz")}

    t = callwise.load(tmp_path)
    assert t.meta["format"] == "mot" and t.costs_estimated
    assert t.meta["price_table"]["models"]["gpt-4"]["output_per_1m"] == 60.0
    assert any("padded" in n for n in t.meta["notes"])
    assert t.models("date_cot1") == ["gpt-3.5-turbo", "gpt-4"]
    d = t.dense()
    assert d.quality.shape == (2, 2, 3)
    assert np.isnan(d.quality[0, 1, 1])  # gpt-4 recorded one sample of question 0


def test_model_from_unknown_folder_needs_a_price(tmp_path):
    f = write_json(tmp_path / "my-model" / "navigate_cot1.json", [
        rec("Take 1 step. Turn around. Take 1 step.", "yes", ["... yes", "... No."], ["yes", "No."])])
    with pytest.raises(DataError) as e:
        read_mot(f)
    msg = str(e.value)
    assert "navigate_cot1.json" in msg and "'my-model'" in msg and "gpt-4" in msg
    prices = PriceTable({"my-model": ModelPrice(1.0, 4.0)}, source="test")
    df, _, notes = read_mot(f, prices=prices)
    assert set(df["model"]) == {"my-model"}
    assert df["answer"].tolist() == ["yes", "no"] and df["quality"].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(df["cost"], (df["input_tokens"] * 1 + df["output_tokens"] * 4) / 1e6)
    assert any("priced with test" in n for n in notes)
    df, _, _ = read_mot(f, model="gpt-4")
    assert set(df["model"]) == {"gpt-4"}


def test_normaliser_by_task_prefix(tmp_path):
    d = tmp_path / "GPT4_result"
    write_json(d / "gsm_pot1.json", [rec("q", 18, ["p", "p", "p"], [18.0, "$18.00", 17.999999999999996])])
    write_json(d / "asdiv_cot1.json", [rec("q", 1234, ["c", "c"], ["Answer: 1,234 apples", "Answer: unsure"])])
    write_json(d / "crepe_pot1.json", [rec("q", "more likely", ["c", "c"], ["More likely.", "less likely"])])
    write_json(d / "tabmwp_pot1.json", [
        rec("q", 6.0, ["c", "c"], [6.0, "6 stamps"]),
        rec("q", "7/41", ["c", "c"], ["14/82", "0.17"]),
        rec("q", "3:15 P.M.", ["c", "c"], ["3:15 P.M.", "15"]),
        rec("q", "Champ", ["c"], ["champ"]),
    ])
    df, _, notes = read_mot(d)
    q = df.groupby("prompt_id")["quality"].apply(list).to_dict()
    assert q["gsm_pot1:0"] == [1.0, 1.0, 1.0]
    assert q["asdiv_cot1:0"] == [1.0, 0.0]
    assert q["crepe_pot1:0"] == [1.0, 0.0]
    assert q == {**q, "tabmwp_pot1:0": [1.0, 1.0], "tabmwp_pot1:1": [1.0, 0.0], "tabmwp_pot1:2": [1.0, 0.0],
                 "tabmwp_pot1:3": [1.0]}
    answers = df.set_index(["prompt_id", "sample"])["answer"]
    assert answers[("gsm_pot1:0", 2)] == "18" and answers[("asdiv_cot1:0", 1)] is None
    assert answers[("tabmwp_pot1:2", 0)] == "3:15 p.m"
    assert any("asdiv_cot1.json 1 of 2 (0 null, 1 unreadable)" in n for n in notes)


def test_normaliser_override_name_and_function(tmp_path):
    f = write_json(tmp_path / "GPT4_result" / "gsm_cot1.json", [rec("q", 18, ["a", "b"], [18.0, "18"])])
    df, _, notes = read_mot(f, normaliser="text")
    assert df["answer"].tolist() == ["18.0", "18"] and df["quality"].tolist() == [0.0, 1.0]
    assert any("the 'text' normaliser" in n for n in notes)
    df, _, _ = read_mot(f, normaliser=lambda x: int(float(x)) % 2)
    assert df["answer"].tolist() == ["0", "0"] and df["quality"].tolist() == [1.0, 1.0]
    with pytest.raises(PolicyError, match="unknown answer normaliser 'numbr'"):
        read_mot(f, normaliser="numbr")


def test_records_without_completions_give_no_rows(tmp_path):
    f = write_json(tmp_path / "GPT4_result" / "asdiv_cot1.json", [
        rec("q0", 3, [], []), rec("q1", 4, ["x"], [4.0])])
    df, _, notes = read_mot(f)
    assert df["prompt_id"].tolist() == ["asdiv_cot1:1"]
    assert any("no completions" in n and "asdiv_cot1.json 1" in n for n in notes)


def test_other_json_files_in_a_folder_are_skipped(tmp_path):
    write_json(tmp_path / "GPT4_result" / "date_cot1.json", date_records())
    write_json(tmp_path / "GPT4_result" / "config.json", [{"name": "x"}])
    df, _, notes = read_mot(tmp_path)
    assert len(df) == 6
    assert any("skipped 1" in n and "GPT4_result/config.json" in n for n in notes)


# -- detection --------------------------------------------------------------------------------


def test_is_mot_file(tmp_path, write_file):
    gz = write_json(tmp_path / "a" / "date_cot1.json.gz", date_records())
    plain = write_json(tmp_path / "a" / "date_cot2.json", date_records())
    assert is_mot_file(gz) and is_mot_file(plain)
    assert not is_mot_file(write_json(tmp_path / "b" / "x.json", [{"prompt_id": "p", "model": "m"}]))
    assert not is_mot_file(write_json(tmp_path / "b" / "y.json", {"generated": [], "results": []}))
    assert not is_mot_file(write_json(tmp_path / "b" / "z.json", []))
    assert not is_mot_file(write_file("c.csv", "a,b\n1,2\n"))
    assert not is_mot_file(write_file("d.json", '[{"generated": ["x"], "resu'))
    assert not is_mot_file(write_file("e.json.gz", b"[{}]", gz=False))
    assert not is_mot_file(tmp_path / "missing.json")
    # a first record far larger than one read chunk
    big = write_json(tmp_path / "f" / "gsm_cot1.json.gz",
                     [rec("q" * 300_000, 1, ["g" * 200_000] * 3, [1.0, 1.0, 1.0])])
    assert is_mot_file(big)
    assert is_mot_folder(tmp_path / "a") and is_mot_folder(tmp_path / "f") and not is_mot_folder(tmp_path / "b")


def test_detection_through_load(tmp_path, write_file, long_csv_text):
    mot = write_json(tmp_path / "runs" / "GPT3_result" / "date_cot1.json.gz", date_records())
    assert detect_format(mot) == "mot"
    assert detect_format(mot.parent) == "mot"
    assert detect_format(tmp_path / "runs") == "mot"
    t = callwise.load(mot)
    assert t.meta["format"] == "mot" and len(t) == 6
    # other formats are detected as before
    assert detect_format(write_file("long.csv", long_csv_text)) == "long"
    long_json = write_json(tmp_path / "lj" / "long.json", [
        {"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.1},
        {"prompt_id": "p1", "model": "b", "quality": 0, "cost": 0.2}])
    assert detect_format(long_json) == "long"
    assert detect_format(long_json.parent) == "long"
    assert callwise.load(long_json).meta["format"] == "long"


# -- bad input --------------------------------------------------------------------------------


def _error(path: Path, **kw: Any) -> str:
    with pytest.raises(DataError) as e:
        read_mot(path, **kw)
    return str(e.value)


def test_top_level_not_a_list(tmp_path):
    f = write_json(tmp_path / "GPT4_result" / "date_cot1.json", {"records": []})
    msg = _error(f)
    assert "date_cot1.json" in msg and "top level is a JSON object" in msg and "list of" in msg


def test_empty_list(tmp_path):
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json", []))
    assert "date_cot1.json" in msg and "no records" in msg


def test_record_not_an_object(tmp_path):
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json", date_records() + ["oops"]))
    assert "date_cot1.json, record 2:" in msg and "JSON string, expected an object" in msg


@pytest.mark.parametrize("field", ["question", "answer", "generated", "results"])
def test_missing_field(tmp_path, field):
    recs = date_records()
    del recs[1][field]
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json.gz", recs))
    assert f"date_cot1.json.gz, record 1, column '{field}': missing field '{field}'" in msg


@pytest.mark.parametrize("field, value, expected", [
    ("generated", "one completion", "'generated' is a JSON string, expected a list of completions"),
    ("results", {"a": 1}, "'results' is a JSON object, expected a list of extracted answers"),
    ("question", ["q"], "the question is a JSON array, expected a string"),
    ("generated", ["ok", None, "ok"], "generated[1] is a JSON null, expected completion text"),
    ("results", ["05/01/2021", ["x"]], "results[1] is a JSON array, expected an extracted answer"),
    ("answer", None, "the gold answer is a JSON null, expected a string, a number or a {candidate: score}"),
])
def test_field_of_the_wrong_type(tmp_path, field, value, expected):
    recs = date_records()
    recs[0][field] = value
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json", recs))
    assert f"date_cot1.json, record 0, column '{field}'" in msg and expected in msg


def test_results_longer_than_generated(tmp_path):
    recs = date_records()
    recs[1]["results"] = ["03/05/1973"] * 4
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json", recs))
    assert "date_cot1.json, record 1, column 'results'" in msg
    assert "'results' has 4 answers but 'generated' only 3 completions" in msg


def test_gold_the_normaliser_cannot_read(tmp_path):
    recs = date_records()
    recs[1]["answer"] = "the fifth of March"
    msg = _error(write_json(tmp_path / "GPT4_result" / "date_cot1.json", recs))
    assert "date_cot1.json, record 1, column 'answer'" in msg
    assert "'the fifth of March' cannot be read by the 'date' normaliser" in msg
    recs = [rec("q", "Champ", ["x"], ["Champ"])]
    msg = _error(write_json(tmp_path / "GPT4_result" / "gsm_cot1.json", recs))
    assert "gsm_cot1.json, record 0, column 'answer'" in msg and "'number' normaliser" in msg


def test_dict_gold_without_a_candidate_scored_1(tmp_path):
    recs = date_records()
    recs[0]["answer"] = {"05/01/2021": 0, "04/30/2021": 0.5}
    msg = _error(write_json(tmp_path / "llama2_13B_result" / "date_cot1.json", recs))
    assert "date_cot1.json, record 0, column 'answer'" in msg and "no candidate scored 1" in msg


def test_invalid_json_and_empty_files(tmp_path, write_file):
    f = write_file("GPT4_result/date_cot1.json.gz", '[\n  {"question": "q",\n  "answer": }\n]')
    msg = _error(f)
    assert "date_cot1.json.gz" in msg and "invalid JSON at line 3" in msg
    msg = _error(write_file("GPT4_result/date_cot2.json.gz", ""))
    assert "date_cot2.json.gz" in msg and "empty file" in msg and "MoT-cascade records" in msg
    msg = _error(write_file("GPT4_result/date_pot1.json.gz", b"[{}]", gz=False))
    assert "date_pot1.json.gz" in msg and "not gzip" in msg


def test_a_broken_file_in_a_folder_is_reported_not_skipped(tmp_path, write_file):
    write_json(tmp_path / "GPT4_result" / "date_cot1.json", date_records())
    write_file("GPT4_result/date_cot2.json", '[{"question": "q", "generated": [')
    msg = _error(tmp_path)
    assert "date_cot2.json" in msg and "invalid JSON" in msg


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    msg = _error(tmp_path / "empty")
    assert "empty" in msg and "no MoT-cascade files" in msg
    (tmp_path / "empty" / "SOURCE.md").write_text("x")
    write_json(tmp_path / "empty" / "other.json", [{"a": 1}])
    assert "skipped ['other.json']" in _error(tmp_path / "empty")


def test_misaligned_questions_of_one_task(tmp_path):
    write_json(tmp_path / "GPT3_result" / "date_cot1.json", date_records())
    recs = date_records()
    recs[1]["question"] = "Another question?"
    write_json(tmp_path / "GPT4_result" / "date_cot1.json", recs)
    msg = _error(tmp_path)
    assert "GPT4_result/date_cot1.json, record 1, column 'question'" in msg
    assert "GPT3_result/date_cot1.json" in msg and "same order" in msg


def test_one_model_for_two_folders_of_the_same_task(tmp_path):
    write_json(tmp_path / "GPT3_result" / "date_cot1.json", date_records())
    write_json(tmp_path / "GPT4_result" / "date_cot1.json", date_records())
    msg = _error(tmp_path, model="gpt-4")
    assert "task 'date_cot1' of model 'gpt-4' is also in GPT3_result/date_cot1.json" in msg


def test_default_prices_state_their_source():
    assert DEFAULT_PRICES.price("gpt-3.5-turbo") == ModelPrice(1.5, 2.0)
    assert DEFAULT_PRICES.price("gpt-4") == ModelPrice(30.0, 60.0)
    assert DEFAULT_PRICES.price("llama-2-13b") == ModelPrice(0.225, 0.225)
    assert "$0.0015/$0.002" in DEFAULT_PRICES.source and "hosted-inference" in DEFAULT_PRICES.source


# -- the real shared files --------------------------------------------------------------------


@pytest.mark.slow
def test_real_gpt35_date_40_samples(shared_data):
    df, prov, notes = read_mot(shared_data / "mot-cascade-samples" / "GPT3_result" / "date_cot1_40.json.gz")
    assert len(df) == 369 * 40
    assert df["prompt_id"].nunique() == 369 and set(df["model"]) == {"gpt-3.5-turbo"}
    assert set(df["task"]) == {"date_cot1_40"} and df["sample"].max() == 39
    q0 = df.loc[df["sample"] == 0, "quality"].mean()
    assert 0.5 < q0 < 0.95
    # only refusals and unreadable text are no answer: a small share
    assert 0 < df["answer"].isna().mean() < 0.05
    assert (df["cost"] > 0).all() and df["cost"].sum() < 5


@pytest.mark.slow
def test_real_llama2_folder(shared_data):
    t = callwise.load(shared_data / "mot-cascade-samples" / "llama2_13B_result")
    assert t.meta["format"] == "mot" and t.models() == ["llama-2-13b"]
    assert "date_pot1" in t.tasks() and "crepe_pot1_V2" in t.tasks()
    padded = next(n for n in t.meta["notes"] if "padded" in n)
    assert "date_pot1.json.gz 1134 of 7380" in padded
    f = t.for_task("date_pot1").frame
    assert len(f) == 369 * 20 and f["answer"].isna().sum() >= 1134


@pytest.mark.slow
def test_real_whole_folder_is_detected_and_loads(shared_data):
    root = shared_data / "mot-cascade-samples"
    assert detect_format(root) == "mot"
    # Llama-2 GSM8K holds the first 400 of GPT-4's 1,319 questions: the rest are incomplete
    with pytest.raises(DataError, match="model 'llama-2-13b' missing for 919 prompt"):
        callwise.load(root)
    t = callwise.load(root, drop_incomplete=True)
    assert t.meta["format"] == "mot" and t.costs_estimated
    assert t.models() == ["gpt-3.5-turbo", "gpt-4", "llama-2-13b"]
    assert t.models("date_cot1") == ["gpt-3.5-turbo", "gpt-4", "llama-2-13b"]
    assert len(t.meta["dropped_prompts"]) == 2 * 919
    assert len(t.for_task("gsm_pot1").prompt_ids()) == 400
