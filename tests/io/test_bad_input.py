"""Bad input: every case raises DataError/FormatError whose message names the file, the row/line
or prompt, the column, and what was expected; the CLI turns them into ``error:`` and exit code 2
without writing anything."""

from __future__ import annotations

import gzip
import pickle
import re
from pathlib import Path

import pandas as pd
import pytest

import callwise
from callwise.core.errors import CallwiseError, DataError, FormatError
from callwise.core.prices import PriceTable

HEADER = "prompt_id,model,quality,cost\n"


def _msg(exc_info: pytest.ExceptionInfo) -> str:
    return str(exc_info.value)


# -- unknown / undetectable format ------------------------------------------------------------


def test_unknown_file_type_txt(write_file) -> None:
    path = write_file("outcomes.txt", HEADER + "p1,a,1,0.1\n")
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert "outcomes.txt" in msg
    assert "unknown format" in msg and "'.txt'" in msg
    assert "'.csv'" in msg and "--input-format" in msg  # what was expected, and the way out
    assert ei.value.file == str(path)


def test_csv_with_unrelated_columns(write_file) -> None:
    path = write_file("weird.csv", "foo,bar,baz\n1,2,3\n")
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert "weird.csv" in msg
    assert "cannot detect the format" in msg and "['foo', 'bar', 'baz']" in msg
    assert "--input-format" in msg and "routerbench" in msg and "long" in msg and "--map" in msg


def test_unknown_format_name(write_file, long_csv_text: str) -> None:
    path = write_file("ok.csv", long_csv_text)
    with pytest.raises(FormatError, match=r"ok\.csv: unknown format 'nope'; expected one of \['routerbench', 'long'"):
        callwise.load(path, format="nope")


def test_missing_path() -> None:
    with pytest.raises(DataError, match=r"does-not-exist\.csv: no such file"):
        callwise.load("does-not-exist.csv")
    with pytest.raises(DataError, match=r"does-not-exist\.csv: no such file"):
        callwise.load("does-not-exist.csv", format="long")


def test_folder_without_data_files(tmp_path: Path, write_file) -> None:
    write_file("d/readme.md", "nothing here")
    with pytest.raises(DataError, match=r"d: no data files in this folder \(expected \.csv"):
        callwise.load(tmp_path / "d")


# -- empty input ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.csv.gz"])
@pytest.mark.parametrize("format", [None, "long"])
def test_empty_file(write_file, name: str, format: str | None) -> None:
    path = write_file(name, b"")
    with pytest.raises(DataError, match=rf"{re.escape(name)}: empty file: expected recorded outcomes"):
        callwise.load(path, format=format)


def test_whitespace_only_file(write_file) -> None:
    with pytest.raises(DataError, match=r"blank\.csv: empty file"):
        callwise.load(write_file("blank.csv", "\n \n"))


def test_csv_header_only(write_file) -> None:
    path = write_file("header.csv", HEADER)
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    assert _msg(ei) == f"{path}: empty file: a header but no rows"


def test_parquet_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "none.parquet"
    pd.DataFrame({"prompt_id": pd.Series([], dtype=str), "model": pd.Series([], dtype=str),
                  "quality": pd.Series([], dtype=float), "cost": pd.Series([], dtype=float)}).to_parquet(path)
    with pytest.raises(DataError, match=r"none\.parquet: empty file: the Parquet table has no rows"):
        callwise.load(path)


# -- missing required column ------------------------------------------------------------------


def test_missing_cost_column(write_file) -> None:
    path = write_file("nocost.csv", "prompt_id,model,quality\np1,a,1\np1,b,0\n")
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}, column 'cost': missing required column(s) ['cost']")
    assert "needs ['prompt_id', 'model', 'quality', 'cost']" in msg  # what was expected
    assert "found ['prompt_id', 'model', 'quality']" in msg
    assert ei.value.column == "cost"


