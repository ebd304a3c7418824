"""The running budget account of a served policy (the server's and live runs' budget guard)."""

from __future__ import annotations


class BudgetLedger:
    """A running account of a served policy's budget across batches (a server's one-query batches).

    Within one batch the guard keeps spend within b·N; a stream of one-query batches needs the
    slack earned by earlier queries, or a query could never afford escalation. ``allowance(n, b)``
    is what a new batch of n queries at budget b may spend: every budget granted so far, plus this
    batch's, minus every dollar spent; ``record`` books what the batch spent. Thread-safe.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.granted = 0.0
        self.spent = 0.0
        self.queries = 0

    def allowance(self, n: int, budget: float) -> float:
        with self._lock:
            return self.granted + n * float(budget) - self.spent

    def record(self, n: int, budget: float, spent: float) -> None:
        with self._lock:
            self.granted += n * float(budget)
            self.spent += float(spent)
            self.queries += n
