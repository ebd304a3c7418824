"""report.html in a real headless browser: every command that writes results.json writes a page that
renders without console errors, whose plotly figures draw, whose tables hold results.json's numbers,
and whose plots answer a hover and a legend click. A screenshot of each page is saved under the
test's temporary folder.

Drives Debian's Chromium through chromedriver with selenium; skips where they are absent, unless the
environment variable ``CI`` is set (``.ci/run`` installs them and sets it): in CI a missing browser fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from callwise.cli import _finite, app
from callwise.core.files import json_default
from callwise.evaluation.html_report import (
    build_report,
    report_kind,
    write_report,
    write_report_from_results,
)

runner = CliRunner()
IN_CI = bool(os.environ.get("CI"))
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
NUMBER = re.compile(r"^[+\-−]?\$?\d[\d,]*(\.\d+)?([eE][+\-]?\d+)?$")
#: What a cell shows for a null of results.json: missing, undefined (AIQ without a cost range), never reached.
NULL_TEXTS = ("—", "n/a", "never")
#: The warning of callwise.cli._write_outputs when the page fails: non-fatal for users, a failure here.
NOT_WRITTEN = "report.html not written"


def _absent(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why}; CI must run the browser tests (.ci/run installs chromium and chromium-driver)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Any:
    """One headless Chromium for the module (browser console logs kept)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _absent("selenium is not installed (pip install -e '.[test]')")
    if CHROMIUM is None or DRIVER is None:
        _absent(f"Chromium ({CHROMIUM}) or chromedriver ({DRIVER}) is absent (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
              "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)  # no Selenium Manager download
    driver.set_page_load_timeout(60)
    # the page must work offline: the browser has no network
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                  "downloadThroughput": 0, "uploadThroughput": 0})
    yield driver
    driver.quit()


# -- the commands, on small inputs (a few seconds each) --------------------------------------------


def _sample() -> Path:
    from callwise.io import sample_path

    return sample_path()


def _bench(out: Path, shared: Callable[[], Path]) -> list[str]:
    return ["bench", "--out", str(out), "--bootstrap", "20", "--policy", "random-mix", "--policy", "knn",
            "--policy", "cascade-judge"]


def _cascade(out: Path, shared: Callable[[], Path]) -> list[str]:
    return ["cascade", str(shared() / "rational-cascades"), "--small", "gpt-4o-mini", "--large", "gpt-4o", "--chain",
            "--task", "triviaqa-qwen_oai", "--budgets", "10", "--orders", "1", "--warmup", "5", "--out", str(out)]


def _scale(out: Path, shared: Callable[[], Path]) -> list[str]:
    data = shared() / "mot-cascade-samples" / "llama2_13B_result" / "date_cot1.json.gz"
    return ["scale", str(data), "--model", "llama-2-13b", "--k-max", "50", "--reps", "50", "--out", str(out)]


def _aggregate(out: Path, shared: Callable[[], Path]) -> list[str]:
    data = shared() / "mot-cascade-samples" / "llama2_13B_result" / "date_cot1.json.gz"
    return ["aggregate", str(data), "--metric", "mae", "--metric", "em", "--n", "4", "--reps", "20", "--out", str(out)]


def _allocate(out: Path, shared: Callable[[], Path]) -> list[str]:
    spec = out.parent / "ensemble.yaml"
    spec.write_text("builtin: ensemble-vote\nslots: 3\nnormalise: choice\n")
    return ["allocate", str(spec), str(shared() / "rational-cascades"), "--task", "mmlu-llama", "--budget-evals", "20",
            "--budget", "0.0003", "--out", str(out)]


def _plan(out: Path, shared: Callable[[], Path]) -> list[str]:
    return ["plan", str(_sample()), "--budget", "0.002", "--folds", "3", "--candidate", "single", "--candidate", "zero",
            "--candidate", "cascade", "--bootstrap", "50", "--out", str(out)]


