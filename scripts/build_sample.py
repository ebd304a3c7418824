"""Rebuild the bundled sample (src/callwise/io/data/sample.parquet) from ../shared/data/routellm-evals.

RouteLLM's evals are Apache-2.0, so they may be shipped with attribution (data/SAMPLE.md). GSM8K and
MT-Bench are kept (they have answer texts, so output tokens can be estimated); response texts are
dropped from the sample to keep it small, token counts are kept.

    python scripts/build_sample.py [../shared/data/routellm-evals]
"""

import sys
from pathlib import Path

from callwise import OutcomeTable, load
from callwise.core.prices import PriceTable

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/routellm-evals")
data = Path(__file__).resolve().parents[1] / "src" / "callwise" / "io" / "data"
prices = PriceTable.load(data / "sample_prices.json")
parts = [load(root / "gsm8k", "routellm", prices=prices), load(root / "mt_bench", "routellm", prices=prices)]
frame = __import__("pandas").concat([p.frame for p in parts], ignore_index=True).drop(columns=["answer"])
meta = dict(parts[0].meta)
meta["source"] = "callwise bundled sample: RouteLLM evals (lm-sys/RouteLLM, Apache-2.0), GSM8K + MT-Bench"
meta["notes"] = sorted(set(parts[0].meta["notes"]) | set(parts[1].meta["notes"]))
meta["price_table"]["path"] = "callwise/io/data/sample_prices.json"
table = OutcomeTable.from_frame(frame, meta=meta)
table.to_parquet(data / "sample.parquet")
print(table, (data / "sample.parquet").stat().st_size, "bytes")
