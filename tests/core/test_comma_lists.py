"""Comma lists wherever a list is expected: policy settings (``--param models=a,b``) and the CLI's
repeatable options (``--task a,b``). The README's live recipe used to split ``models=small,large``
into characters."""

from __future__ import annotations

import inspect
import json

import pytest
from typer.testing import CliRunner

import callwise  # noqa: F401 - registers every family's policies
from callwise.cli import app
from callwise.core.policy import _takes_list, coerce_params, make, registry


def _list_settings():
    for name, cls in sorted(registry().items()):
        for k, p in inspect.signature(cls.__init__).parameters.items():
            if _takes_list(p.annotation):
                yield name, cls, k, p.annotation


@pytest.mark.parametrize("name, cls, setting, annotation", list(_list_settings()),
                         ids=[f"{n}.{k}" for n, _, k, _ in _list_settings()])
def test_every_list_setting_takes_a_comma_list(name, cls, setting, annotation) -> None:
    numbers = "float" in str(annotation) or "int" in str(annotation)
    given, want = ("0.25, 0.75", [0.25, 0.75]) if numbers else ("gpt-4o-mini, gpt-4o", ["gpt-4o-mini", "gpt-4o"])
    assert coerce_params(cls, {setting: given})[setting] == want
    assert coerce_params(cls, {setting: want})[setting] == want  # a real (or JSON) list passes through


def test_strings_that_are_not_lists_stay_strings() -> None:
    cls = registry()["confidence-cascade"]
    assert coerce_params(cls, {"signal": "agreement"})["signal"] == "agreement"
    assert make("confidence-cascade", models="1,gpt-4o").models == ["1", "gpt-4o"]  # model names stay text
    assert make("random-mix", models="a,b", weights="0.3,0.7").weights == [0.3, 0.7]


def test_readme_live_recipe_fits_with_a_comma_list(shared_data, tmp_path) -> None:
    """``callwise fit ... --policy confidence-cascade --param models=small,large`` (the README's recipe)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from livekit import LARGE, SMALL, task_table

    data = tmp_path / "train.parquet"
    task_table(shared_data).to_parquet(data)
    r = CliRunner().invoke(app, ["fit", str(data), "--policy", "confidence-cascade",
                                 "--param", f"models={SMALL},{LARGE}", "--budget", "0.0003",
                                 "--save", str(tmp_path / "casc.json")])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "casc.json").read_text())
    assert saved["settings"]["models"] == [SMALL, LARGE], saved["settings"]


def test_repeatable_options_take_comma_lists(tmp_path) -> None:
    runner = CliRunner()
    args = ["bench", "--policy", "threshold", "--bootstrap", "0"]
    one = runner.invoke(app, [*args, "--policy", "random-mix", "--out", str(tmp_path / "a")])
    two = runner.invoke(app, ["bench", "--policy", "threshold,random-mix", "--bootstrap", "0", "--out", str(tmp_path / "b")])
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    names = lambda res: sorted(next(iter(res["tasks"].values()))["policies"])  # noqa: E731
    assert names(a) == names(b) and any("random-mix" in n for n in names(a))
