"""One money formatter (core.money): plain decimals, never scientific; evaluation's tables use the same one."""

from __future__ import annotations

import pytest

from callwise.core import money
from callwise.core.calibrate import calibrate_budget
from callwise.core.errors import PolicyError
from callwise.evaluation import tables


def test_usd_is_plain_decimals() -> None:
    assert money.usd(4.9252e-05) == "$0.0000493"
    assert money.usd(1e-7) == "$0.000000100"
    assert money.usd(-0.000566) == "-$0.000566"
    assert money.usd(1500) == "$1,500"
    assert money.per_1k(4.9252e-05) == "$0.0493"
    assert money.usd(None) == "-"


def test_evaluation_uses_the_core_formatter() -> None:
    assert tables.usd is money.usd and tables.per_1k is money.per_1k


def test_calibration_message_prints_dollars() -> None:
    import numpy as np

    cost = np.array([[4.9252e-05, 1e-3], [4.9252e-05, 1e-3]])
    with pytest.raises(PolicyError) as e:
        calibrate_budget(np.array([0.0, 1.0]), cost, np.ones_like(cost), 1e-6, knob="k", method="m")
    msg = str(e.value)
    assert "e-0" not in msg and "$0.00000100 per query" in msg and "$0.0000493" in msg
