"""Units for the executor's worker-death tests (core.parallel): module-level functions the local pool's
workers import (tests/ is on sys.path under pytest, and the fork server inherits it)."""

from __future__ import annotations

import os
import signal
import time
from typing import Sequence


def unit(scale: float, x: int, log: str, marker: str | None = None, wait_for: Sequence[str] = (),
         always: bool = False) -> float:
    """``scale * x * x``, after noting ``"<x> <pid>"`` in the file ``log``. First it waits (up to a minute)
    until every file in ``wait_for`` exists; then it SIGKILLs its own process when ``always``, or when
    ``marker`` is given and does not exist yet (creating it: so it dies only the first time)."""
    with open(log, "a") as fh:
        fh.write(f"{x} {os.getpid()}\n")
    deadline = time.monotonic() + 60
    while not all(os.path.exists(p) for p in wait_for):
        if time.monotonic() > deadline:
            raise RuntimeError(f"unit {x}: waited a minute for {list(wait_for)}")
        time.sleep(0.01)
    if always or (marker is not None and not os.path.exists(marker)):
        if marker is not None:
            open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return scale * x * x