def test_missing_mapped_quality_column_is_named_by_its_input_name(write_file) -> None:
    path = write_file("m.csv", "prompt_id,model,usd\np1,a,0.1\n")
    with pytest.raises(DataError, match=r"m\.csv, column 'quality': missing required column\(s\) \['quality'\]"):
        callwise.load(path, mapping={"cost": "usd"})


# -- bad costs --------------------------------------------------------------------------------


@pytest.mark.parametrize("value, what, shown", [("", "NaN", "nan"), ("nan", "NaN", "nan"), ("inf", "infinite", "inf"),
                                                ("-inf", "infinite", "-inf"), ("-0.5", "negative", "-0.5")])
def test_bad_cost_names_row_and_column(write_file, value: str, what: str, shown: str) -> None:
    path = write_file("costs.csv", HEADER + f"p1,a,1,0.1\np2,a,1,{value}\np3,a,1,0.2\n")
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}, row 2, column 'cost': {what} cost {shown};")
    assert "costs must be finite US dollars >= 0" in msg
    assert (ei.value.file, ei.value.row, ei.value.column) == (str(path), "row 2", "cost")


def test_non_numeric_cost(write_file) -> None:
    path = write_file("costs.csv", HEADER + "p1,a,1,0.1\np2,a,1,cheap\n")
    with pytest.raises(DataError, match=r"costs\.csv, row 2, column 'cost': expected a number, got 'cheap'"):
        callwise.load(path)


def test_bad_cost_in_jsonl_names_the_line(write_file) -> None:
    path = write_file("o.jsonl", '{"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.1}\n\n'
                                 '{"prompt_id": "p2", "model": "a", "quality": 1, "cost": -2}\n')
    with pytest.raises(DataError, match=r"o\.jsonl, line 3, column 'cost': negative cost"):
        callwise.load(path)


def test_bad_cost_under_mapped_name(write_file) -> None:
    path = write_file("o.csv", "prompt_id,model,quality,usd\np1,a,1,0.1\np2,a,1,-1\n")
    with pytest.raises(DataError, match=r"o\.csv, row 2, column 'usd': negative cost"):
        callwise.load(path, mapping={"cost": "usd"})


def test_bad_cost_in_routerbench_wide_names_the_model_column(write_file) -> None:
    path = write_file("rb_test.csv", "sample_id,prompt,eval_name,m1,m1|total_cost,m2,m2|total_cost\n"
                                     "s1,q,t,1,0.1,0,0.2\ns2,q,t,1,0.1,0,-0.2\n")
    with pytest.raises(DataError, match=r"rb_test\.csv, row 2, column 'm2\|total_cost': negative cost"):
        callwise.load(path)


def test_bad_cost_in_folder_names_the_file(tmp_path: Path, write_file, long_csv_text: str) -> None:
    write_file("f/a.csv", long_csv_text)
    bad = write_file("f/b.csv", "prompt_id,task,model,quality,cost\np9,t,a,1,0.1\np9,t,b,1,inf\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(bad))}, row 2, column 'cost': infinite cost"):
        callwise.load(tmp_path / "f")


# -- quality out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-0.1", "inf", ""])
def test_quality_outside_unit_range(write_file, value: str) -> None:
    path = write_file("q.csv", HEADER + f"p1,a,1,0.1\np2,a,{value},0.1\n")
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    shown = {"": "nan"}.get(value, value)
    assert msg.startswith(f"{path}, row 2, column 'quality': quality {shown} is outside [0, 1]")
    assert "--quality-range" in msg


def test_quality_range_accepts_and_rescales(write_file) -> None:
    path = write_file("q.csv", HEADER + "p1,a,1,0.1\np2,a,10,0.1\np3,a,5.5,0\n")
    with pytest.raises(DataError, match=r"row 2, column 'quality': quality .*10.* is outside \[0, 1\]"):
        callwise.load(path)
    t = callwise.load(path, quality_range=(1, 10))
    q = t.frame.set_index("prompt_id")["quality"]
    assert q.to_dict() == {"p1": 0.0, "p2": 1.0, "p3": 0.5}
    assert t.meta["quality_range"] == [1, 10]


