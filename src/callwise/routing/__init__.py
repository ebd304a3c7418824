"""Routing: send each query to one model, chosen from its prompt (RouterBench; RouteLLM's threshold routers).

Featurisers and quality predictors (knn, linear, mlp, mf) feed the λ-rule of the n-model routers;
RouteLLM's two-model threshold routers and APGR / CPT; RouterBench's non-predictive judge cascade.
"""

from .apgr import (
           ShareCurve,
           apgr,
           cpt,
           oracle_share_curve,
           routellm_metrics,
           share_curve,
)
from .cascade_judge import CascadeJudge
from .features import (
           FeatureCache,
           FeatureError,
           Featuriser,
           SentenceEmbeddings,
           TfidfSvd,
           featuriser_from_state,
           make_featuriser,
)
from .router import (
           KnnRouter,
           LinearRouter,
           MfRouter,
           MlpRouter,
           Route,
           Router,
           SvmRouter,
)
from .scorers import SCORERS, Scorer, make_scorer, scorer_from_state
from .threshold import ThresholdRouter

__all__ = ["CascadeJudge", "FeatureCache", "FeatureError", "Featuriser", "KnnRouter", "LinearRouter", "MfRouter",
           "MlpRouter", "Route", "Router", "SCORERS", "Scorer", "SentenceEmbeddings", "ShareCurve", "SvmRouter",
           "TfidfSvd", "ThresholdRouter", "apgr", "cpt", "featuriser_from_state", "make_featuriser", "make_scorer",
           "oracle_share_curve", "routellm_metrics", "scorer_from_state", "share_curve"]
