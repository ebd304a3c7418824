"""The evaluation tests run the commands strictly: a report.html that fails to build raises (users only
get a warning, so their results.json and plots survive a fault in the page)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def strict_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLWISE_STRICT_REPORT", "1")
