#!/usr/bin/env bash
# Acceptance check of one GPU node in about 7 minutes (BUDGET seconds); each stage is capped with `timeout`, a
# failing stage is logged and the next one runs. Results go to ${OUT:-/tmp/gpu_check}: summary.txt, env.txt,
# tests.txt, bench.txt, pipeline.txt, e2e.txt.
#   0 environment: GPU, driver, JAX backend and devices
#   1 tests whose numerics depend on the device: losses, models, the ImageNet step under mock data
#   2 `python -m bagssl_jax.bench --sections=gpu`: configs/imagenet_vicreg.py's train step in bf16 (images/s, MFU,
#     peak memory)
#   3 host pipeline on all cores: an ImageNet-like JPEG folder (generated), read on the fly and prepared once
#     (`python -m bagssl_jax.prepare`), with the config's data.num_workers
#   4 end to end: `python -m bagssl_jax.main` on the prepared data (the JPEG folder if preparing failed), bf16, until
#     the budget is spent (SIGTERM: the run saves and exits); images/s and input wait from the progress lines
#   5 `python -m bagssl_jax.bench --sections=gpu_batches`: the step at 256, 512 and 1024 images per GPU (images/s,
#     MFU, peak memory); the presets' global batch is unchanged
#   6 summary
# Needs the requirements (grain, array_record, tensorflow_datasets, ml_collections, tensorboardX) importable.
# Variables: OUT, PY (python3), BUDGET (400 s), IMAGES (3000 JPEGs), E2E_DATA (prepared | folder), QUICK=1 (a
# minutes-long CPU smoke run of every stage: :runlocal config, few images, small batches), STAGES ("1 2 3 4 5": the stages
# between the environment and the summary to run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; PY=${PY:-python3}; BUDGET=${BUDGET:-400}; QUICK=${QUICK:-0}
TMP=$(mktemp -d /tmp/gpu_check.XXXX); J=$TMP/jpeg; P=$TMP/prepared
mkdir -p "$OUT"; : >"$OUT/summary.txt"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CORES=$(nproc)
if [[ $QUICK == 1 ]]; then
  IMAGES=${IMAGES:-96}; VARIANT=:runlocal; BATCH=16; WORKERS=2; SECS=3; STEPS=12; EVERY=1; KEEP=(-k vicreg)
else
  IMAGES=${IMAGES:-3000}; VARIANT=; BATCH=256; WORKERS=16; SECS=8; STEPS=5000; EVERY=5; KEEP=()
fi
T0=$SECONDS
log() { echo "=== [$((SECONDS - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
# cap N: N seconds, or what is left of BUDGET if less (never under 30).
cap() { local left=$((BUDGET - (SECONDS - T0))); ((left < $1)) && set -- "$left"; echo $(($1 < 30 ? 30 : $1)); }
# run NAME SECONDS CMD...: a capped stage command; a failure is logged, not fatal.
run() {
  local name=$1 t; t=$(cap "$2"); shift 2
  timeout -k 15 "$t" "$@"; local rc=$?
  ((rc == 0)) || log "$name: exit $rc$( ((rc == 124)) && echo " (timed out after $t s)")"
  return $rc
}

# want N: stage N is among STAGES (all by default).
want() { [[ " ${STAGES:-1 2 3 4 5} " == *" $1 "* ]]; }

log "0 environment"
{ run nvidia-smi 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    || echo "nvidia-smi: none"
  run jax 60 "$PY" -c 'import jax, flax, grain, numpy, google.protobuf as pb, tensorflow_datasets as tfds
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices(),
      "kind", jax.devices()[0].device_kind)
print("flax", flax.__version__, "tfds", tfds.__version__, "numpy", numpy.__version__, "protobuf", pb.__version__)'
  echo "cpu cores: $CORES"; } >"$OUT/env.txt" 2>&1
tee -a "$OUT/summary.txt" <"$OUT/env.txt"

if want 1; then
log "1 tests (losses, models, the ImageNet step under mock data)"
# With pytest-xdist: one process per file, sharing the GPU (no preallocation); with pytest-timeout: a test stuck
# past 75 s fails alone.
"$PY" -c 'import xdist' 2>/dev/null && KEEP+=(-n 3 --dist=loadfile)
"$PY" -c 'import pytest_timeout' 2>/dev/null && KEEP+=(--timeout=75)
XLA_PYTHON_CLIENT_PREALLOCATE=false run pytest 90 "$PY" -m pytest -q -rf -p no:cacheprovider "${KEEP[@]}" \
  tests/test_losses.py tests/test_models.py tests/test_train.py::test_imagenet_runlocal_one_step_under_mock_data \
  >"$OUT/tests.txt" 2>&1
