"""Evaluation shared by the commands: ``bench`` (every policy against the baselines), ``fit`` and the reports.

Report tables and plots (:mod:`.report`) render every command's result; they import matplotlib
only when a plot is drawn.
"""

from .bench import BenchResult, bench, default_policies
from .fit import FitReport, fit_policy
from .tables import Cell, Out, Table, cell, count, escape

__all__ = ["BenchResult", "Cell", "FitReport", "Out", "Table", "bench", "cell", "count",
           "default_policies", "escape", "fit_policy"]
