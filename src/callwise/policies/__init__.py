"""Policies: decide which calls to make and which answer to return (see :mod:`.base`)."""

from .base import Decisions, Policy, get_policy, make, register, registry
from .fixed import Oracle, RandomMix, SingleModel

__all__ = ["Decisions", "Oracle", "Policy", "RandomMix", "SingleModel", "get_policy", "make", "register", "registry"]
