"""Evaluation shared by the commands: ``bench`` (every policy against the baselines), ``fit`` and the reports.

Report tables and plots (:mod:`.report`) render every command's result; they import matplotlib
only when a plot is drawn.
"""

from .bench import BenchResult, bench, default_policies
from .fit import FitReport, fit_policy

__all__ = ["BenchResult", "FitReport", "bench", "default_policies", "fit_policy"]
