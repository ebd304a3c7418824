#!/usr/bin/env bash
# Record the outputs of a fixed set of seeded commands into OUT, to check that a refactor changes no
# result: run it before and after, then `python scripts/compare_outputs.py BEFORE AFTER`.
# Usage (repo root, package installed): bash scripts/snapshot_outputs.sh OUT [DATA=../shared/data]
set -uo pipefail
O=${1:?usage: snapshot_outputs.sh OUT [DATA]}; D=${2:-../shared/data}; mkdir -p "$O"
: > "$O/commands.txt"
run() {
  name=$1; shift
  echo "== $name: callwise $*" >> "$O/commands.txt"
  ( time callwise "$@" ) > "$O/$name.stdout" 2> "$O/$name.stderr"
  rc=$?; echo "rc=$rc" >> "$O/$name.stdout"; [ $rc -eq 0 ] || echo "$name failed (rc=$rc): see $O/$name.stderr" >&2
}
run bench-routerbench bench "$D/routerbench-subset" --out "$O/bench-routerbench"
run bench-sample bench --out "$O/bench-sample"
run cascade-mmlu cascade "$D/rational-cascades" --all-pairs --task mmlu-llama --out "$O/cascade-mmlu"
run scale-date scale "$D/mot-cascade-samples/GPT3_result/date_cot1_40.json.gz" --model gpt-3.5-turbo --out "$O/scale-date"
run aggregate-synth aggregate --synthetic --metric mse --metric mae --metric em --metric pinball:0.9 --n 8 --out "$O/aggregate-synth"
run aggregate-gpt35 aggregate "$D/mot-cascade-samples/GPT3_result" --metric mse --metric em --n 8 --out "$O/aggregate-gpt35"
printf 'builtin: ensemble-vote\nslots: 3\nnormalise: choice\n' > "$O/ens.yaml"
run allocate-mmlu allocate "$O/ens.yaml" "$D/rational-cascades" --task mmlu-llama --task mmlu-qwen_oai --budget-evals 40 --budget 0.0003 --out "$O/allocate-mmlu"
run fit-mlp fit "$D/routerbench-subset" --policy mlp --budget 0.002 --task mbpp --save "$O/fit/router.json" --report "$O/fit/report.json"
run route-mlp route "$O/fit/router.json" "Write a function that reverses a list" "What is 2+2?" --json
run fit-cascade fit "$D/rational-cascades" --policy confidence-cascade --task gsm8k-llama --budget 0.0005 --save "$O/fitc/cascade.json" --report "$O/fitc/report.json"
