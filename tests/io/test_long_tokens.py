"""Long tables priced from token columns with a price table, and the JSON messages that used to show
an internal column (``__line__``) or call a valid JSON object "invalid JSON"."""

from __future__ import annotations

from pathlib import Path

import pytest

import callwise
from callwise.core.errors import DataError, FormatError

PRICES = "models:\n  a: {input: 1.0, output: 2.0}\n  b: {input: 10.0, output: 30.0, per_call: 0.001}\n"
TOKENS = ("prompt_id,model,quality,input_tokens,output_tokens\n"
          "p1,a,1,100,10\np1,b,0,100,20\np2,a,0,1000,3\np2,b,1,50,5\n")


@pytest.fixture
def prices(write_file) -> Path:
    return write_file("prices.yaml", PRICES)


def test_cost_from_token_columns(write_file, prices: Path) -> None:
    t = callwise.load(write_file("t.csv", TOKENS), prices=prices)
    cost = t.frame.set_index(["prompt_id", "model"])["cost"]
    assert cost[("p1", "a")] == pytest.approx(100 * 1 / 1e6 + 10 * 2 / 1e6)
    assert cost[("p1", "b")] == pytest.approx(100 * 10 / 1e6 + 20 * 30 / 1e6 + 0.001)
    assert cost[("p2", "a")] == pytest.approx(1000 / 1e6 + 6 / 1e6)
    assert t.costs_estimated and t.meta["price_table"]["path"] == str(prices)
    assert any("costs computed from token counts (input_tokens recorded; output_tokens recorded)" in n
               for n in t.meta["notes"])


def test_mapped_token_columns_jsonl(write_file, prices: Path) -> None:
    path = write_file("t.jsonl", '{"id": "p1", "model": "a", "ok": 1, "prompt_tokens": 10, "completion_tokens": 4}\n'
                                 '{"id": "p1", "model": "b", "ok": 0, "prompt_tokens": 10, "completion_tokens": 4}\n')
    t = callwise.load(path, mapping={"prompt_id": "id", "quality": "ok", "input_tokens": "prompt_tokens",
                                     "output_tokens": "completion_tokens"}, prices=prices)
    assert t.frame.set_index("model")["cost"]["a"] == pytest.approx(18 / 1e6)


def test_output_tokens_from_answer_text_or_assumed(write_file) -> None:
    path = write_file("t.csv", "prompt_id,model,quality,input_tokens,answer\np1,a,1,10,abcdefgh\n")
    p = write_file("p.yaml", "models:\n  a: {input: 1.0, output: 2.0}\n")
    t = callwise.load(path, prices=p)
    assert t.frame["output_tokens"].iloc[0] == 2 and t.frame["cost"].iloc[0] == pytest.approx(14 / 1e6)
    assert any("output_tokens estimated from 'answer' text" in n for n in t.meta["notes"])
    path = write_file("u.csv", "prompt_id,model,quality,input_tokens\np1,a,1,10\n")
    t = callwise.load(path, prices=write_file("q.yaml", "assumed_output_tokens: 5\nmodels:\n  a: {input: 1, output: 2}\n"))
    assert t.frame["cost"].iloc[0] == pytest.approx(20 / 1e6)


def test_recorded_costs_are_kept_and_empty_ones_filled(write_file, prices: Path) -> None:
    path = write_file("t.csv", "prompt_id,model,quality,cost,input_tokens,output_tokens\n"
                               "p1,a,1,0.5,100,10\np1,b,0,,100,20\n")
    t = callwise.load(path, prices=prices)
    cost = t.frame.set_index("model")["cost"]
    assert cost["a"] == 0.5 and cost["b"] == pytest.approx(0.0026)
    assert any("1 of 2 empty costs computed" in n for n in t.meta["notes"])


def test_tokens_without_prices_says_how_to_price(write_file) -> None:
    path = write_file("t.csv", TOKENS)
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}, column 'cost': missing required column 'cost'; the table has token columns "
                          "['input_tokens', 'output_tokens']: pass a price table (--prices FILE")


def test_empty_token_count(write_file, prices: Path) -> None:
    path = write_file("t.csv", TOKENS.replace("p2,a,0,1000,3", "p2,a,0,1000,"))
    with pytest.raises(DataError) as ei:
        callwise.load(path, prices=prices)
    assert str(ei.value) == (f"{path}, row 3, column 'output_tokens': empty output_tokens for model 'a', which has a "
                             "price per token; the cost needs the token count")


