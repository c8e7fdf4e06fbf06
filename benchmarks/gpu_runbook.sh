#!/usr/bin/env bash
# The whole GPU job in one device call (benchmarks/README.md, "GPU runbook"), deadline-aware so
# that it ends inside the call's limit and always writes what it has:
#   1. install what the GPU machine lacks from carried wheels (.whl/) and this repo (no registry there);
#   2. benchmarks.gpu_check: single-image CUDA encodes (float32 / TF32), CPU vs CUDA decodes of the
#      same files, stacked step times -> the curve's step count;
#   3. the test suite with CUDA present (tests/test_cuda.py runs instead of skipping), in the background;
#   4. the Kodak curve: `python -m benchmarks ... --device cuda --inr-batched --inr-batch-pixels 16384` in
#      GPU_PROCS processes sharing the rates: all images of a rate fitted at once, 16,384 random pixels of
#      each per step (at equal pixel-steps far better than whole images: benchmarks/results/batch_vs_steps),
#      GPU utilisation sampled every 2 s.
# Results go to $OUT (runbook.log, gpu_check.json, pytest.txt, gpu_util.csv, nvidia-smi.txt,
# kodak_gpu.tar with inr.json and the per-image cache). A second call resumes the curve from the
# cache if the previous kodak_gpu.tar is unpacked into .gpu_results/kodak_gpu and carried.
#
# Device call (from the repo root here, after `pip download` of the wheels into .whl/ and a copy of
# the Kodak images into .gpu_data/kodak/, both listed in .git/info/exclude):
#   run(command="GPU_TOTAL_SECONDS=540 bash benchmarks/gpu_runbook.sh", carry=[".whl", ".gpu_data"], timeout_s=580)
set -u
START=$(date +%s)
TOTAL=${GPU_TOTAL_SECONDS:-540}
OUT=${OUT:?set OUT to the results folder}
DATA=${GPU_DATA:-.gpu_data/kodak}
BPPS=${GPU_CURVE_BPPS:-0.1,0.25,0.5,0.75,1.2}
FINISH_RESERVE=${GPU_FINISH_RESERVE:-80}   # seconds of rate search, decoding and scoring not hidden behind fitting
DEVICE=${GPU_DEVICE:-cuda}                 # cpu only to try the runbook out here, with a small GPU_DATA
CHECK_IMAGE=${GPU_CHECK_IMAGE:-$DATA/kodim23.png}
# single encodes of kodim23 at 0.3 bpp: the default (whole image, 2000 steps), 16k-pixel batches x 6000 steps, and
# both through encode_many (no per-step host reads); "--single-steps 30" for a try-out
CHECK_ARGS=${GPU_CHECK_ARGS:---single-bpps 0.3 --single-batched 16384:6000 --single-stacked 0:2000,16384:6000}
TESTS=${GPU_TESTS:-}                       # test files (default: the whole suite)
PROCS=${GPU_PROCS:-2}                      # benchmark processes sharing the GPU (rates split between them)
BATCHED=${GPU_BATCHED:-1}                  # 1: stacked encodes (codec.stacked), all images of a rate in one step
BATCH_PIXELS=${GPU_BATCH_PIXELS:-16384}    # with BATCHED=1: random pixels per image and step (0: whole images)
PLAN_SHARE=${GPU_PLAN_SHARE:-0.6}          # share of the time left that the planned stacked steps may fill (the
                                           # 2026-11-26 run planned 1.0 and was cut off: benchmarks/results/kodak_gpu_h200_batch16k)
mkdir -p "$OUT"
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( TOTAL - $(elapsed) )); }
log() { echo "[$(elapsed) s] $*" | tee -a "$OUT/runbook.log"; }
pack() {  # what the curve has so far, as one file that comes back
  [ -d /tmp/kodak_gpu ] && tar -C /tmp -cf "$OUT/kodak_gpu.tar" kodak_gpu && log "packed kodak_gpu.tar"
}
trap pack EXIT

log "start; budget ${TOTAL} s; data ${DATA}; rates ${BPPS}"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || log "wheel install failed"
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || log "editable install failed (console-script test will fail)"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, constriction, codec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" 2>&1 | tee -a "$OUT/runbook.log"

