"""The RouterDC loader (``routerdc``): the real shared files checked against an independent parse,
and every bad input's message (file, record, field, what was expected)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scorekit import merged_with_raw

import callwise
from callwise import OutcomeTable
from callwise.core.errors import DataError, FormatError
from callwise.core.prices import PriceTable
from callwise.core.split import split_outcomes

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "docs" / "examples" / "routerdc_prices.yaml"
MODELS = sorted([
    "mistralai/Mistral-7B-v0.1", "meta-math/MetaMath-Mistral-7B", "itpossible/Chinese-Mistral-7B-v0.1",
    "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.6-mistral-7b", "meta-llama/Meta-Llama-3-8B",
    "cognitivecomputations/dolphin-2.9-llama3-8b",
])
TASKS = ["MATH_prealgebra", "arc_challenge", "arc_easy", "ceval", "cmmlu", "gsm8k", "humaneval", "javascript",
         "mbpp", "mmlu"]
UNSPLIT = ["MATH_prealgebra", "ceval", "javascript", "mbpp"]


# -- the real data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "routerdc-7model"


@pytest.fixture(scope="module")
def raw(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Each file's records, parsed here without callwise."""
    out = {}
    for f in sorted(folder.glob("*.json.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out[f.name[: -len(".json.gz")]] = json.load(fh)
    return out


@pytest.fixture(scope="module")
def table(folder: Path) -> OutcomeTable:
    return callwise.load(folder, prices=PRICES)


def test_detected(folder: Path) -> None:
    assert callwise.detect_format(folder) == "routerdc"
    assert callwise.detect_format(folder / "mbpp.json.gz") == "routerdc"


def test_counts_tasks_models_and_splits(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> None:
    f = table.frame
    assert table.meta["format"] == "routerdc"
    assert len(raw) == 16
    assert len(f) == sum(len(r["scores"]) for recs in raw.values() for r in recs) == 144011
    assert f["prompt_id"].nunique() == sum(len(recs) for recs in raw.values()) == 20573
    assert table.tasks() == TASKS
    assert table.models() == MODELS
    for task in TASKS:
        assert table.models(task) == MODELS
    firsts = f.drop_duplicates("prompt_id")
    for stem, recs in raw.items():
        sub = firsts[firsts["prompt_id"].str.startswith(stem + ":")]
        assert len(sub) == len(recs), stem
        expect = "test" if stem.endswith("test") else "train" if stem.endswith("train") else None
        assert (sub["split"].isna() if expect is None else sub["split"] == expect).all(), stem
    assert sorted(firsts.loc[firsts["split"].isna(), "task"].unique()) == UNSPLIT
    assert (firsts["sample"] == 0).all() and set(f["sample"]) == {0}


def test_every_score_question_and_cost(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> None:
    got = merged_with_raw(table, raw)
    # the example price table: $0.20 per 1M input tokens, tokens = ceil(characters / 4), no output tokens
    assert np.allclose(got["cost"], got["tokens"] * 0.2 / 1e6, rtol=0, atol=1e-15)
    assert table.costs_estimated and table.meta["price_table"]["path"] == str(PRICES)


def test_notes_count_repeated_questions(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> None:
    notes = " | ".join(table.meta["notes"])
    assert "costs estimated" in notes and "output tokens = 0 per call" in notes
    assert f"no train/test file for task(s) {UNSPLIT}" in notes
    for stem, recs in raw.items():
        n = len(recs) - len({r["question"] for r in recs})
        assert (f"{stem}.json.gz {n}" in notes) == (n > 0), stem
    for task in ("arc_challenge", "arc_easy", "cmmlu", "mmlu"):
        train = {r["question"] for r in raw[f"{task}_train"]}
        test = {r["question"] for r in raw[f"{task}_test"]}
        assert f"{task} {len(train & test)}" in notes


def test_origin_split_per_task_and_seeded_fallback(table: OutcomeTable) -> None:
    train, test, info = split_outcomes(table)
    assert info["method"] == "origin"
    assert sorted(info["fallback_tasks"]) == UNSPLIT
    tr, te = train.frame, test.frame
    assert set(tr.loc[tr["task"] == "mmlu", "split"]) == {"train"}
    assert set(te.loc[te["task"] == "mmlu", "split"]) == {"test"}
    assert tr.loc[tr["task"] == "ceval", "prompt_id"].nunique() == round(0.7 * 1346)


def test_without_prices_says_costs_are_missing(folder: Path) -> None:
    with pytest.raises(DataError) as ei:
        callwise.load(folder)
    msg = str(ei.value)
    assert msg.startswith(f"{folder}, column 'cost': costs are missing: RouterDC's files record scores only")
    assert "--prices FILE" in msg and str(MODELS) in msg and "assumed_output_tokens" in msg


def test_cli_info(folder: Path) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    res = CliRunner().invoke(app, ["info", str(folder / "humaneval_test.json.gz"), "--prices", str(PRICES)])
    assert res.exit_code == 0, res.output
    assert "format: routerdc" in res.output and "humaneval" in res.output
    res = CliRunner().invoke(app, ["info", str(folder)])
    assert res.exit_code == 2 and "costs are missing" in res.output and "--prices" in res.output


# -- bad input --------------------------------------------------------------------------------

PRICE_AB = PriceTable.from_dict({"assumed_output_tokens": 2,
                                 "models": {"a": {"input": 1.0, "output": 2.0}, "b": {"input": 1.0, "output": 2.0}}})


def _dump(records: Any) -> str:
    return json.dumps(records, indent=1)


def _load(path: Path, **kw: Any) -> OutcomeTable:
    return callwise.load(path, format="routerdc", prices=kw.pop("prices", PRICE_AB), **kw)


def test_small_file_mapping(write_file) -> None:
    path = write_file("quiz-train.json.gz", _dump([{"question": "2+2?", "scores": {"a": 1, "b": 0.25}, "cluster_id": 3},
                                                   {"question": "3+3?", "scores": {"b": 0.5, "a": 0}}]))
    assert callwise.detect_format(path) == "routerdc"
    t = callwise.load(path, prices=PRICE_AB)
    f = t.frame.set_index(["prompt_id", "model"])
    assert f.loc[("quiz-train:0", "b"), "quality"] == 0.25 and f.loc[("quiz-train:1", "a"), "quality"] == 0
    assert set(f["task"]) == {"quiz"} and set(f["split"]) == {"train"}
    # 2+2? is 4 characters: 1 input token at $1/1M, 2 assumed output tokens at $2/1M
    assert f.loc[("quiz-train:0", "a"), "cost"] == pytest.approx(1e-6 + 4e-6)


@pytest.mark.parametrize("content, row, column, expect", [
    ('{"question": "q",\n "scores": {"a": 1}}', None, None,
     "the top level is a JSON object, expected a JSON list of {question, scores} records"),
    ([{"question": "q", "scores": {"a": 1}}, 3], "record 1", None,
     "the record is a JSON number, expected an object with question, scores"),
    ([{"question": "q", "scores": {"a": 1}}, {"question": "r"}], "record 1", "scores",
     "missing field 'scores'; every record needs question, scores"),
    ([{"scores": {"a": 1}}], "record 0", "question", "missing field 'question'"),
    ([{"question": "q", "scores": {"a": 1}}, {"question": ["r"], "scores": {"a": 1}}], "record 1", "question",
     "the question is a JSON array, expected a string"),
    ([{"question": "q", "scores": {}}], "record 0", "scores",
     "'scores' is an empty object, expected an object of model -> score in [0, 1]"),
    ([{"question": "q", "scores": [1, 0]}], "record 0", "scores", "'scores' is a JSON array, expected an object"),
    ([{"question": "q", "scores": {"a": 1, "b": 0}}, {"question": "r", "scores": {"a": "high", "b": 0}}],
     "record 1", "scores.a", "the score is a JSON string ('high'), expected a number in [0, 1]"),
    ([{"question": "q", "scores": {"a": 1.0, "b": True}}], "record 0", "scores.b",
     "the score is a JSON boolean (True), expected a number in [0, 1]"),
    ([{"question": "q", "scores": {"a": 1, "b": 0}}, {"question": "r", "scores": {"a": 1, "b": 1.5}}],
     "record 1", "scores.b", "quality 1.5 is outside [0, 1]"),
    ([{"question": "q", "scores": {"a": 1, "b": 0}}, {"question": "r", "scores": {"a": 1, "b": -0.5}}],
     "record 1", "scores.b", "quality -0.5 is outside [0, 1]"),
])
def test_bad_records(write_file, content: Any, row: str | None, column: str | None, expect: str) -> None:
    path = write_file("x_test.json", content if isinstance(content, str) else _dump(content))
    with pytest.raises(DataError) as ei:
        _load(path)
    where = ", ".join([str(path)] + ([row] if row else []) + ([f"column {column!r}"] if column else []))
    assert str(ei.value).startswith(f"{where}: {expect}"), str(ei.value)
    assert (ei.value.file, ei.value.row, ei.value.column) == (str(path), row, column)


def test_invalid_json_names_line_and_column(write_file) -> None:
    path = write_file("x.json.gz", '[{"question": "q",\n  "scores": {"a": 1,}}]')
    with pytest.raises(FormatError) as ei:
        _load(path)
    assert str(ei.value).startswith(f"{path}: invalid JSON at line 2, column 21: Expecting property name")
    assert "expected a JSON list of {question, scores} records" in str(ei.value)


def test_empty_list(write_file) -> None:
    with pytest.raises(DataError, match=r"x\.json: no records: the top-level list is empty; expected a JSON list"):
        _load(write_file("x.json", "[]"))


def test_missing_score_is_not_recorded(write_file) -> None:
    path = write_file("x_test.json", _dump([{"question": "q", "scores": {"a": 1, "b": 0}},
                                            {"question": "r", "scores": {"a": 1, "b": None}},
                                            {"question": "s", "scores": {"a": 0}}]))
    with pytest.raises(DataError) as ei:
        _load(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}, column 'model': 2 prompt(s) lack an outcome for some model of their task")
    assert "model 'b' missing for 2 prompt(s), e.g. ['x_test:1', 'x_test:2']" in msg and "--drop-incomplete" in msg
    t = _load(path, drop_incomplete=True)
    assert t.meta["dropped_prompts"] == ["x_test:1", "x_test:2"] and len(t) == 2


def test_price_table_lacks_models(write_file) -> None:
    path = write_file("x.json", _dump([{"question": "q", "scores": {"a": 1, "b": 0, "c": 1}}]))
    prices = write_file("p.yaml", "assumed_output_tokens: 0\nmodels:\n  a: {input: 1}\n")
    with pytest.raises(DataError) as ei:
        _load(path, prices=prices)
    assert str(ei.value) == f"{prices}, column 'models': no price for model(s) ['b', 'c']; the price table has ['a']"


def test_output_price_needs_assumed_output_tokens(write_file) -> None:
    path = write_file("x.json", _dump([{"question": "q", "scores": {"a": 1}}]))
    prices = write_file("p.yaml", "models:\n  a: {input: 1, output: 2}\n")
    with pytest.raises(DataError, match=r"p\.yaml, column 'assumed_output_tokens': model 'a' has an output price but "
                                        r"the data has no response text"):
        _load(path, prices=prices)


def test_two_files_with_one_name(tmp_path: Path, write_file) -> None:
    write_file("d/x_test.json", _dump([{"question": "q", "scores": {"a": 1}}]))
    gz = write_file("d/x_test.json.gz", _dump([{"question": "r", "scores": {"a": 1}}]))
    with pytest.raises(DataError, match=rf"{gz.name}: has the same name as x_test\.json without \.json\(\.gz\)"):
        _load(tmp_path / "d")


def test_folder_skips_other_json_and_notes_it(tmp_path: Path, write_file) -> None:
    write_file("d/x_test.json", _dump([{"question": "q", "scores": {"a": 1, "b": 0}}]))
    write_file("d/x_train.json", _dump([{"question": "r", "scores": {"a": 0, "b": 1}}]))
    write_file("d/config.json", _dump([{"name": "not scores"}]))
    assert callwise.detect_format(tmp_path / "d") == "routerdc"
    t = _load(tmp_path / "d")
    assert sorted(t.frame["prompt_id"].unique()) == ["x_test:0", "x_train:0"]
    assert any("skipped 1 JSON file(s)" in n and "config.json" in n for n in t.meta["notes"])


def test_origin_split_where_a_task_has_one(tmp_path: Path, write_file) -> None:
    """x has train/test files, y has one file: x keeps the origin split, y gets the seeded one."""
    rec = lambda q: {"question": q, "scores": {"a": 1, "b": 0}}  # noqa: E731
    write_file("d/x_train.json", _dump([rec("q1"), rec("q2")]))
    write_file("d/x_test.json", _dump([rec("q3")]))
    write_file("d/y.json", _dump([rec(f"r{i}") for i in range(10)]))
    t = _load(tmp_path / "d")
    assert not t.has_split
    train, test, info = split_outcomes(t)
    assert info["method"] == "origin" and info["fallback_tasks"] == ["y"]
    assert sorted(train.frame.loc[train.frame["task"] == "x", "prompt_id"].unique()) == ["x_train:0", "x_train:1"]
    assert list(test.frame.loc[test.frame["task"] == "x", "prompt_id"].unique()) == ["x_test:0"]
    assert train.frame.loc[train.frame["task"] == "y", "prompt_id"].nunique() == 7
