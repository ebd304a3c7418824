"""Votes: K calls of one model and a plurality vote over their answers (Chen et al., "Are More LLM Calls All You Need?").

The vote engine (encoded samples, exact and Monte Carlo expectations of Vote, Filter-Vote and
best-of-K), the policies, the two-level scaling law and ``callwise scale``'s curves.
"""

from .curves import ScaleResult, scale
from .engine import (
    DRAWS,
    EMPTY_QUALITY,
    Samples,
    best_of_curve,
    draw_positions,
    encode,
    expected_cost,
    filter_vote_curve,
    plurality,
    vote_curve,
)
from .scaling import FIT_GRIDS, ScalingModel, best_k, fit_scaling, shape
from .vote import BestOfK, FilterVote, MultiCall, Vote, samples_per_model

__all__ = ["BestOfK", "DRAWS", "EMPTY_QUALITY", "FIT_GRIDS", "FilterVote", "MultiCall", "Samples", "ScaleResult", "ScalingModel",
           "Vote", "best_k", "best_of_curve", "draw_positions", "encode", "expected_cost", "filter_vote_curve",
           "fit_scaling", "plurality", "samples_per_model", "scale", "shape", "vote_curve"]
