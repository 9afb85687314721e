#!/usr/bin/env bash
# make demo: the whole chain on the bundled sample, in one command.
#   corpus -> speech tokens -> tiny LM + tiny decoder for one main character -> its answers on
#   the test split -> ARP-Eval of reference, copy-input and the trained model -> Table 3 report.
# Steps whose job is not in this checkout yet are skipped with a note (the chain is being merged).
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
have() { [ -f "jobs/$1" ]; }
failed=()
# a failed training step is reported and the steps that need it are skipped; the evaluation of
# the corpus's own answers still runs, and the demo exits non-zero at the end
run() { "$@" || { echo "!! failed: $*"; failed+=("$(basename "$2")"); return 1; }; }

step "1/5 corpus from the bundled sample -> $OUT/corpus"
# a larger test share than the default so that every main character has test exchanges
$PY jobs/build_corpus.py --output "$OUT/corpus" --test-fraction 0.3 --seed 1

systems=(--system reference --system copy-input)
skipped=()
tokens=0 lm=0 decoder=0
if have tokenize_corpus.py; then
  step "2/5 speech tokens (whisper-units, embedded)"
  run $PY jobs/tokenize_corpus.py --corpus "$OUT/corpus" && tokens=1
else skipped+=(tokenize_corpus.py); fi
if have train_lm.py && [ $tokens = 1 ]; then
  step "3/5 tiny LM for $TARGET (Ray Train + ColossalAI DDP on CPU)"
  run $PY jobs/train_lm.py --corpus "$OUT/corpus" --target "$TARGET" --model tiny --output "$OUT/model" --epochs "${LM_EPOCHS:-3}" && lm=1
else skipped+=(train_lm.py); fi
if have train_decoder.py && [ $tokens = 1 ]; then
  step "3/5 tiny decoder for $TARGET"
  run $PY jobs/train_decoder.py --corpus "$OUT/corpus" --target "$TARGET" --output "$OUT/model" && decoder=1
else skipped+=(train_decoder.py); fi
if have respond.py && [ $lm = 1 ] && [ $decoder = 1 ]; then
  # the evaluation pass itself asks the model (arp:MODEL) for each test answer
  step "4/5 the trained model answers $TARGET's test turns inside the evaluation pass"
  systems+=(--system "arp=arp:$OUT/model" --character "$TARGET")
else skipped+=(respond.py); fi
if [ ${#skipped[@]} -gt 0 ]; then
  step "skipped (not in this checkout yet, or an earlier step failed): ${skipped[*]} (no trained-model row in the report)"
fi

judge=()
if [ "${DEMO_JUDGE:-0}" = 1 ]; then
  port=$($PY -c "from audiorole_ray.eval.local_judge import free_port; print(free_port())")
  model=$($PY -m audiorole_ray.eval.local_judge --export-only)
  $PY -m audiorole_ray.eval.local_judge --port "$port" > "$OUT/judge.log" 2>&1 &
  judge_pid=$!
  trap 'kill $judge_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
  judge=(--judge-url "http://127.0.0.1:$port/v1" --judge-model "$model")
fi

step "5/5 ARP-Eval"
$PY jobs/evaluate.py --corpus "$OUT/corpus" --output "$OUT/eval" "${systems[@]}" "${judge[@]}"
echo
echo "demo finished in $(( $(date +%s) - start )) s: $OUT/eval/report.md, report.png"
if [ ${#failed[@]} -gt 0 ]; then echo "!! steps that failed: ${failed[*]}"; exit 1; fi
