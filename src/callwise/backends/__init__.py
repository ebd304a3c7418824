"""Backends answer calls: :class:`Replay` from recorded outcomes (live providers come later)."""

from .base import Backend, Calls, KnowsTruth, Queries
from .replay import Replay

__all__ = ["Backend", "Calls", "KnowsTruth", "Queries", "Replay"]