def test_quality_range_rejects_values_outside_it(write_file) -> None:
    path = write_file("q.csv", HEADER + "p1,a,1,0.1\np2,a,0.5,0.1\n")
    with pytest.raises(DataError, match=r"q\.csv, row 2, column 'quality': quality .*0\.5.* is outside \[1, 10\]"):
        callwise.load(path, quality_range=(1, 10))


def test_quality_range_must_be_ordered(write_file, long_csv_text: str) -> None:
    with pytest.raises(DataError, match=r"quality range must be two finite numbers lo < hi"):
        callwise.load(write_file("o.csv", long_csv_text), quality_range=(1, 1))


# -- duplicates -------------------------------------------------------------------------------


def test_conflicting_duplicates_name_prompt_and_both_rows(write_file) -> None:
    path = write_file("dup.csv", HEADER + "p1,a,1,0.1\np2,a,1,0.1\np1,a,0,0.1\n")
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}, prompt 'p1', column 'quality': duplicate outcome for prompt 'p1', model 'a'")
    assert "different quality values [1.0, 0.0]" in msg
    assert f"{path} row 1; {path} row 3" in msg  # both rows
    assert "must be recorded once" in msg


def test_conflicting_duplicate_costs_across_files(tmp_path: Path, write_file) -> None:
    a = write_file("f/a.csv", HEADER + "p1,a,1,0.1\n")
    b = write_file("f/b.jsonl", '{"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.3}\n')
    with pytest.raises(DataError) as ei:
        callwise.load(tmp_path / "f")
    msg = _msg(ei)
    assert "prompt 'p1'" in msg and "column 'cost'" in msg and "different cost values [0.1, 0.3]" in msg
    assert f"{a} row 1" in msg and f"{b} " in msg  # both places


def test_agreeing_duplicates_collapse_silently(write_file) -> None:
    path = write_file("dup.csv", HEADER + "p1,a,1,0.1\np1,b,0,0.2\np1,a,1,0.1\np1,b,0,0.2\n")
    t = callwise.load(path)
    assert len(t) == 2
    assert sorted(t.frame["model"]) == ["a", "b"]
    assert "dropped_prompts" not in t.meta


# -- incomplete prompts -----------------------------------------------------------------------


INCOMPLETE = HEADER + "p1,a,1,0.1\np1,b,1,0.1\np2,a,1,0.1\np3,b,0,0.1\np4,a,0,0\np4,b,0,0\np5,a,1,0.1\n"


def test_model_missing_for_some_prompts(write_file) -> None:
    path = write_file("inc.csv", INCOMPLETE)
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}, column 'model': 3 prompt(s) lack an outcome for some model of their task")
    assert "model 'b' missing for 2 prompt(s), e.g. ['p2', 'p5']" in msg
    assert "model 'a' missing for 1 prompt(s), e.g. ['p3']" in msg
    assert "--drop-incomplete" in msg


def test_drop_incomplete_drops_and_lists(write_file) -> None:
    t = callwise.load(write_file("inc.csv", INCOMPLETE), drop_incomplete=True)
    assert t.meta["dropped_prompts"] == ["p2", "p3", "p5"]
    assert sorted(t.frame["prompt_id"].unique()) == ["p1", "p4"]
    assert len(t) == 4


def test_model_missing_only_in_its_own_task(write_file) -> None:
    """Completeness is per task: a model of one task is not required in another."""
    path = write_file("tasks.csv", "prompt_id,task,model,quality,cost\n"
                                   "p1,x,a,1,0.1\np1,x,b,1,0.1\nq1,y,c,1,0.1\nq2,y,c,0,0.1\np2,x,a,0,0.1\n")
    with pytest.raises(DataError, match=r"1 prompt\(s\).*task 'x': model 'b' missing for 1 prompt\(s\), e\.g\. \['p2'\]"):
        callwise.load(path)


# -- bytes that are not what they claim -------------------------------------------------------