# Paths every report of the kind must show in its tables (a table that lost a row or a column fails).
def _bench_paths(r: dict) -> list[list]:
    out = []
    for t, task in r["tasks"].items():
        out += [["tasks", t, "n_test"]]
        for p, e in task["policies"].items():
            out += [["tasks", t, "policies", p, "aiq", "paper"], ["tasks", t, "policies", p, "aiq", "routerbench-code"],
                    ["tasks", t, "policies", p, "gap_closed"]]
            if e.get("aiq_ci", {}).get("paper"):  # none with --bootstrap 0
                out += [["tasks", t, "policies", p, "aiq_ci", "paper", 0]]
    return out + [["overall", "policies", p, "aiq", "paper"] for p in r["overall"]["policies"]]


def _cascade_paths(r: dict) -> list[list]:
    out = [["summary", "mean_auc", m] for m in r["summary"]["mean_auc"]]
    for key in ("pairs", "chains"):
        for i, item in enumerate(r[key]):
            out += [[key, i, "methods", m, "auc"] for m in item["methods"]]
            out += [[key, i, "model_accuracy", m] for m in item["models"]]
    return out


def _scale_paths(r: dict) -> list[list]:
    out = [["summary", "empirical", "best_k"], ["summary", "predicted", "best_k"], ["summary", "cost_per_call"]]
    return out + [["curves", c, "accuracy", i] for c, v in r["curves"].items() for i in range(len(v["accuracy"]))]


def _aggregate_paths(r: dict) -> list[list]:
    return [["rows", i, k] for i in range(len(r["rows"])) for k in ("value", "ci_low", "ci_high", "prompts")]


def _allocate_paths(r: dict) -> list[list]:
    out = [["chosen", "test", "quality"], ["chosen", "train", "cost"]]
    out += [["baselines", i, "test", "quality"] for i in range(len(r["baselines"]))]
    return out + [["pareto", i, "test", "cost"] for i in range(len(r["pareto"]))]


def _plan_paths(r: dict) -> list[list]:
    out = [["overall", "quality"], ["overall", "cost"]]
    for t, task in r["tasks"].items():
        out += [["tasks", t, "recommendation", "test", "quality"]]
        out += [["tasks", t, "best_by_family_on_test", f, "test", "quality"] for f in task["best_by_family_on_test"]]
    return out


COMMANDS = {
    "bench": (_bench, _bench_paths), "cascade": (_cascade, _cascade_paths), "scale": (_scale, _scale_paths),
    "aggregate": (_aggregate, _aggregate_paths), "allocate": (_allocate, _allocate_paths),
    "plan": (_plan, _plan_paths),
}


# -- checks ----------------------------------------------------------------------------------------


def _resolve(obj: Any, path: list) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _shown(text: str) -> tuple[float, float]:
    """The number a cell shows and half a unit of its last digit (the rounding it allows)."""
    t = text.strip().replace("−", "-").replace("$", "").replace(",", "")
    m = re.fullmatch(r"([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?", t)
    assert m, f"not a number: {text!r}"
    decimals = len(m.group(3) or "")
    exp = int(m.group(4) or 0)
    return float(t), 0.5 * 10.0 ** (exp - decimals)


def _check_tables(driver: Any, results: dict, must: list[list]) -> int:
    """Every tagged number of the page equals results.json's at its path, and reads as it; every
    numeric cell is tagged; the paths in ``must`` are all shown. Returns the numbers checked."""
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('table [data-path]'))"
        ".map(e => [e.dataset.path, e.dataset.value, e.dataset.scale || '1', e.textContent]);")
    assert cells, "no numbers in the tables"
    seen = set()
    for path_s, value_s, scale_s, text in cells:
        path = json.loads(path_s)
        seen.add(json.dumps(path))
        expected = _resolve(results, path)
        assert json.loads(value_s) == expected, (path, value_s, expected)
        if expected is None:
            assert text.strip() in NULL_TEXTS, (path, text)
            continue
        shown, tol = _shown(text)
        want = expected * float(scale_s)
        assert math.isclose(shown, want, rel_tol=1e-12, abs_tol=tol * (1 + 1e-9)), (path, text, expected, scale_s)
    untagged = driver.execute_script(
        "return Array.from(document.querySelectorAll('table td')).filter(td => !td.querySelector('[data-path]'))"
        ".map(td => td.textContent.trim());")
    bare = [t for t in untagged if NUMBER.match(t)]
    assert not bare, f"numbers in the tables that are not read from results.json: {bare[:10]}"
    missing = [p for p in must if json.dumps(p) not in seen]
    assert not missing, f"results.json numbers missing from the tables: {missing[:10]}"
    return len(cells)