tail -n 6 "$OUT/tests.txt" | tee -a "$OUT/summary.txt"
fi

if want 2; then
log "2 bench --sections=gpu (configs/imagenet_vicreg.py, bf16, batch $BATCH on this device)"
run bench 150 "$PY" -m bagssl_jax.bench --sections=gpu --repeats=3 --json >"$OUT/bench.txt" 2>&1
if [[ $QUICK == 1 ]] && ! grep -q gpu_images_per_s "$OUT/bench.txt"; then  # no GPU: the section's CPU smoke form
  run bench-smoke 120 "$PY" -c 'import json; from bagssl_jax.bench import gpu; from bagssl_jax.config import presets
print(json.dumps(gpu.run(1, presets.build("fashion_mnist", "vicreg", "runlocal"))))' >>"$OUT/bench.txt" 2>&1
fi
tail -n 1 "$OUT/bench.txt" | tee -a "$OUT/summary.txt"
fi

if want 3; then
log "3 host pipeline: $IMAGES ImageNet-like JPEGs, $WORKERS workers, $CORES cores"
{ run jpegs 30 "$PY" - "$J" "$IMAGES" <<'EOF'
import multiprocessing, os, sys, numpy as np
from PIL import Image
from bagssl_jax.bench.pipeline import SIZE_MIX  # ImageNet's mix of sizes
root, n = sys.argv[1], int(sys.argv[2])
def make(i):  # a smooth random colour field plus grain: ~110 KB at 500x375, as ImageNet's JPEGs
  rng = np.random.default_rng(i)
  w, h = SIZE_MIX[rng.choice(len(SIZE_MIX), p=[s for _, s in SIZE_MIX])][0]
  small = rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3), np.uint8)
  a = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.float32) + rng.normal(0, 12, (h, w, 1))
  path = os.path.join(root, "train", f"c{i % 10}", f"{i:05d}.jpg")
  Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(path, quality=95)
  return os.path.getsize(path)
for c in range(10):
  os.makedirs(os.path.join(root, "train", f"c{c}"), exist_ok=True)
with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
  sizes = pool.map(make, range(n), chunksize=16)
print(f"{n} JPEGs in {root}, mean {np.mean(sizes) / 1024:.0f} KB")
EOF
  t=$SECONDS
  run prepare 40 "$PY" -m bagssl_jax.prepare --config="configs/imagenet_vicreg.py$VARIANT" \
    --config.data.name=image_folder --config.data.path="$J" --out="$P" --workers="$WORKERS" --splits=train \
    && echo "prepare: $IMAGES images in $((SECONDS - t)) s with $WORKERS workers"
  cat >"$TMP/rate.py" <<'EOF'  # a file, not stdin: grain spawns its workers from __main__'s file
import faulthandler, json, os, sys, time
from absl import flags
from bagssl_jax.config import presets
from bagssl_jax.data import load_source, make_train_iterator

def rate(name, path, workers, batch, secs, variant):
  c = presets.build("imagenet", "vicreg", variant or None)  # configs/imagenet_vicreg.py
  c.data.update(name=name, path=path, num_workers=workers)
  c.batch_size = batch
  t = time.perf_counter()
  it = make_train_iterator(c, load_source(c.data, "train"))
  for _ in range(3):
    x = next(it)
  start_s, k, t = time.perf_counter() - t, 0, time.perf_counter()
  while time.perf_counter() - t < secs:
    next(it)
    k += 1
  return {"workers": workers, "read_threads": c.data.read_threads, "batch": batch,
          "first_3_batches_s": round(start_s, 1), "images_per_s": round(k * batch / (time.perf_counter() - t)),
          "patches": list(x["patches"].shape)}

if __name__ == "__main__":  # grain's workers are spawned
  name, path, workers, batch, secs, variant = sys.argv[1:]
  flags.FLAGS.mark_as_parsed()  # the workers read grain's absl flags
  faulthandler.dump_traceback_later(45, repeat=True)  # where a stuck pipeline waits, every 45 s
  print(f"[{time.strftime('%X')}] {name}: starting", flush=True)
  r = rate(name, path, int(workers), int(batch), float(secs), variant)
  print(json.dumps({"pipeline": name, **r}), flush=True)
  # Skip closing the iterator: on the H200 machine, closing one with 16 workers outlasted 100 s.
  os._exit(0)