@pytest.mark.parametrize("value, shown", [("-3", "-3"), ("2.5", "2.5"), ("many", "'many'")])
def test_bad_token_count(write_file, prices: Path, value: str, shown: str) -> None:
    path = write_file("t.csv", TOKENS.replace("p2,b,1,50,5", f"p2,b,1,{value},5"))
    with pytest.raises(DataError) as ei:
        callwise.load(path, mapping={"input_tokens": "input_tokens"}, prices=prices)
    assert str(ei.value) == (f"{path}, row 4, column 'input_tokens': expected a token count (a whole number >= 0), "
                             f"got {shown}")


def test_no_token_column_for_a_token_price(write_file, prices: Path) -> None:
    path = write_file("t.csv", "prompt_id,model,quality,input_tokens\np1,a,1,10\n")
    with pytest.raises(DataError) as ei:
        callwise.load(path, prices=prices)
    assert str(ei.value).startswith(f"{path}, column 'output_tokens': model 'a' has a price per output token but the "
                                    "table has no output_tokens column (nor 'answer' text to estimate it from): add or "
                                    "map one (--map output_tokens=YOUR_COLUMN) or set assumed_output_tokens")


def test_model_without_price(write_file) -> None:
    p = write_file("p.yaml", "models:\n  a: {input: 1.0, output: 2.0}\n")
    with pytest.raises(DataError) as ei:
        callwise.load(write_file("t.csv", TOKENS), prices=p)
    assert str(ei.value) == f"{p}, column 'models': no price for model(s) ['b']; the price table has ['a']"


def test_cli_info_prices_a_token_table(write_file, prices: Path) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    res = CliRunner().invoke(app, ["info", str(write_file("t.csv", TOKENS)), "--prices", str(prices)])
    assert res.exit_code == 0, res.output
    assert "costs estimated: True" in res.output and "computed from token counts" in res.output


# -- JSON messages ------------------------------------------------------------------------------


def test_json_object_file_is_not_called_invalid(write_file) -> None:
    path = write_file("settings.json", '{\n  "alpha": 1,\n  "beta": {"x": 2}\n}\n')
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    assert str(ei.value) == (f"{path}: holds one JSON object (keys ['alpha', 'beta']), not records: expected JSON "
                             "lines (one object per line) or a JSON list of objects")


def test_broken_json_document_names_its_line_and_column(write_file) -> None:
    path = write_file("settings.json", '{\n  "alpha": 1,\n  "beta": [1, 2,, 3]\n}\n')
    with pytest.raises(FormatError) as ei:
        callwise.load(path, format="long")
    assert str(ei.value).startswith(f"{path}: invalid JSON at line 3, column 17: Expecting value (the file is one "
                                    "JSON document over several lines")


def test_undetectable_json_list_lists_only_its_own_fields(write_file) -> None:
    path = write_file("x.json", '[{"foo": 1, "bar": 2}]')
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: cannot detect the format from its columns ['foo', 'bar']; pass --input-format")
    assert "__line__" not in msg and "routerdc" in msg and "llmrouter" in msg


def test_undetectable_jsonl_lists_only_its_own_fields(write_file) -> None:
    path = write_file("x.jsonl", '{"foo": 1}\n{"foo": 2, "baz": 3}\n')
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    assert "columns ['foo', 'baz']" in str(ei.value) and "__line__" not in str(ei.value)


def test_json_list_long_table_names_the_record(write_file) -> None:
    path = write_file("o.json", '[{"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.1},\n'
                                ' {"prompt_id": "p2", "model": "a", "quality": 1, "cost": -2}]')
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    assert str(ei.value).startswith(f"{path}, record 1, column 'cost': negative cost -2")


def test_json_list_with_a_non_object(write_file) -> None:
    path = write_file("o.json", '[{"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.1}, "oops"]')
    with pytest.raises(FormatError) as ei:
        callwise.load(path, format="long")
    assert str(ei.value) == f"{path}, record 1: expected a JSON list of objects, but the record is a JSON string"


def test_mapped_column_message_hides_the_internal_column(write_file) -> None:
    path = write_file("o.jsonl", '{"id": "p1", "model": "a", "quality": 1, "cost": 0.1}\n')
    with pytest.raises(DataError) as ei:
        callwise.load(path, mapping={"prompt_id": "pid"})
    msg = str(ei.value)
    assert "mapped column 'pid' is not in the file; its columns are ['id', 'model', 'quality', 'cost']" in msg
    assert "__line__" not in msg
