#!/usr/bin/env bash
# The whole GPU job in one device call (benchmarks/README.md, "GPU runbook"), deadline-aware so
# that it ends inside the call's limit and always writes what it has. GPU_FAMILY picks the curve:
#
# GPU_FAMILY=latent (default): the latent-grid family, which has no stacked encoder:
#   1. install as below; 2. gpu_check's SIREN single encodes at 0.3 bpp only (float32 / TF32, CPU vs CUDA
#   decodes); 3. the suite in the background; 4. benchmarks.probes.gpu_latent check (one latent encode at 0.3 bpp,
#   its CPU/numpy/CUDA decodes, a repeat); 5. GPU_LATENT_PROCS step-time probes at once, from which
#   benchmarks.probes.gpu_latent plan sets the curve's steps; 6. the curve: GPU_LATENT_PROCS processes, images
#   split round robin, each harness call one image at every rate (`--images`), so a cut-off loses whole
#   images, never single points; caches merged, results assembled (kodak_gpu.tar: inr-latent.json, cache).
#   GPU_LATENT_CODEC=inr-latent-bicubic runs the curve with bicubic grids instead (inr-latent-bicubic.json).
#
# GPU_FAMILY=siren: the stacked SIREN curve:
#   1. install what the GPU machine lacks from carried wheels (.whl/) and this repo (no registry there);
#   2. benchmarks.probes.gpu_check: single-image CUDA encodes (float32 / TF32), CPU vs CUDA decodes of the
#      same files, stacked step times -> the curve's step count;
#   3. the test suite with CUDA present (tests/test_cuda.py runs instead of skipping), in the background;
#   4. the Kodak curve: `python -m benchmarks ... --device cuda --inr-batched --inr-batch-pixels 16384` in
#      GPU_PROCS processes sharing the rates: all images of a rate fitted at once, 16,384 random pixels of
#      each per step (at equal pixel-steps far better than whole images: benchmarks/DECISIONS.md, "Batches"),
#      GPU utilisation sampled every 2 s.
# Results go to $OUT (runbook.log, gpu_check.json, pytest.txt, gpu_util.csv, nvidia-smi.txt, with latent
# latent_check.json, and kodak_gpu.tar with inr.json or inr-latent.json, the per-image cache and logs/):
# at most 8 files come back from a device call. A second call resumes the curve from the
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
FAMILY=${GPU_FAMILY:-latent}              # latent: the latent-grid curve (LATENT_* below); siren: the stacked SIREN curve
LATENT_PROCS=${GPU_LATENT_PROCS:-12}       # latent: encoding processes sharing the GPU, images split round robin
LATENT_CODEC=${GPU_LATENT_CODEC:-inr-latent}  # latent: the benchmark codec of the curve (inr-latent-bicubic: bicubic grids)
LATENT_CHECK_STEPS=${GPU_LATENT_CHECK_STEPS:-2000}  # latent: steps of the single 0.3 bpp check encode
LATENT_PROBE_STEPS=${GPU_LATENT_PROBE_STEPS:-150}   # latent: timed steps of each concurrent probe
LATENT_FINISH=${GPU_LATENT_FINISH:-8}      # latent: seconds per encode outside the fit (rate search, decode, scoring, start-up)
LATENT_RESERVE=${GPU_LATENT_RESERVE:-30}   # latent: seconds kept after the curve (merging, packing)
LATENT_WANT_STEPS=${GPU_LATENT_WANT_STEPS:-2000}  # latent: the curve takes the most images (all, 12, 6) that get this many steps
LATENT_STAGES=${GPU_LATENT_STAGES:-gpu_check,tests,latent_check,profile}  # latent: what runs before the probes and the curve
PLAN_SHARE=${GPU_PLAN_SHARE:-0.6}          # share of the time left that the planned stacked steps may fill (the
                                           # 2026-11-26 run planned 1.0 and was cut off: benchmarks/DECISIONS.md, "GPU runs")
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


