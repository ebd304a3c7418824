"""Compound pipelines and per-module model selection (LLMSelector).

- :mod:`.graph`: modules, steps and validated pipelines (Python or YAML);
- :mod:`.builtin`: self-refine, debate, locate-then-solve, ensemble vote;
- :mod:`.run`: running a pipeline under an allocation on any backend, and its record;
- :mod:`.ensemble`: exact vectorised scores of ensemble-vote allocations from recorded answers;
- :mod:`.search`: LLMSelector, coordinate ascent, random and exhaustive search, single models;
- :mod:`.diagnoser`: the optional LLM diagnoser;
- :mod:`.spec`: pipelines from their dict / YAML form;
- :mod:`.allocate`: ``callwise allocate`` (search on train, report on test, baselines, Pareto set).
"""

from .allocate import AllocationResult
from .builtin import builtin, debate, ensemble_vote, locate_then_solve, self_refine
from .diagnoser import LLMDiagnoser
from .graph import Module, Pipeline, PipelineError, Step
from .run import ModuleCalls, PipelineRun, run_pipeline, score_answers
from .search import (
                     METHODS,
                     Ledger,
                     OutcomesEvaluator,
                     RunEvaluator,
                     SearchResult,
                     all_allocations,
                     pareto_allocations,
                     search,
)
from .spec import load_pipeline, pipeline_from_dict

__all__ = ["AllocationResult", "METHODS", "LLMDiagnoser", "Ledger", "Module", "ModuleCalls", "OutcomesEvaluator", "Pipeline",
           "PipelineError", "PipelineRun", "RunEvaluator", "SearchResult", "Step", "all_allocations", "builtin",
           "debate", "ensemble_vote", "load_pipeline", "locate_then_solve", "pareto_allocations",
           "pipeline_from_dict", "run_pipeline", "score_answers", "search", "self_refine"]
