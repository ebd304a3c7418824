"""The LLMRouter loader (``llmrouter``): the real DC-Router files and price file checked against an
independent parse, the price file as ``--prices``, and every bad input's message."""

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
from callwise.io.llmrouter import load_prices

MODELS = sorted(["qwen2.5-7b-instruct", "llama3-chatqa-1.5-8b", "llama-3.1-nemotron-51b-instruct",
                 "llama3-chatqa-1.5-70b", "mistral-7b-instruct-v0.3", "gemma-2-9b-it", "codegemma-7b",
                 "llama-3.1-8b-instruct", "llama-3.3-nemotron-super-49b-v1"])


# -- the real data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "llmrouter-dcrouter"


@pytest.fixture(scope="module")
def raw(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for split in ("train", "test"):
        with gzip.open(folder / f"{split}.json.gz", "rt", encoding="utf-8") as fh:
            out[split] = json.load(fh)
    return out


@pytest.fixture(scope="module")
def price_file(folder: Path) -> dict[str, dict[str, Any]]:
    return json.loads((folder / "default_llm.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def table(folder: Path) -> OutcomeTable:
    return callwise.load(folder)


def test_detected(folder: Path) -> None:
    assert callwise.detect_format(folder) == "llmrouter"
    assert callwise.detect_format(folder / "test.json.gz") == "llmrouter"


def test_counts_models_and_splits(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> None:
    f = table.frame
    assert table.meta["format"] == "llmrouter"
    assert (len(raw["train"]), len(raw["test"])) == (5584, 499)
    assert len(f) == sum(len(r["scores"]) for recs in raw.values() for r in recs) == 6083 * 9
    assert table.tasks() == ["dcrouter"] and table.models() == MODELS
    firsts = f.drop_duplicates("prompt_id")
    assert firsts["split"].value_counts().to_dict() == {"train": 5584, "test": 499}
    assert firsts["prompt_id"].str.startswith("train:").sum() == 5584


def test_every_score_question_and_cost(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]],
                                       price_file: dict[str, dict[str, Any]]) -> None:
    got = merged_with_raw(table, raw)
    # price file: USD per 1M input tokens; tokens = ceil(characters / 4); output tokens are not recorded
    price = got["model"].map(lambda m: price_file[m]["input_price"])
    assert np.allclose(got["cost"], got["tokens"] * price / 1e6, rtol=1e-12, atol=0)
    assert table.costs_estimated
    assert table.meta["price_table"]["models"]["gemma-2-9b-it"]["input_per_1m"] == 0.1


def test_notes(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> None:
    notes = " | ".join(table.meta["notes"])
    assert "output tokens are not recorded and count 0 (costs are a lower bound" in notes
    assert "LLMRouter's default_llm.json" in notes
    both = {r["question"] for r in raw["train"]} & {r["question"] for r in raw["test"]}
    assert f"dcrouter {len(both)}" in notes and len(both) == 118
    assert "skipped" not in notes  # the price file is not data


def test_one_file(folder: Path) -> None:
    t = callwise.load(folder / "test.json.gz")
    assert t.frame["prompt_id"].nunique() == 499 and set(t.frame["split"]) == {"test"}
    assert t.meta["price_table"]["path"] == str(folder / "default_llm.json")


def test_price_file_alone_is_not_data(folder: Path) -> None:
    with pytest.raises(FormatError) as ei:
        callwise.load(folder / "default_llm.json")
    msg = str(ei.value)
    assert msg.startswith(f"{folder / 'default_llm.json'}: is an LLMRouter price file")
    assert "invalid JSON" not in msg and "--prices FILE" in msg


def test_prices_option_replaces_the_price_file(folder: Path, write_file) -> None:
    prices = write_file("p.yaml", "source: flat\nmodels:\n" + "".join(f"  {m}: {{per_call: 0.001}}\n" for m in MODELS))
    t = callwise.load(folder / "test.json.gz", prices=prices)
    assert np.allclose(t.frame["cost"], 0.001)
    assert any(f"prices from {prices}, not default_llm.json" in n for n in t.meta["notes"])


def test_price_file_as_prices_for_another_format(folder: Path, write_file) -> None:
    """load_prices reads LLMRouter's layout, so --prices default_llm.json prices a long table's tokens."""
    pt = load_prices(folder / "default_llm.json")
    assert pt.models["llama3-chatqa-1.5-70b"].input_per_1m == 0.9 and pt.assumed_output_tokens == 0
    path = write_file("t.csv", "prompt_id,model,quality,input_tokens,output_tokens\n"
                               "p1,gemma-2-9b-it,1,1000,500\np1,llama3-chatqa-1.5-70b,0,1000,200\n")
    t = callwise.load(path, prices=folder / "default_llm.json")
    cost = t.frame.set_index("model")["cost"]
    assert cost["gemma-2-9b-it"] == pytest.approx(1500 * 0.1 / 1e6)
    assert cost["llama3-chatqa-1.5-70b"] == pytest.approx(1200 * 0.9 / 1e6)


def test_cli_info_on_the_folder(folder: Path) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    res = CliRunner().invoke(app, ["info", str(folder)])
    assert res.exit_code == 0, res.output
    assert "format: llmrouter" in res.output and "invalid JSON" not in res.output


# -- bad input --------------------------------------------------------------------------------

PRICES = {"a": {"input_price": 1.0, "output_price": 2.0, "size": "7B"},
          "b": {"input_price": 3.0, "output_price": 3.0}}


def _folder(write_file, prices: Any = None, records: Any = None) -> Path:
    recs = records if records is not None else [{"question": "abcd", "scores": {"a": 1, "b": 0}}]
    path = write_file("d/train.json", json.dumps(recs))
    write_file("d/default_llm.json", prices if isinstance(prices, str) else json.dumps(prices or PRICES, indent=2))
    return path.parent


def test_small_folder(write_file) -> None:
    d = _folder(write_file)
    t = callwise.load(d)
    f = t.frame.set_index("model")
    assert list(f["prompt_id"]) == ["train:0", "train:0"] and set(f["task"]) == {"dcrouter"}
    assert f.loc["b", "cost"] == pytest.approx(3e-6)  # 1 input token at $3 per 1M


def test_price_file_invalid_json(write_file) -> None:
    d = _folder(write_file, prices='{\n  "a": {"input_price": 1.0,\n    "output_price": 2.0,}\n}')
    with pytest.raises(DataError) as ei:
        callwise.load(d)
    msg = str(ei.value)
    assert msg.startswith(f"{d / 'default_llm.json'}: invalid JSON at line 3, column 25: Expecting property name")
    assert "expected an LLMRouter price file" in msg


@pytest.mark.parametrize("entry, column, expect", [
    ({"input_price": -1, "output_price": 2}, "a.input_price", "model 'a': input_price must be a finite number >= 0 "
                                                              "(USD per 1M tokens), got -1"),
    ({"input_price": 1, "output_price": "cheap"}, "a.output_price", "model 'a': output_price must be a finite number >= 0 "
                                                                   "(USD per 1M tokens), got 'cheap'"),
    ({"input_price": 1}, "a.output_price", "model 'a': missing 'output_price'; every model needs input_price and "
                                           "output_price"),
    ("0.2", "a", "model 'a': the entry is a JSON string, expected an object with input_price and output_price"),
])
def test_price_file_bad_entry(write_file, entry: Any, column: str, expect: str) -> None:
    d = _folder(write_file, prices={"a": entry, "b": PRICES["b"]})
    with pytest.raises(DataError) as ei:
        callwise.load(d, format="llmrouter")
    assert str(ei.value).startswith(f"{d / 'default_llm.json'}, column {column!r}: {expect}"), str(ei.value)


def test_price_file_lacks_a_model(write_file) -> None:
    d = _folder(write_file, prices={"a": PRICES["a"]}, records=[{"question": "q", "scores": {"a": 1, "b": 0}}])
    with pytest.raises(DataError) as ei:
        callwise.load(d, format="llmrouter")
    assert str(ei.value) == (f"{d / 'default_llm.json'}, column 'models': no price for model(s) ['b']; "
                             "the price table has ['a']")


def test_no_price_file(tmp_path: Path, write_file) -> None:
    path = write_file("d/test.json", json.dumps([{"question": "q", "scores": {"a": 1}}]))
    assert callwise.detect_format(path) == "routerdc"  # without a price file beside it
    with pytest.raises(DataError) as ei:
        callwise.load(path, format="llmrouter")
    assert str(ei.value).startswith(f"{path}, column 'cost': costs are missing: no LLMRouter price file "
                                    "(default_llm.json) beside the data")
    assert "--prices FILE" in str(ei.value) and "['a']" in str(ei.value)


def test_bad_score_names_record_and_model(write_file) -> None:
    d = _folder(write_file, records=[{"question": "q", "scores": {"a": 1, "b": 0}},
                                     {"question": "r", "scores": {"a": 2, "b": 0}}])
    with pytest.raises(DataError) as ei:
        callwise.load(d)
    assert str(ei.value).startswith(f"{d / 'train.json'}, record 1, column 'scores.a': quality 2.0 is outside [0, 1]")
