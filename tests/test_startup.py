"""Start-up stays cheap: ``import callwise`` and ``callwise --help`` load neither pandas nor the families,
and the registry still finds every policy on its first lookup (issue 22)."""

from __future__ import annotations

import subprocess
import sys


def _fresh(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_callwise_loads_no_heavy_module() -> None:
    out = _fresh("import sys, callwise; print(sorted(m for m in ('pandas', 'numpy', 'sklearn', 'litellm', 'ray', "
                 "'callwise.routing', 'callwise.core.outcomes') if m in sys.modules))")
    assert out == "[]"


def test_help_loads_neither_numpy_nor_pandas() -> None:
    out = _fresh("import sys\nfrom callwise.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
                 "print('LOADED', sorted(m for m in ('pandas', 'numpy', 'ray') if m in sys.modules))")
    assert out.splitlines()[-1] == "LOADED []"


def test_registry_finds_every_family_after_a_bare_import() -> None:
    out = _fresh("import callwise; r = callwise.registry(); print(len(r), 'knn' in r, 'vote' in r, "
                 "'route-escalate' in r, callable(callwise.plan))")
    assert out.split()[1:] == ["True", "True", "True", "True"] and int(out.split()[0]) >= 21


def test_plan_stays_callable_whichever_import_comes_first() -> None:
    out = _fresh("import callwise.plan.crossfit, callwise; print(callable(callwise.plan), callwise.load.__name__)")
    assert out == "True load"
