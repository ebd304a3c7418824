"""Where the small real sample shipped inside the package lies (:func:`callwise.io.load_sample` loads it).

It is there so that ``callwise bench`` runs with no data: RouteLLM's recorded GSM8K and MT-Bench
outcomes of GPT-4-1106-preview and Mixtral-8x7B (RouteLLM, Apache-2.0; see
``callwise/io/data/SAMPLE.md`` for attribution and citations), with costs *estimated* from
text-length token counts and the list prices in ``callwise/io/data/sample_prices.json``. The
RouterBench slice would be the natural sample, but its SOURCE.md states no licence that allows
redistribution, so it is not shipped; ``callwise bench ../shared/data/routerbench-subset`` runs
on it where it is at hand.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_FILE = "sample.parquet"


def sample_path() -> Path:
    """The bundled sample's Parquet file inside the installed package."""
    return Path(str(resources.files("callwise.io") / "data" / SAMPLE_FILE))
