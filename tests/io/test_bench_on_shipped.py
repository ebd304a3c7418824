"""The two datasets added last (RouterDC's 7 models, LLMRouter's dcrouter) load and bench: the CLI on
a slice of each, every task gets its single models, zero router, oracle and a router, and the
oracle is at least as good as every single model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import callwise
from callwise.cli import app

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name, prices, tasks", [
    ("routerdc-7model", REPO / "docs" / "examples" / "routerdc_prices.yaml", ["gsm8k", "mmlu"]),
    ("llmrouter-dcrouter", None, ["dcrouter"]),
])
def test_bench_runs_on_the_dataset(shared_data: Path, tmp_path: Path, name: str, prices, tasks) -> None:
    t = callwise.load(shared_data / name, prices=prices)
    assert set(tasks) <= set(t.tasks())
    # 240 prompts per task, keeping the data's own split where it has one
    sl = t.for_prompts([p for task in tasks for p in t.for_task(task).prompt_ids()[:240]])
    data = tmp_path / "slice.parquet"
    sl.to_parquet(data)
    r = CliRunner().invoke(app, ["bench", str(data), "--policy", "knn", "--policy", "threshold", "--bootstrap", "10",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(res["tasks"]) == sorted(tasks)
    for task, tr in res["tasks"].items():
        entries = tr["policies"]
        singles = [e for e in entries.values() if e["family"] == "single"]
        assert len(singles) == len(t.models())
        assert {"zero", "oracle"} <= set(entries) and any(k.endswith("knn") or k == "knn" for k in entries)
        top = lambda e: max(p[1] for p in e["points"])  # noqa: E731
        assert top(entries["oracle"]) >= max(top(e) for e in singles) - 1e-12
    assert (tmp_path / "out" / "report.html").exists()
