"""``load(path, columns=...)``: only the optional columns a command needs.

For every format, loading with ``columns`` gives the table that loading everything and then
``project(columns)`` gives, with the same fingerprint; long Parquet and CSV files never read the
other optional columns at all; prices still see the token columns they need; bad names, and mapping
typos in columns that are not read, are clear errors.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import callwise
from callwise.cli import app
from callwise.core.errors import DataError
from callwise.core.outcomes import CORE_COLUMNS, OPTIONAL_COLUMNS

REPO = Path(__file__).resolve().parents[2]
CHOICES = [[], ["prompt"], ["answer", "confidence", "latency"], list(OPTIONAL_COLUMNS)]


@pytest.fixture(scope="module")
def long_files(tmp_path_factory, shared_data: Path) -> dict[str, Path]:
    """One rational-cascades task (prompts, answers, latency, tokens, confidence) as Parquet, CSV and JSONL."""
    t = callwise.load(shared_data / "rational-cascades").for_task("gsm8k-llama")
    d = tmp_path_factory.mktemp("long")
    frame = t.frame.astype({c: object for c in ("prompt_id", "task", "prompt", "model", "answer", "split")})
    out = {"parquet": d / "t.parquet", "csv": d / "t.csv", "jsonl": d / "t.jsonl"}
    t.to_parquet(out["parquet"])
    frame.to_csv(out["csv"], index=False)
    frame.to_json(out["jsonl"], orient="records", lines=True)
    return out


SHARED = [("rational-cascades", {}), ("routerbench-subset", {}), ("mot-cascade-samples", {"drop_incomplete": True}),
          ("routerdc-7model", {"prices": REPO / "docs" / "examples" / "routerdc_prices.yaml"}),
          ("llmrouter-dcrouter", {})]


@pytest.mark.parametrize("name, kwargs", SHARED, ids=[s[0] for s in SHARED])
def test_every_format_loads_what_project_keeps(shared_data: Path, name: str, kwargs: dict) -> None:
    whole = callwise.load(shared_data / name, **kwargs)
    for cols in CHOICES:
        part = callwise.load(shared_data / name, columns=cols, **kwargs)
        pd.testing.assert_frame_equal(part.frame, whole.project(cols).frame)
        assert part.fingerprint() == whole.fingerprint() and part.columns_read == tuple(sorted(cols))
        assert part.column_fingerprints() == {c: h for c, h in whole.column_fingerprints().items() if c in cols}


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl"])
def test_long_tables_load_what_project_keeps(long_files: dict[str, Path], kind: str) -> None:
    whole = callwise.load(long_files[kind])
    assert set(OPTIONAL_COLUMNS) - {"reference", "keep"} <= set(whole.frame.columns)
    for cols in CHOICES:
        part = callwise.load(long_files[kind], columns=cols)
        pd.testing.assert_frame_equal(part.frame, whole.project(cols).frame)
        assert set(part.frame.columns) == set(CORE_COLUMNS) | (set(cols) & set(whole.frame.columns))
        assert part.fingerprint() == whole.fingerprint()


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_unread_columns_are_never_parsed(long_files: dict[str, Path], kind: str, monkeypatch) -> None:
    """The projection happens in the reader (pyarrow's columns=, pandas' usecols), not after it."""
    seen: list[list[str]] = []
    if kind == "parquet":
        import pyarrow.parquet as pq

        real = pq.read_table

        def spy(*a, **kw):
            got = real(*a, **kw)
            seen.append(got.column_names)
            return got

        monkeypatch.setattr(pq, "read_table", spy)
    else:
        real = pd.read_csv

        def spy(*a, **kw):
            got = real(*a, **kw)
            if kw.get("nrows") != 0:
                seen.append(list(got.columns))
            return got

        monkeypatch.setattr(pd, "read_csv", spy)
    callwise.load(long_files[kind], columns=["latency"])
    assert seen and "prompt" not in seen[-1] and "answer" not in seen[-1] and "latency" in seen[-1]
    assert set(CORE_COLUMNS) - {"split"} <= set(seen[-1]) | {"sample"}


def test_a_mapped_column_is_read_under_its_own_name(write_file) -> None:
    path = write_file("m.csv", "id,model,ok,cost,response,prompt\np1,a,1,0.1,four,2+2\np1,b,0,0.2,five,2+2\n")
    mapping = {"prompt_id": "id", "quality": "ok", "answer": "response"}
    t = callwise.load(path, mapping=mapping, columns=["answer"])
    assert t.frame["answer"].tolist() == ["four", "five"] and "prompt" not in t.frame.columns
    t = callwise.load(path, mapping=mapping, columns=[])
    assert "answer" not in t.frame.columns
    with pytest.raises(DataError, match="mapped column 'reply' is not in the file"):  # a typo in an unread column
        callwise.load(path, mapping={**mapping, "answer": "reply"}, columns=[])


def test_prices_still_read_the_token_columns(write_file) -> None:
    path = write_file("t.csv", "prompt_id,model,quality,input_tokens,answer\np1,a,1,10,abcdefgh\np1,b,0,10,abcd\n")
    prices = write_file("p.yaml", "models:\n  a: {input: 1.0, output: 2.0}\n  b: {input: 3.0, output: 4.0}\n")
    whole, part = callwise.load(path, prices=prices), callwise.load(path, prices=prices, columns=[])
    assert part.frame["cost"].tolist() == whole.frame["cost"].tolist()
    assert not set(OPTIONAL_COLUMNS) & set(part.frame.columns) and part.meta["notes"] == whole.meta["notes"]


@pytest.mark.parametrize("cols, message", [
    (["answers"], r"\['answers'\] are not optional columns \(\['answers'\] not a column of the outcome table\)"),
    (["quality", "prompt"], r"\['quality'\] are not optional columns \(\['quality'\] always read"),
])
def test_a_bad_column_name_is_a_clear_error(long_files: dict[str, Path], cols, message) -> None:
    with pytest.raises(DataError, match=message):
        callwise.load(long_files["parquet"], columns=cols)
    with pytest.raises(DataError, match=message):
        callwise.load(long_files["parquet"]).project(cols)


def test_bench_and_plan_read_only_their_policies_columns(long_files: dict[str, Path], tmp_path: Path) -> None:
    """The CLI loads what bench_columns / plan_columns name, and says so in results.json; a bench of
    fixed policies on the projected table equals the API's on the whole one."""
    import json

    r = CliRunner().invoke(app, ["bench", str(long_files["parquet"]), "--policy", "random-mix", "--bootstrap", "5",
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "b" / "results.json").read_text())
    assert doc["data"]["columns_read"] == ["latency"] and list(doc["data"]["column_fingerprints"]) == ["latency"]
    t = callwise.load(long_files["parquet"])
    train, test, info = callwise.split_outcomes(t, seed=0)
    api = callwise.bench(train, test, policies=["random-mix"], n_boot=5, split_info=info).to_dict()
    assert doc["data"]["fingerprint"] == api["data"]["fingerprint"]
    assert doc["tasks"] == json.loads(json.dumps(api["tasks"], default=float))
    r = CliRunner().invoke(app, ["plan", str(long_files["parquet"]), "--budget", "0.001", "--candidate", "single,zero",
                                 "--bootstrap", "5", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "p" / "results.json").read_text())
    assert doc["data"]["columns_read"] == ["answer", "confidence"]  # they decide which candidates exist
    assert doc["data"]["fingerprint"] == t.fingerprint() and set(doc["data"]["column_fingerprints"]) == {
        "answer", "confidence"}


