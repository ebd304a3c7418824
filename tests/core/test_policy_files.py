"""Policy files written by callwise 0.1.0 before the move to one folder per family still load and decide the same.

The files in ``data/policies-0.1.0`` were written by the pre-move code (see its ``make_policies.py``):
one per registered policy, with the decisions it made on the test split. Loading them with today's
code must find every policy by its registered name and reproduce those decisions exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import callwise
from callwise import Replay, load, load_policy, split_outcomes

HERE = Path(__file__).parent / "data" / "policies-0.1.0"
NAMES_0_1_0 = sorted(p.stem for p in HERE.glob("*.json"))


def test_every_policy_of_0_1_0_has_a_file_and_is_still_registered() -> None:
    assert len(NAMES_0_1_0) == 17
    assert set(NAMES_0_1_0) <= set(callwise.registry())


@pytest.fixture(scope="module")
def replay() -> Replay:
    _, test, _ = split_outcomes(load(HERE / "table.parquet"), fraction=0.7, seed=0)
    return Replay(test)


@pytest.mark.parametrize("name", NAMES_0_1_0)
def test_a_policy_file_written_before_the_move_decides_as_it_did(name: str, replay: Replay) -> None:
    expected = np.load(HERE / "decisions.npz")
    pol = load_policy(HERE / f"{name}.json")
    assert pol.name == name and type(pol) is callwise.registry()[name]
    d = pol.decide(replay.queries(), replay)
    np.testing.assert_array_equal(d.cost, expected[f"{name}/cost"])
    np.testing.assert_array_equal(d.quality, expected[f"{name}/quality"])
    np.testing.assert_array_equal(d.chosen, expected[f"{name}/chosen"])