def test_invalid_utf8_names_byte_and_line(write_file) -> None:
    raw = (HEADER + "p1,a,1,0.1\n").encode() + b"p\xff2,a,1,0.1\n"
    path = write_file("latin.csv", raw)
    offset = raw.index(b"\xff")
    with pytest.raises(DataError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}, line 3: invalid UTF-8 at byte {offset} (line 3)")
    assert "expected UTF-8 text" in msg


def test_invalid_utf8_inside_gzip(write_file) -> None:
    raw = HEADER.encode() + b"caf\xe9,a,1,0.1\n"  # Latin-1, not UTF-8; the offset is in the gunzipped bytes
    path = write_file("latin.csv.gz", raw)
    with pytest.raises(DataError, match=rf"latin\.csv\.gz, line 2: invalid UTF-8 at byte {raw.index(0xE9)} \(line 2\)"):
        callwise.load(path)


def test_gz_that_is_not_gzip(write_file, long_csv_text: str) -> None:
    path = write_file("plain.csv.gz", long_csv_text, gz=False)
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}: named .gz but is not gzip")
    assert "first bytes b'prom'" in msg and r"expected b'\x1f\x8b'" in msg


def test_truncated_gzip(write_file, long_csv_text: str) -> None:
    path = write_file("cut.csv.gz", gzip.compress(long_csv_text.encode())[:25], gz=False)
    with pytest.raises(FormatError, match=r"cut\.csv\.gz: corrupt or truncated gzip data"):
        callwise.load(path, format="long")


def test_parquet_that_is_not_parquet(write_file, long_csv_text: str) -> None:
    path = write_file("fake.parquet", long_csv_text)
    with pytest.raises(FormatError, match=r"fake\.parquet: named \.parquet but is not"):
        callwise.load(path)


def test_invalid_jsonl_names_the_line(write_file) -> None:
    path = write_file("o.jsonl", '{"prompt_id": "p1", "model": "a", "quality": 1, "cost": 0.1}\n{"prompt_id": \n')
    with pytest.raises(FormatError, match=r"o\.jsonl, line 2: invalid JSON"):
        callwise.load(path, format="long")


# -- pickles ----------------------------------------------------------------------------------


def _wide() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": ["s1"], "prompt": ["q"], "eval_name": ["t"], "m1": [1.0],
                         "m1|total_cost": [0.1]})


def test_pickle_refused_without_trust(tmp_path: Path) -> None:
    path = tmp_path / "routerbench_0shot.pkl"
    _wide().to_pickle(path)
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}: is a pickle")
    assert "unpickling runs code" in msg and "--trust-pickle" in msg and "trust_pickle=True" in msg
    assert len(callwise.load(path, trust_pickle=True)) == 1


def test_pickle_renamed_to_csv(tmp_path: Path) -> None:
    path = tmp_path / "looks_like.csv"
    path.write_bytes(pickle.dumps(_wide(), protocol=4))
    with pytest.raises(FormatError) as ei:
        callwise.load(path)
    msg = _msg(ei)
    assert msg.startswith(f"{path}: is a pickle although named .csv")
    assert "--trust-pickle" in msg
    # forcing a text format does not unpickle it either
    for fmt in ("long", "routerbench"):
        with pytest.raises(FormatError, match=r"looks_like\.csv: is a pickle, not text.*--trust-pickle"):
            callwise.load(path, format=fmt, trust_pickle=True)


def test_pickle_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(FormatError, match=r"list\.pkl: the pickle holds a list, expected a pandas DataFrame"):
        callwise.load(path, trust_pickle=True)


# -- RouteLLM and price tables ----------------------------------------------------------------

MMLU_CSV = "prompt,m1,m2\nWhat is 2+2?,True,False\nQ2,False,True\n"


@pytest.fixture
def routellm_dir(tmp_path: Path, write_file) -> Path:
    write_file("r/mmlu/responses/mmlu_x.csv", MMLU_CSV)
    return tmp_path / "r"


def test_routellm_without_price_table(routellm_dir: Path) -> None:
    assert callwise.detect_format(routellm_dir) == "routellm"
    with pytest.raises(DataError) as ei:
        callwise.load(routellm_dir)
    msg = _msg(ei)
    assert msg.startswith(f"{routellm_dir}, column 'cost': RouteLLM evals record correctness only, no costs")
    assert "--prices" in msg