def test_fit_reads_only_its_policys_columns(long_files: dict[str, Path], tmp_path: Path) -> None:
    """callwise fit loads the policy's declared columns; the saved policy and its held-out report are
    those of a fit on the whole table."""
    import json

    import numpy as np

    from callwise.evaluation.fit import fit_policy

    out = tmp_path / "lin.json"
    r = CliRunner().invoke(app, ["fit", str(long_files["parquet"]), "--policy", "linear", "--budget", "0.0005",
                                 "--save", str(out), "--report", str(tmp_path / "rep.json")])
    assert r.exit_code == 0, r.output
    whole = fit_policy(callwise.load(long_files["parquet"]), "linear", budget=0.0005)
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["test"]["cost"] == pytest.approx(whole.test["cost"]) and rep["test"]["quality"] == pytest.approx(
        whole.test["quality"])
    assert json.loads(out.read_text())["data"]["fingerprint"] == whole.data["fingerprint"]
    prompts = callwise.load(long_files["parquet"]).dense().prompts[:50]
    np.testing.assert_allclose(callwise.load_policy(out).predict(prompts)[0], whole.policy.predict(prompts)[0])
    r = CliRunner().invoke(app, ["fit", str(long_files["parquet"]), "--policy", "nope", "--save", str(out)])
    assert r.exit_code != 0 and "no policy named 'nope'" in r.output
