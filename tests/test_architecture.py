"""The package's layout holds: no import cycles, families stacked in one order, each reached through its package.

Read from the source (every ``import`` statement, at module level or inside a function), so an
import added in a function that would close a cycle fails here, not at some caller's run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import callwise

SRC = Path(callwise.__file__).resolve().parent
#: Each package and the packages it may import. Families sit over core and io; a family may use
#: a lower family through that family's package (cascades' learned baselines use routing's
#: featurisers; aggregation's MetricAware makes Vote's calls; pipelines vote and aggregate).
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "routing": {"core", "io"},
    "cascades": {"core", "io", "routing"},
    "voting": {"core", "io"},
    "aggregation": {"core", "io", "voting"},
    "pipelines": {"core", "io", "voting", "aggregation"},
    "live": {"core", "io"},
    "evaluation": {"core", "io", "routing", "cascades", "voting", "aggregation", "pipelines"},
    "plan": {"core", "io", "routing", "cascades", "voting", "aggregation", "pipelines", "evaluation"},
}
#: Packages whose modules others may import one by one (the core's modules are its interface).
OPEN = {"core"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = ["callwise", *p.relative_to(SRC).with_suffix("").parts]
        ispkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if ispkg else parts)] = (p, ispkg)
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[int, str]]:
    """(line, imported callwise module) for every import in module ``name``, however deep."""
    path, ispkg = MODULES[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if ispkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import routing` imports a module
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in found if t in MODULES and t != name]


GRAPH = {name: _imports(name) for name in MODULES}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_the_layout_is_the_documented_one() -> None:
    top = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == set(ALLOWED)
    assert {p.name for p in SRC.glob("*.py")} == {"__init__.py", "cli.py"}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for _, t in GRAPH[m]:
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package: str) -> None:
    bad = [f"{m}:{line} imports {t}" for m, deps in GRAPH.items() if _package(m) == package
           for line, t in deps if (tp := _package(t)) not in (None, package) and tp not in ALLOWED[package]]
    bad += [f"{m}:{line} imports {t}" for m, deps in GRAPH.items() if _package(m) == package
            for line, t in deps if t in ("callwise", "callwise.cli")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_another_family_is_reached_through_its_package(package: str) -> None:
    bad = [f"{m}:{line} imports {t}; import from callwise.{_package(t)} instead"
           for m, deps in GRAPH.items() if _package(m) == package
           for line, t in deps
           if _package(t) not in (None, package) and _package(t) not in OPEN and t != f"callwise.{_package(t)}"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_says_what_it_is(package: str) -> None:
    doc = ast.get_docstring(ast.parse((SRC / package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0]) > 20, f"callwise.{package} has no docstring saying what it holds"


def test_the_public_api_of_0_1_0_is_still_exported() -> None:
    names_0_1_0 = {"BestOfK", "CallwiseError", "DataError", "FilterVote", "Vote", "Decisions", "DenseView",
                   "FormatError", "MetricAware", "Oracle", "OutcomeTable", "Policy", "PolicyError", "PriceTable",
                   "Queries", "RandomMix", "Replay", "SingleModel", "__version__", "bench", "Metric",
                   "detect_format", "fit_policy", "get_metric", "load", "register_metric", "load_policy",
                   "load_sample", "make", "register", "registry", "save_policy", "split_outcomes", "write_parquet"}
    assert names_0_1_0 <= set(callwise.__all__)
    assert all(getattr(callwise, n, None) is not None for n in names_0_1_0)


def test_every_family_registers_its_policies_on_import() -> None:
    assert set(callwise.registry()) == {
        "single", "oracle", "random-mix",  # core
        "knn", "linear", "mlp", "mf", "svm", "threshold", "cascade-judge",  # routing
        "confidence-cascade", "oracle-cascade", "frugal-cascade", "two-tier-router",  # cascades
        "vote", "filter-vote", "best-of-k",  # voting
        "metric-aware",  # aggregation
        "route-escalate", "vote-agreement-cascade", "learned-escalation",  # plan: compositions
    }
    order = ["core", "routing", "cascades", "voting", "aggregation", "plan"]
    families = [order.index(_package(cls.__module__)) for cls in callwise.registry().values()]
    assert families == sorted(families), "registry() lists the policies family by family, in layout order"