EOF
  [[ -f $P/metadata.json ]] && run pipeline-prepared 60 "$PY" "$TMP/rate.py" prepared "$P" "$WORKERS" "$BATCH" "$SECS" "${VARIANT#:}"
  run pipeline-folder 60 "$PY" "$TMP/rate.py" image_folder "$J" "$WORKERS" "$BATCH" "$SECS" "${VARIANT#:}"
} >"$OUT/pipeline.txt" 2>&1
grep -E '^[0-9]+ JPEGs|^prepare:|^\{|^\[|error' "$OUT/pipeline.txt" | tee -a "$OUT/summary.txt"
fi

if want 4; then
DATA=(--config.data.name=image_folder --config.data.path="$J")
if [[ ${E2E_DATA:-prepared} == prepared && -f $P/metadata.json ]]; then
  DATA=(--config.data.name=prepared --config.data.path="$P")
fi
log "4 end to end: bagssl_jax.main, ${DATA[0]#--config.data.name=}, bf16, batch $BATCH, until the budget is spent"
left=$((BUDGET - (SECONDS - T0) - 15)); want 5 && left=$((left - 180)); ((left < 60)) && left=60
timeout -k 30 "$left" "$PY" -m bagssl_jax.main --config="configs/imagenet_vicreg.py$VARIANT" --workdir="$TMP/e2e" \
  --distributed=off --config.dtype=bfloat16 --config.param_sharding=replicated "${DATA[@]}" \
  --config.batch_size="$BATCH" --config.data.num_workers="$WORKERS" --config.total_steps="$STEPS" \
  --config.run_eval=False --config.eval.heldout_every_steps=0 --config.log_every_seconds="$EVERY" \
  --config.checkpoint_every_steps=100000 >"$OUT/e2e.txt" 2>&1
rc=$?; ((rc == 124)) && log "e2e: SIGTERM at $left s, as planned" || { ((rc == 0)) || log "e2e: exit $rc"; }
grep -E '^step |^error|preempted' "$OUT/e2e.txt" | tail -n 4 | tee -a "$OUT/summary.txt"
fi

if want 5; then
log "5 the step at 256, 512 and 1024 images per GPU"
run batches 180 "$PY" -m bagssl_jax.bench --sections=gpu_batches --repeats=3 --json >"$OUT/batches.txt" 2>&1
tail -n 1 "$OUT/batches.txt" | tee -a "$OUT/summary.txt"
fi

log "6 summary"
"$PY" - "$OUT" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import json, re, statistics, sys
out = sys.argv[1]
def lines(name):
  try:
    return open(f"{out}/{name}").read().splitlines()
  except OSError:
    return []
def jsons(name):
  rows = []
  for l in lines(name):
    try:
      rows.append(json.loads(l)) if l.startswith("{") else None
    except ValueError:
      pass
  return rows
bench = {k: v for r in jsons("bench.txt") for k, v in r.items()}
pipe = {r["pipeline"]: r for r in jsons("pipeline.txt") if "pipeline" in r}
prog = [l for l in lines("e2e.txt") if l.startswith("step ")][1:]  # the first includes the compile
rates = [float(m.group(1).replace(",", "")) for l in prog if (m := re.search(r"([\d,]+) patches/s", l))]
waits = [float(m.group(1)) for l in prog if (m := re.search(r"input (\d+)%", l))]
patches = next((r["patches"][1] for r in pipe.values()), 2)  # patches per image
def f(v, fmt="{:,.0f}"):
  return "n/a" if v is None else fmt.format(v)
env = [l for l in lines("env.txt") if l.strip() and not l.startswith(("===", "timeout:"))]
print("device:", env[0] if env else "n/a", "|", next((l for l in env if l.startswith("jax")), "jax n/a"))
print("bench (gpu section):", f(bench.get("gpu_images_per_s")), "images/s,", f(bench.get("gpu_model_tflops_per_step"), "{:.2f}"),
      "TFLOP/step, MFU", f(bench.get("gpu_mfu"), "{:.1%}"), "of", f(bench.get("gpu_peak_bf16_tflops"), "{:.0f}"),
      "TFLOP/s, peak memory", f(bench.get("gpu_peak_memory_gib"), "{:.1f}"), "GiB, compile",
      f(bench.get("gpu_compile_s"), "{:.0f}"), "s,", bench.get("gpu_device") or bench.get("gpu") or bench.get("gpu_error"))
for name, r in pipe.items():
  print(f"host pipeline ({name}, {r['workers']} workers):", f(r["images_per_s"]), "images/s")
e2e = statistics.median(rates) / patches if rates else None
print("end to end:", f(e2e), "images/s, input wait", f(statistics.median(waits) if waits else None, "{:.0f}%"),
      f"(median of {len(rates)} progress lines after the first)")
if e2e and bench.get("gpu_images_per_s"):
  print(f"end to end / bench: {e2e / bench['gpu_images_per_s']:.0%}")
EOF
rm -rf "$TMP"