run_tests() {  # the suite, with CUDA present, in the background (waited for at the end)
  XDIST=""; python3 -c "import xdist" 2>/dev/null && XDIST="-n 4"
  ( OMP_NUM_THREADS=2 timeout $(( $(left) - 30 )) python3 -m pytest -q -p no:cacheprovider $XDIST $TESTS > "$OUT/pytest.txt" 2>&1
    echo "pytest exit $?" >> "$OUT/pytest.txt" ) &
  TESTS_PID=$!
}

siren_curve() {  # SIREN family: stacked encodes, all images of a rate at once
# 2. checks and the curve's plan (its step count fills the time that is left, less the finishing reserve)
DEADLINE=$(( START + TOTAL - FINISH_RESERVE - 20 ))
log "gpu_check"
timeout $(( $(left) / 3 )) python3 -m benchmarks.probes.gpu_check --image "$CHECK_IMAGE" --out "$OUT/gpu_check.json" \
  --device "$DEVICE" $CHECK_ARGS $( [ "$BATCHED" = "1" ] && [ "$BATCH_PIXELS" != "0" ] && echo --batch-pixels "$BATCH_PIXELS" ) --curve-bpps "$BPPS" --curve-images "$(ls "$DATA"/*.png | wc -l)" --curve-deadline "$DEADLINE" --curve-share "$PLAN_SHARE" 2>&1 | tee -a "$OUT/runbook.log"
read -r STEPS TF32 < <(python3 -c "
import json
try:
    c = json.load(open('$OUT/gpu_check.json'))['curve']; print(c['steps'], int(c['tf32']))
except Exception:
    print(${GPU_FALLBACK_STEPS:-1000}, 0)")
log "curve plan: ${STEPS} steps, tf32=${TF32}"

run_tests
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
}

latent_curve() {  # latent-grid family: one image per encode (no stacked path), LATENT_PROCS processes sharing the GPU
  if [[ ",$LATENT_STAGES," == *",gpu_check,"* ]]; then
    log "gpu_check: SIREN single encodes at 0.3 bpp (float32, TF32) and their CPU/CUDA decodes"
    timeout 120 python3 -m benchmarks.probes.gpu_check --image "$CHECK_IMAGE" --out "$OUT/gpu_check.json" --device "$DEVICE" \
      ${GPU_CHECK_ARGS:---single-bpps 0.3} --curve-bpps 0.3 --curve-images 1 --curve-seconds 1 2>&1 | tee -a "$OUT/runbook.log"
  fi
  [[ ",$LATENT_STAGES," == *",tests,"* ]] && run_tests
  if [[ ",$LATENT_STAGES," == *",latent_check,"* ]]; then
    log "latent check: one encode at 0.3 bpp, its decodes, a repeat"
    timeout 90 python3 -m benchmarks.probes.gpu_latent check --image "$CHECK_IMAGE" --out "$OUT/latent_check.json" \
      --device "$DEVICE" --steps "$LATENT_CHECK_STEPS" --repeat-steps 200 2>&1 | tee -a "$OUT/runbook.log"
  fi
  if [[ ",$LATENT_STAGES," == *",profile,"* ]]; then
    log "latent profile: whole-image steps, then grid_sample steps (all pixels but one)"
    { timeout 60 python3 -m benchmarks.probes.gpu_latent profile --image "$CHECK_IMAGE" --device "$DEVICE" --steps 20 --out /tmp/p1.txt
      timeout 60 python3 -m benchmarks.probes.gpu_latent probe --image "$CHECK_IMAGE" --device "$DEVICE" --steps 20 --out /tmp/p2.json
      timeout 60 python3 -m benchmarks.probes.gpu_latent profile --image "$CHECK_IMAGE" --device "$DEVICE" --steps 10 \
        --batch-pixels 393215 --out /tmp/p3.txt; } > "$OUT/latent_profile.txt" 2>&1
  fi
  log "latent probes: ${LATENT_PROCS} at once"
  local pids="" k
  for k in $(seq 0 $(( LATENT_PROCS - 1 ))); do
    OMP_NUM_THREADS=1 timeout 120 python3 -m benchmarks.probes.gpu_latent probe --image "$CHECK_IMAGE" --device "$DEVICE" \
      --steps "$LATENT_PROBE_STEPS" --out /tmp/latent_probe_$k.json > /tmp/latent_probe_$k.log 2>&1 &
    pids="$pids $!"
  done
  for k in $pids; do wait $k; done
  local images=($(ls "$DATA"/*.png | xargs -n1 basename | sed 's/\.png$//'))
  local n=${#images[@]} rates end counts steps procs
  rates=$(echo "$BPPS" | tr ',' '\n' | wc -l)
  end=$(( START + TOTAL - LATENT_RESERVE ))
  counts=$(python3 -c "print(','.join(str(c) for c in sorted({$n, *[c for c in (12, 6) if c < $n]})))")
  python3 -m benchmarks.probes.gpu_latent plan --probes /tmp/latent_probe_*.json --single /tmp/p2.json --images "$counts" --rates "$rates" \
    --seconds $(( end - $(date +%s) )) --finish-seconds "$LATENT_FINISH" --want-steps "$LATENT_WANT_STEPS" > /tmp/latent_plan.json 2>&1
  tee -a "$OUT/runbook.log" < /tmp/latent_plan.json
  read -r n procs steps < <(python3 -c "
import json
try:
    p = json.load(open('/tmp/latent_plan.json')); print(p['images'], p['processes'], p['steps'])
except Exception:
    print(min($n, 6), min($n, $LATENT_PROCS), ${GPU_FALLBACK_STEPS:-1000})")
  log "latent curve: the first ${n} images over ${procs} processes, ${steps} steps, rates ${BPPS}"
  mkdir -p /tmp/kodak_gpu/cache
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 2 > "$OUT/gpu_util.csv" 2>&1 &
  local smi=$!
  pids=""
  for k in $(seq 0 $(( procs - 1 ))); do
    (
      i=$k
      while [ $i -lt $n ]; do  # one image at every rate per call, so a cut-off leaves whole curves
        remaining=$(( end - $(date +%s) ))
        [ $remaining -le 10 ] && break
        OMP_NUM_THREADS=1 timeout $remaining python3 -m benchmarks "$DATA" --codecs "$LATENT_CODEC" --device "$DEVICE" \
          --inr-steps "$steps" --inr-bpps "$BPPS" --images "${images[$i]}" --out /tmp/latent_part$k --anchors '' \
          --no-plot >> /tmp/latent_part$k.log 2>&1
        i=$(( i + procs ))
      done
    ) &
    pids="$pids $!"
  done
  for k in $pids; do wait $k; done
  kill $smi 2>/dev/null
  mkdir -p /tmp/kodak_gpu/logs && cp /tmp/latent_part*.log /tmp/latent_probe_* /tmp/latent_plan.json /tmp/kodak_gpu/logs/ 2>/dev/null
  cat /tmp/latent_part*/cache/records.jsonl >> /tmp/kodak_gpu/cache/records.jsonl 2>/dev/null
  python3 -m benchmarks "$DATA" --codecs "$LATENT_CODEC" --device "$DEVICE" --inr-steps "$steps" --inr-bpps "$BPPS" \
    --images "$(IFS=,; echo "${images[*]:0:$n}")" --out /tmp/kodak_gpu --anchors '' --no-plot --cached-only -q 2>&1 \
    | tee -a "$OUT/runbook.log"
  log "latent curve: $(grep -c . /tmp/kodak_gpu/cache/records.jsonl) records"
}

if [ "$FAMILY" = "latent" ]; then latent_curve; else siren_curve; fi
[ -n "${TESTS_PID:-}" ] && wait $TESTS_PID
tail -3 "$OUT/pytest.txt" | tee -a "$OUT/runbook.log"
log "done"
