"""Metric-aware aggregation: combine a model's samples with the Bayes-optimal rule of the metric (Lukasik et al.).

Aggregation rules over weighted sample sets (mean, median, quantile, mode, MBR), the metric
registry and its rules, MBR utilities, the MetricAware policy and ``callwise aggregate``.
"""

from .combine import aggregate, mbr, mean, median, mode, quantile
from .comparison import AggregateResult, evaluate, synthetic_suite
from .metric_aware import MetricAware
from .metrics import Metric, get_metric, metric_names, register_metric, rule_for
from .rules import (
    RULES,
    Predictions,
    Rule,
    SampleSet,
    check_usable,
    draw_predictions,
    from_numbers,
    get_rule,
    probability_weights,
    rating_distribution,
    to_numbers,
)
from .utilities import UTILITIES, Utility, UtilityCache, get_utility

__all__ = ["AggregateResult", "Metric", "MetricAware", "Predictions", "RULES", "Rule", "SampleSet", "UTILITIES",
           "Utility", "UtilityCache", "aggregate", "check_usable", "draw_predictions", "evaluate", "from_numbers",
           "get_metric", "get_rule", "get_utility", "mbr", "mean", "median", "metric_names", "mode",
           "probability_weights", "quantile", "rating_distribution", "register_metric", "rule_for",
           "synthetic_suite", "to_numbers"]
