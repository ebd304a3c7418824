"""Progress in units of real work, for every long-running function of the Python API.

A function that takes ``on_progress`` calls ``on_progress(done, total, what)`` each time a unit of its
work has finished: ``done`` units of ``total`` so far, ``what`` names the unit just finished (``task
gsm8k: knn``, ``fold 3/5: linear``, ``bootstrap 40/200``). Units are coarse on purpose (a policy, a
fold, a pair, a chunk of bootstrap rounds), never one Python call per prompt. ``total`` may grow
while the work runs, where it is only known as it goes (plan learns each task's candidates when it
reaches the task); ``done`` reaches ``total`` when the function returns. Without a callback nothing
is counted (:class:`Counter` with ``None`` costs one attribute test per unit).
"""

from __future__ import annotations

from typing import Callable

#: ``on_progress(done, total, what)``.
OnProgress = Callable[[int, int, str], None]


class Counter:
    """Counts units of work and reports each finished one to ``on_progress`` (if given)."""

    __slots__ = ("done", "on_progress", "total")

    def __init__(self, on_progress: OnProgress | None = None, total: int = 0) -> None:
        self.on_progress = on_progress
        self.done = 0
        self.total = int(total)

    def add(self, n: int) -> None:
        """``n`` more units are expected."""
        self.total += int(n)

    def __call__(self, what: str, n: int = 1) -> None:
        """``n`` units finished (or were skipped: they will not run), the last named ``what``."""
        self.done += int(n)
        if self.on_progress is not None:
            self.on_progress(self.done, max(self.total, self.done), what)

    def finish(self, what: str = "done") -> None:
        """Count what is left of ``total`` as done (units that turned out not to be needed)."""
        if self.done < self.total:
            self(what, self.total - self.done)


def chunk_size(n: int, parts: int = 20) -> int:
    """Rounds per progress step when ``n`` cheap rounds are reported in about ``parts`` steps."""
    return max(1, -(-int(n) // parts))


__all__ = ["Counter", "OnProgress", "chunk_size"]
