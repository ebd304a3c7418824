"""Live: run policies against real providers and serve them (OpenAI-compatible), with a response cache.

The live backend (limits, retries, fallbacks), the response cache, live prices, recording, runs
and collection, prompts, grading, chat validation, the policy server and the replay server.
The servers need the ``live`` extra and are imported from their modules
(:mod:`.server`, :mod:`.replay_server`), not here.
"""

from .backend import Live, ProviderError, Response, calls_from_responses, load_endpoints
from .cache import ResponseCache
from .prices import LivePrices
from .prompts import Prompts, load_prompts
from .recording import Recording
from .runs import RunResult, collect, run_policy

__all__ = ["Live", "LivePrices", "Prompts", "ProviderError", "Recording", "Response", "ResponseCache", "RunResult",
           "calls_from_responses", "collect", "load_endpoints", "load_prompts", "run_policy"]