def _wait_for_plots(driver: Any, n: int, timeout: float = 60.0) -> list[int]:
    """Wait until ``n`` plotly figures have drawn; their trace counts."""
    end = time.time() + timeout
    counts: list[int] = []
    while time.time() < end:
        counts = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".filter(g => g.querySelector('.main-svg') && g._fullLayout).map(g => (g.data || []).length);")
        if len(counts) >= n:
            return counts
        time.sleep(0.2)
    raise AssertionError(f"{len(counts)} of {n} plotly figures rendered in {timeout:g} s")


def _hover_a_point(driver: Any, group: str | None = None) -> str:
    """Move the mouse onto a marker of the first figure (the middle one of the markers of legend
    group ``group`` when given); the hover box's text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    fig = driver.find_element(By.CSS_SELECTOR, ".js-plotly-plot")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", fig)
    if group is not None:
        i = driver.execute_script("return arguments[0].data.findIndex(t => t.legendgroup === arguments[1] && "
                                  "t.mode === 'markers');", fig, group)
        assert i >= 0, f"no markers of {group!r} in the first figure"
        trace = fig.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")[i]
        points = trace.find_elements(By.CSS_SELECTOR, ".points path")
        points = points[len(points) // 2:]
    else:
        points = fig.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace .points path, .barlayer .point path")
    points = [p for p in points if p.is_displayed() and p.size["width"] > 0]
    assert points, "no markers or bars drawn in the first figure"
    text = ""
    for p in points[:15]:
        ActionChains(driver).move_to_element(p).perform()
        time.sleep(0.4)
        text = driver.execute_script(
            "return Array.from(arguments[0].querySelectorAll('.hoverlayer .hovertext'))"
            ".map(h => h.textContent).join(' | ');", fig)
        if text:
            break
    return text


def _toggle_first_legend_entry(driver: Any) -> list[Any]:
    """Click the first legend entry of the first figure; the visibility of its traces afterwards."""
    from selenium.webdriver.common.by import By

    fig = driver.find_element(By.CSS_SELECTOR, ".js-plotly-plot")
    entry = fig.find_element(By.CSS_SELECTOR, ".legend .traces .legendtoggle")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));"
                          "arguments[0].dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));", entry)
    time.sleep(0.8)  # plotly waits for a possible double click
    return driver.execute_script("return arguments[0].data.map(t => t.visible);", fig)


def _screenshot(driver: Any, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(1400, min(int(height) + 40, 15000))
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def _written(res: Any, out: Path) -> tuple[dict, Path]:
    """The results and the page a command wrote: it must have written report.html (the CLI only warns
    when the page fails, so users keep their results; here that warning is a failure)."""
    assert res.exit_code == 0, res.output
    assert NOT_WRITTEN not in res.output, res.output[-2000:]
    page = out / "report.html"
    assert page.is_file(), f"no report.html in {out}: {sorted(p.name for p in out.iterdir())}"
    return json.loads((out / "results.json").read_text()), page


def _render(browser: Any, page: Path, results: dict, must: list[list], shot: Path) -> str:
    """Open ``page`` offline: its figures draw, its tables hold results.json's numbers, a screenshot is
    saved at ``shot``. Returns the page's text."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=[\"']?(https?:)?//", text), "the page loads something"
    assert text.count("plotly.js v") <= 2 and page.stat().st_size < 9_000_000  # plotly.js inline, once
    browser.get_log("browser")  # drop what came before
    browser.get(page.resolve().as_uri())
    n_figs = len(re.findall(r'class="plotly-graph-div"', text))
    assert n_figs >= 1
    traces = _wait_for_plots(browser, n_figs)
    assert all(t > 0 for t in traces), traces
    n = _check_tables(browser, results, must)
    assert n > 5
    _screenshot(browser, shot)
    assert shot.stat().st_size > 20_000
    return text


def _no_console_errors(browser: Any) -> None:
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe


def _cells(browser: Any, table: str) -> list[list[str]]:
    """The text of each body row of the table named ``table`` (its data-table attribute)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(`table[data-table='${arguments[0]}'] tbody tr`))"
        ".map(tr => Array.from(tr.cells).map(td => td.textContent.trim()));", table)


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_each_command_writes_a_report_the_browser_renders(kind: str, browser: Any, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    args, must = COMMANDS[kind]
    out = tmp_path / "out"
    res = runner.invoke(app, args(out, lambda: request.getfixturevalue("shared_data")))
    results, page = _written(res, out)
    assert report_kind(results) == kind
    assert not list(out.glob(".callwise-*"))
    _render(browser, page, results, must(results), tmp_path / f"{kind}.png")
    hover = _hover_a_point(browser, "knn" if kind == "bench" else None)
    assert hover and any(w in hover for w in ("quality", "accuracy", "value")), hover
    if kind == "bench":  # a policy's point: its name, settings, cost and quality
        assert all(w in hover for w in ("policy: knn", "settings:", "cost: $", "quality: 0.")), hover
        visible = _toggle_first_legend_entry(browser)
        assert "legendonly" in visible, visible
    _no_console_errors(browser)


# -- payloads with nulls: no bootstrap, costs never reached, no cost range -----------------------------


def test_bench_without_bootstrap_writes_its_report(browser: Any, tmp_path: Path) -> None:
    """--bootstrap 0: no AIQ intervals in results.json (aiq_ci is {}), a dash in the page."""
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", "--out", str(out), "--bootstrap", "0", "--policy", "knn", "--policy",
                              "cascade-judge"])
    results, page = _written(res, out)
    assert all(e["aiq_ci"] == {} for t in results["tasks"].values() for e in t["policies"].values())
    _render(browser, page, results, _bench_paths(results), tmp_path / "bench-no-bootstrap.png")
    rows = _cells(browser, "tasks/gsm8k/policies")
    assert rows and all(r[3] == "—" for r in rows), rows  # the CI column
    _no_console_errors(browser)


def _bench_payload(table: Any, n_boot: int = 0) -> dict:
    """A bench results payload as results.json holds it (NaN and infinities as null)."""
    from callwise.core.split import split_outcomes
    from callwise.evaluation.bench import bench

    train, test, info = split_outcomes(table, fraction=0.7, seed=0)
    r = bench(train, test, policies=["knn", "random-mix"], n_boot=n_boot, split_info=info)
    return json.loads(json.dumps(_finite(r.to_dict()), allow_nan=False, default=json_default))


def test_a_bench_payload_with_null_costs_renders(browser: Any, tmp_path: Path) -> None:
    """Nulls where results.json has no finite number (an overall curve that could not be pooled, as
    cascade-judge's on routerbench-subset; a hull vertex at an infinite cost; a target never reached)
    are left off the plots and read "—" or "never" in the tables."""
    import pandas as pd
    from benchkit import priced_rows

    from callwise import OutcomeTable

    payload = _bench_payload(OutcomeTable.from_frame(pd.DataFrame(priced_rows("a") + priced_rows("b", seed=3))))
    knn = payload["overall"]["policies"]["knn"]
    knn["points"], knn["hull"] = [], [[None, None]]
    a = payload["tasks"]["a"]["policies"]
    a["knn"]["hull"].append([None, 1.0])
    a["knn"]["points"].append([None, None])
    a["random-mix"]["cost_to_95pct_best_model"] = None
    a["random-mix"]["quality_at_best_model_cost"] = None
    a["zero"]["hull"].insert(0, [None, 0.1])
    page = write_report(payload, tmp_path / "report.html")
    _render(browser, page, payload, _bench_paths(payload), tmp_path / "bench-null-costs.png")
    overall = {r[0]: r for r in _cells(browser, "overall/policies")}
    assert overall["knn"][5:7] == ["—", "—"], overall["knn"]  # top quality, cost at top
    rows = {r[0]: r for r in _cells(browser, "tasks/a/policies")}
    assert rows["random-mix"][7:9] == ["never", "—"], rows["random-mix"]
    want = a["knn"]["hull"][-2]  # its top vertex is the null one: the top shown is the last finite one
    assert rows["knn"][5] == f"{want[1]:.4f}" and rows["knn"][6].replace("$", "") == f"{want[0] * 1000:.4g}", rows["knn"]
    # the plots hold no null coordinate
    xs = browser.execute_script("return Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                ".flatMap(g => g._fullData.flatMap(t => Array.from(t.x || [], v => (v === null || v === undefined) ? 'missing' : v)));")
    assert len(xs) > 20 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs), xs[:20]
    _no_console_errors(browser)


def test_an_equal_cost_bench_report_shows_n_a(browser: Any, tmp_path: Path) -> None:
    """A task where every model costs the same has no AIQ: n/a in its table, the reason in a note, the
    overall AIQ over the other task, which the page says."""
    from benchkit import equal_cost_table

    from callwise.evaluation.bench import AIQ_UNDEFINED

    payload = _bench_payload(equal_cost_table(mixed=True), n_boot=5)
    page = write_report(payload, tmp_path / "report.html")
    text = _render(browser, page, payload, _bench_paths(payload), tmp_path / "bench-equal-cost.png")
    assert f"AIQ and gap closed n/a: {AIQ_UNDEFINED}." in text
    assert "The overall AIQ leaves out 2 task(s) where all models cost the same" in text
    for task in ("same-price", "fixed-price"):
        rows = _cells(browser, f"tasks/{task}/policies")
        assert rows and all(r[2:5] == ["n/a"] * 3 and r[5] != "—" for r in rows), rows
        assert all(r[-1] == "n/a" for r in rows), rows
    rows = _cells(browser, "tasks/priced/policies")
    assert all(NUMBER.match(r[2]) for r in rows), rows
    legend = browser.execute_script("return Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                    ".flatMap(g => g.data.map(t => t.name || ''));")
    assert any("AIQ n/a" in x for x in legend) and not any("AIQ nan" in x or "AIQ None" in x for x in legend)
    _no_console_errors(browser)


# -- the Python API, without a browser ---------------------------------------------------------------


def test_python_api_round_trip(tmp_path: Path) -> None:
    payload = {"command": "aggregate", "version": "0", "created": "now", "data": "d", "metrics": ["mae"], "n": 2,
               "draws": "first", "reps": 1, "seed": 0, "level": 0.95, "notes": [],
               "rows": [{"task": "t", "model": "m", "kind": "number", "metric": "mae", "rule": r, "matched": r == "median",
                         "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "diff_vs_matched": 0.0, "diff_ci_low": 0.0,
                         "diff_ci_high": 0.0, "prompts": 3, "left_out": 0, "best": r == "median"}
                        for r, v in (("first", 1.5), ("median", 1.25))]}
    (tmp_path / "results.json").write_text(json.dumps(payload))
    page = write_report_from_results(tmp_path / "results.json")
    assert page == tmp_path / "report.html"
    text = page.read_text()
    assert 'data-path="[&quot;rows&quot;, 1, &quot;value&quot;]" data-value="1.25"' in text
    assert "lower is better" in text
    assert write_report(payload, tmp_path / "again.html", title="mine").read_text().count("<title>mine</title>") == 1
    assert build_report(payload, kind="aggregate") == build_report(payload)
    with pytest.raises(ValueError, match="not a callwise results payload"):
        report_kind({"x": 1})
    with pytest.raises(ValueError, match="unknown report kind"):
        build_report(payload, kind="nope")


def test_a_fault_in_the_page_keeps_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """report.html only shows results.json: if writing it fails, the command still writes the rest."""
    import callwise.evaluation.html_report as hr

    def broken(payload: Any, path: Path, kind: str | None = None, title: str | None = None) -> Path:
        raise RuntimeError("boom")

    monkeypatch.setattr(hr, "write_report", broken)
    monkeypatch.delenv("CALLWISE_STRICT_REPORT", raising=False)  # as a user runs it: a warning, not a failure
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", "--out", str(out), "--bootstrap", "0", "--policy", "knn"])
    assert res.exit_code == 0, res.output
    assert "report.html not written (RuntimeError: boom)" in res.output
    assert (out / "results.json").is_file() and not (out / "report.html").exists()
    assert {p.name for p in out.glob("*.png")} == {"gsm8k.png", "mt_bench.png"}

    # the tests run strictly (tests/evaluation/conftest.py): there the same fault fails the command
    monkeypatch.setenv("CALLWISE_STRICT_REPORT", "1")
    res = runner.invoke(app, ["bench", "--out", str(tmp_path / "strict"), "--bootstrap", "0", "--policy", "knn"])
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError) and NOT_WRITTEN not in res.output
    assert not (tmp_path / "strict" / "report.html").exists()