def test_real_routellm_without_price_table(shared_data: Path) -> None:
    with pytest.raises(DataError, match=r"routellm-evals, column 'cost': .*pass a price table \(--prices FILE"):
        callwise.load(shared_data / "routellm-evals")


def test_price_table_missing_a_model(routellm_dir: Path, write_file) -> None:
    prices = write_file("prices.yaml", "assumed_output_tokens: 5\nmodels:\n  m1: {input: 1.0, output: 2.0}\n")
    with pytest.raises(DataError) as ei:
        callwise.load(routellm_dir, prices=prices)
    msg = _msg(ei)
    assert msg.startswith(f"{prices}, column 'models': no price for model 'm2'")
    assert "the price table has ['m1']" in msg


@pytest.mark.parametrize("bad, key", [("{input: -1.0, output: 2.0}", "input"), ("{input: 1.0, output: .nan}", "output"),
                                      ("{per_call: -0.01}", "per_call"), ("{input: cheap}", "input")])
def test_price_table_with_bad_price(routellm_dir: Path, write_file, bad: str, key: str) -> None:
    prices = write_file("prices.yaml", f"assumed_output_tokens: 5\nmodels:\n  m1: {{input: 1.0}}\n  m2: {bad}\n")
    with pytest.raises(DataError) as ei:
        callwise.load(routellm_dir, prices=prices)
    msg = _msg(ei)
    assert msg.startswith(f"{prices}, column 'models.m2.{key}': model 'm2': {key} price must be a finite number >= 0")


def test_price_table_json_negative_price(write_file) -> None:
    path = write_file("p.json", '{"models": {"x": {"input": 1, "output": -3}}}')
    with pytest.raises(DataError, match=r"p\.json, column 'models\.x\.output': .*must be a finite number >= 0, got -3"):
        PriceTable.load(path)


def test_price_table_other_errors(write_file) -> None:
    with pytest.raises(DataError, match=r"p\.yaml, column 'models': a price table needs a non-empty 'models'"):
        PriceTable.load(write_file("p.yaml", "source: x\n"))
    with pytest.raises(DataError, match=r"p2\.yaml, column 'models\.m': model 'm': expected keys input, output"):
        PriceTable.load(write_file("p2.yaml", "models:\n  m: {in: 1}\n"))
    with pytest.raises(DataError, match=r"p3\.json: unreadable price table"):
        PriceTable.load(write_file("p3.json", "{not json"))
    with pytest.raises(DataError, match=r"p4\.yaml, column 'assumed_output_tokens': .*non-negative integer, got -1"):
        PriceTable.load(write_file("p4.yaml", "assumed_output_tokens: -1\nmodels:\n  m: {input: 1}\n"))


def test_price_table_without_assumed_output_tokens(routellm_dir: Path, write_file) -> None:
    """MMLU has no response text: an output price then needs assumed_output_tokens (never a silent zero)."""
    prices = write_file("prices.yaml", "models:\n  m1: {input: 1.0, output: 2.0}\n  m2: {input: 1.0}\n")
    with pytest.raises(DataError, match=r"prices\.yaml, column 'assumed_output_tokens': model 'm1' has an output "
                                        r"price but the data has no response text"):
        callwise.load(routellm_dir, prices=prices)


def test_routellm_bad_correctness_value(tmp_path: Path, write_file) -> None:
    write_file("r/mmlu/responses/mmlu_y.csv", "prompt,m1,m2\nQ1,True,False\nQ2,maybe,True\n")
    prices = PriceTable.from_dict({"models": {"m1": {"per_call": 1}, "m2": {"per_call": 1}}})
    with pytest.raises(DataError, match=r"mmlu_y\.csv, row 2, column 'm1': expected True/False correctness, got 'maybe'"):
        callwise.load(tmp_path / "r", prices=prices)


# -- other per-row problems -------------------------------------------------------------------


