"""Cascades: answer with a cheap model, escalate to a stronger one when its confidence is low (Ramírez et al.).

Confidence signals, budget -> escalation share -> threshold (offline and on a stream), the
confidence and oracle cascades over two or more tiers, FrugalGPT- and HybridLLM-style learned
baselines, and the paper's evaluation protocol (``callwise cascade``).
"""

from .escalation import ConfidenceCascade, Escalation, OracleCascade, sampled_call
from .learned import FrugalCascade, TwoTierRouter
from .protocol import METHODS, CascadeResult, CascadeRun, plan_cascades, run_cascades
from .signals import SIGNALS, Signal, SignalError, make_signal
from .thresholds import (
           QuantileThreshold,
           StreamingThreshold,
           ThresholdError,
           escalation_share,
)

__all__ = ["CascadeResult", "CascadeRun", "ConfidenceCascade", "Escalation", "FrugalCascade", "METHODS",
           "OracleCascade", "QuantileThreshold", "SIGNALS", "Signal", "SignalError", "StreamingThreshold",
           "ThresholdError", "TwoTierRouter", "escalation_share", "make_signal", "plan_cascades", "run_cascades",
           "sampled_call"]
