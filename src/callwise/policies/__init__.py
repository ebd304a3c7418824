"""Policies: decide which calls to make and which answer to return (see :mod:`.base`)."""

from .base import Decisions, Policy, get_policy, make, register, registry
from .cascade_judge import CascadeJudge
from .fixed import Oracle, RandomMix, SingleModel
from .router import KnnRouter, LinearRouter, MfRouter, MlpRouter, Route, Router
from .threshold import ThresholdRouter

__all__ = ["CascadeJudge", "Decisions", "KnnRouter", "LinearRouter", "MfRouter", "MlpRouter", "Oracle", "Policy", "RandomMix",
           "Route", "Router", "SingleModel", "ThresholdRouter", "get_policy", "make", "register", "registry"]