def test_empty_prompt_id(write_file) -> None:
    path = write_file("o.csv", HEADER + "p1,a,1,0.1\n,a,1,0.1\n")
    with pytest.raises(DataError, match=r"o\.csv, row 2, column 'prompt_id': empty prompt_id"):
        callwise.load(path)


def test_bad_split_value(write_file) -> None:
    path = write_file("o.csv", HEADER.strip() + ",split\np1,a,1,0.1,train\np2,a,1,0.1,validation\n")
    with pytest.raises(DataError, match=r"o\.csv, row 2, column 'split': expected 'train' or 'test', got 'validation'"):
        callwise.load(path)


def test_bad_sample_value(write_file) -> None:
    path = write_file("o.csv", "prompt_id,model,sample,quality,cost\np1,a,0,1,0.1\np1,a,1.5,1,0.1\n")
    with pytest.raises(DataError, match=r"o\.csv, row 2, column 'sample': expected a non-negative integer, got 1\.5"):
        callwise.load(path)


def test_errors_are_callwise_errors() -> None:
    assert issubclass(FormatError, DataError) and issubclass(DataError, CallwiseError)
    assert issubclass(DataError, ValueError)


# -- the CLI: error line, exit code 2, nothing written ----------------------------------------


@pytest.mark.parametrize("name, content, expect", [
    ("costs.csv", HEADER + "p1,a,1,0.1\np2,a,1,-1\n", r"row 2, column 'cost': negative cost"),
    ("plain.csv.gz", HEADER + "p1,a,1,0.1\n", r"named \.gz but is not gzip"),
    ("inc.csv", INCOMPLETE, r"lack an outcome.*--drop-incomplete"),
    ("outcomes.txt", HEADER + "p1,a,1,0.1\n", r"unknown format"),
    ("empty.csv", "", r"empty file"),
])
def test_cli_convert_bad_input(tmp_path: Path, write_file, name: str, content: str, expect: str) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    bad = write_file(name, content, gz=False)
    out = tmp_path / "out" / "table.parquet"
    res = CliRunner().invoke(app, ["convert", str(bad), str(out)])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ")
    assert name in res.output and re.search(expect, res.output, re.S)
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file either


def test_cli_convert_pickle_needs_trust(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    src = tmp_path / "rb.pkl"
    _wide().to_pickle(src)
    out = tmp_path / "rb.parquet"
    res = CliRunner().invoke(app, ["convert", str(src), str(out)])
    assert res.exit_code == 2 and "error:" in res.output and "rb.pkl" in res.output
    assert "--trust-pickle" in res.output and not out.exists()
    res = CliRunner().invoke(app, ["convert", str(src), str(out), "--trust-pickle"])
    assert res.exit_code == 0, res.output
    assert out.exists()


def test_cli_convert_keeps_an_existing_output_on_error(tmp_path: Path, write_file) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    out = tmp_path / "old.parquet"
    out.write_bytes(b"previous contents")
    bad = write_file("q.csv", HEADER + "p1,a,7,0.1\n")
    res = CliRunner().invoke(app, ["convert", str(bad), str(out)])
    assert res.exit_code == 2 and "q.csv, row 1, column 'quality'" in res.output
    assert out.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.parquet", "q.csv"]


def test_cli_convert_output_must_be_parquet(tmp_path: Path, write_file, long_csv_text: str) -> None:
    from typer.testing import CliRunner

    from callwise.cli import app

    src = write_file("ok.csv", long_csv_text)
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "out.csv")])
    assert res.exit_code == 2 and "out.csv: the output must be a .parquet file" in res.output
    assert not (tmp_path / "out.csv").exists()


def test_folder_mixing_jsonl_and_csv_names_each_files_own_unit(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("prompt_id,model,quality,cost\n1,m,1,0.1\n")
    (tmp_path / "b.jsonl").write_text('\n{"prompt_id": "2", "model": "m", "quality": 1, "cost": -1}\n')
    with pytest.raises(DataError) as ei:
        callwise.load(tmp_path)
    msg = str(ei.value)
    assert "b.jsonl, line 2, column 'cost'" in msg and "negative cost" in msg
