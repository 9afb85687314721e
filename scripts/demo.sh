#!/usr/bin/env bash
# make demo: the whole chain on the bundled sample, in one command.
#   corpus -> speech tokens -> tiny LM + tiny decoder for one main character -> ARP-Eval of
#   reference, copy-input and the trained model (which answers the test turns inside the
#   evaluation pass) -> Table 3 report. A failed step stops the demo with its exit code.
# DEMO_JUDGE=1 also starts the loopback SmolLM2 judge for CQ (plumbing numbers only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-out/demo}
SERIES=${SERIES:-sitcom}
TARGET=${TARGET:-${SERIES}_spk00}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }
trap 'echo "!! demo failed at line $LINENO after $(( $(date +%s) - start )) s" >&2' ERR

step "1/5 corpus from the bundled sample -> $OUT/corpus"
# a larger test share than the default so that every main character has test exchanges
$PY jobs/build_corpus.py --output "$OUT/corpus" --test-fraction 0.3 --seed 1

step "2/5 speech tokens (whisper-units, embedded)"
$PY jobs/tokenize_corpus.py --corpus "$OUT/corpus"

step "3/5 tiny LM for $TARGET (Ray Train + ColossalAI DDP on CPU)"
$PY jobs/train_lm.py --corpus "$OUT/corpus" --target "$TARGET" --model tiny --output "$OUT/model" --epochs "${LM_EPOCHS:-20}"

step "4/5 tiny decoder for $TARGET"
$PY jobs/train_decoder.py --corpus "$OUT/corpus" --target "$TARGET" --output "$OUT/model" --epochs "${DECODER_EPOCHS:-15}"

judge=()
if [ "${DEMO_JUDGE:-0}" = 1 ]; then
  port=$($PY -c "from audiorole_ray.eval.local_judge import free_port; print(free_port())")
  model=$($PY -m audiorole_ray.eval.local_judge --export-only)
  $PY -m audiorole_ray.eval.local_judge --port "$port" > "$OUT/judge.log" 2>&1 &
  judge_pid=$!
  trap 'kill $judge_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "!! the local judge did not start: $OUT/judge.log" >&2; exit 1; }
  judge=(--judge-url "http://127.0.0.1:$port/v1" --judge-model "$model")
fi

step "5/5 ARP-Eval: reference, copy-input and arp:$OUT/model (answers $TARGET's test turns)"
$PY jobs/evaluate.py --corpus "$OUT/corpus" --output "$OUT/eval" --system reference --system copy-input \
  --system "arp=arp:$OUT/model" --character "$TARGET" ${judge[@]+"${judge[@]}"}
echo
echo "demo finished in $(( $(date +%s) - start )) s: $OUT/eval/report.md, report.png"