# 2. checks and the curve's plan (its step count fills the time that is left, less the finishing reserve)
DEADLINE=$(( START + TOTAL - FINISH_RESERVE - 20 ))
log "gpu_check"
timeout $(( $(left) / 3 )) python3 -m benchmarks.gpu_check --image "$CHECK_IMAGE" --out "$OUT/gpu_check.json" \
  --device "$DEVICE" $CHECK_ARGS $( [ "$BATCHED" = "1" ] && [ "$BATCH_PIXELS" != "0" ] && echo --batch-pixels "$BATCH_PIXELS" ) --curve-bpps "$BPPS" --curve-images "$(ls "$DATA"/*.png | wc -l)" --curve-deadline "$DEADLINE" --curve-share "$PLAN_SHARE" 2>&1 | tee -a "$OUT/runbook.log"
read -r STEPS TF32 < <(python3 -c "
import json
try:
    c = json.load(open('$OUT/gpu_check.json'))['curve']; print(c['steps'], int(c['tf32']))
except Exception:
    print(${GPU_FALLBACK_STEPS:-1000}, 0)")
log "curve plan: ${STEPS} steps, tf32=${TF32}"

# 3. the suite, with CUDA, beside the curve
XDIST=""; python3 -c "import xdist" 2>/dev/null && XDIST="-n 4"
( timeout $(( $(left) - 30 )) python3 -m pytest -q -p no:cacheprovider $XDIST $TESTS > "$OUT/pytest.txt" 2>&1; echo "pytest exit $?" >> "$OUT/pytest.txt" ) &
TESTS_PID=$!

# 4. the curve, resumed from a carried cache if there is one. GPU_PROCS processes share the rates
#    (round robin) so that one's CPU-side finishing (rate search, decoding, scoring) overlaps another's
#    fitting; their caches are then merged and the results assembled from the cache alone.
if [ -d .gpu_results/kodak_gpu ]; then cp -r .gpu_results/kodak_gpu /tmp/kodak_gpu; log "resuming from .gpu_results"; fi
mkdir -p /tmp/kodak_gpu/cache
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 2 > "$OUT/gpu_util.csv" 2>&1 &
SMI=$!
FLAGS=""; [ "$TF32" = "1" ] && FLAGS="--inr-tf32"; [ "$BATCHED" = "1" ] && FLAGS="$FLAGS --inr-batched"
[ "$BATCHED" = "1" ] && [ "$BATCH_PIXELS" != "0" ] && FLAGS="$FLAGS --inr-batch-pixels $BATCH_PIXELS"
log "curve: ${PROCS} process(es), batched=${BATCHED}"
PIDS=""
for k in $(seq 0 $(( PROCS - 1 ))); do
  PART=$(python3 -c "r='$BPPS'.split(','); print(','.join(r[$k::$PROCS]))")
  [ -z "$PART" ] && continue
  mkdir -p /tmp/kodak_gpu_part$k/cache && cp /tmp/kodak_gpu/cache/records.jsonl /tmp/kodak_gpu_part$k/cache/ 2>/dev/null
  timeout $(( $(left) - 25 )) python3 -m benchmarks "$DATA" --codecs inr --device "$DEVICE" --inr-steps "$STEPS" $FLAGS \
    --inr-bpps "$PART" --out /tmp/kodak_gpu_part$k --anchors '' --no-plot > /tmp/curve_part$k.log 2>&1 &
  PIDS="$PIDS $!"
done
for pid in $PIDS; do wait $pid; log "curve process $pid exit $?"; done
cat /tmp/curve_part*.log >> "$OUT/runbook.log"
cat /tmp/kodak_gpu_part*/cache/records.jsonl >> /tmp/kodak_gpu/cache/records.jsonl 2>/dev/null
python3 -m benchmarks "$DATA" --codecs inr --device "$DEVICE" --inr-steps "$STEPS" $FLAGS --inr-bpps "$BPPS" \
  --out /tmp/kodak_gpu --anchors '' --no-plot --cached-only -q 2>&1 | tee -a "$OUT/runbook.log"
kill $SMI 2>/dev/null
wait $TESTS_PID
tail -3 "$OUT/pytest.txt" | tee -a "$OUT/runbook.log"
log "done"
