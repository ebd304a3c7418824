"""Policies: decide which calls to make and which answer to return (see :mod:`.base`)."""

from .base import Decisions, Policy, get_policy, make, register, registry
from .cascade_judge import CascadeJudge
from .escalation import ConfidenceCascade, Escalation, OracleCascade
from .fixed import Oracle, RandomMix, SingleModel
from .learned_escalation import FrugalCascade, TwoTierRouter
from .metric_aware import MetricAware
from .router import KnnRouter, LinearRouter, MfRouter, MlpRouter, Route, Router
from .threshold import ThresholdRouter
from .vote import BestOfK, FilterVote, Vote

__all__ = ["BestOfK", "CascadeJudge", "ConfidenceCascade", "Decisions", "Escalation", "FrugalCascade", "KnnRouter", "LinearRouter", "MetricAware", "MfRouter", "MlpRouter", "Oracle", "OracleCascade", "Policy", "RandomMix",
           "Route", "Router", "SingleModel", "ThresholdRouter", "TwoTierRouter", "FilterVote", "Vote", "get_policy", "make", "register", "registry"]
