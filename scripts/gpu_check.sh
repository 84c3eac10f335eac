#!/usr/bin/env bash
# The accelerator path checked on a lent GPU machine, in one short run, with no internet: that machine has
# Python 3.12 with jax (CUDA plugin), flax and optax preinstalled, but no hydra, wandb or tensorflow-datasets.
#
#   here, once:        bash scripts/gpu_wheels.sh          # wheels/ with what the GPU image lacks
#   there:             bash scripts/gpu_check.sh           # carry wheels/ along; results in $OUT or gpu_check_out/
#   on a CPU (tests):  bash scripts/gpu_check.sh --quick   # = GPU_CHECK_QUICK=1: JAX_PLATFORMS=cpu, tiny models
#                                                          #   and batches, no pip step when recbench is installed
#
# Steps, in this order, each under its own time limit and all within GPU_CHECK_BUDGET seconds (default 480, so
# the run ends inside the device tool's 10-minute command limit with its results written); a step that fails
# or times out is recorded and the next one runs, a step with no time left is skipped and says so:
#   setup    a venv that sees the image's packages (its jax and flax stay), the missing wheels installed offline,
#            recbench installed --no-deps, editable (skipped when that venv is already complete)
#   backend  backend, devices, versions (scripts/gpu_probe.py backend) and recbench-info for blt
#   smoke    blt and cornet_s trained a few steps with JAX_LOG_COMPILES=1 and JAX_EXPLAIN_CACHE_MISSES=1: each
#            program should compile once; compiles counted per program; then blt again from the compilation
#            cache, for its first-step time warm
#   probe    loop vs rolled scan for blt, cornet_s, hgru: equal logits, first-step time, img/s
#   tests    tests/models and tests/train on the accelerator at JAX_DEFAULT_MATMUL_PRECISION=highest
#   memory   peak device memory of paper-scale blt_net and cornet_s at batch 128: scan, loop, model.remat=true
#   bench    recbench-bench (a short run), where it is installed
# GPU_CHECK_STEPS="setup memory bench" runs a subset, e.g. the rest of a run that reached its budget, in a second
# call while the machine is still warm. The results are at most 8 files (what the device tool brings back),
# summary.txt first. Other knobs: GPU_CHECK_PYTHON (the interpreter to start from), GPU_CHECK_VENV,
# GPU_CHECK_WHEELS, GPU_CHECK_XDIST (test processes), GPU_CHECK_BENCH_ARGS.
set -uo pipefail
set -a  # every variable below reaches the step functions, which run in child shells under `timeout`
cd "$(dirname "$0")/.."
REPO=$(pwd)

QUICK=${GPU_CHECK_QUICK:-0}
[ "${1:-}" = "--quick" ] && QUICK=1
OUTDIR=${OUT:-$REPO/gpu_check_out}
mkdir -p "$OUTDIR"
STEPS=${GPU_CHECK_STEPS:-setup backend smoke probe tests memory bench}
BUDGET=${GPU_CHECK_BUDGET:-480}
SUMMARY=$OUTDIR/summary.txt
LOG=$OUTDIR/gpu_check.log
: > "$SUMMARY"; : > "$LOG"
PYTHONUNBUFFERED=1 WANDB_MODE=disabled RECBENCH_OFFLINE=1 TFDS_DATA_DIR=${TFDS_DATA_DIR:-/tmp/recbench-tfds}
VENV=${GPU_CHECK_VENV:-/tmp/recbench-gpu-venv}
WHEELS=${GPU_CHECK_WHEELS:-$REPO/wheels}
BASE_PY=${GPU_CHECK_PYTHON:-python3}
case $BASE_PY in */*) BASE_PY=$(cd "$(dirname "$BASE_PY")" && pwd)/$(basename "$BASE_PY");; esac  # absolute
SMOKE_OUT=/tmp/recbench-gpu-smoke
if [ "$QUICK" = 1 ]; then
  JAX_PLATFORMS=cpu QUICK_FLAG=--quick SMOKE_STEPS=2 SMOKE_MODELS=blt  # cornet_s: ~100 s for 2 steps on a CPU
  SMOKE_ARGS="trainer.batch_size=8 trainer.eval_batch_size=64 dataset.num_train=256 dataset.num_test=64"
  PYTEST_SEL="tests/models/test_accounting_backends.py" BENCH_ARGS="--help"
else
  QUICK_FLAG="" SMOKE_STEPS=30 SMOKE_MODELS="blt cornet_s" SMOKE_ARGS="" PYTEST_SEL="tests/models tests/train"
  BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:-"--cases blt --rounds 1 --steps 5 --depths 4,16 --eval-depth 16 --timeout 60"}
fi
set +a
START=$SECONDS

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S FUNCTION: run FUNCTION in a child shell under min(LIMIT_S, the budget left), its output into
# the log, and write one summary line. The function reads its own limit from STEP_LIMIT.
step() {
  local name=$1 limit=$2 fn=$3 t0=$SECONDS rc left
  case " $STEPS " in *" $name "*) ;; *) return 0;; esac
  left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 20 ]; then note "$(printf '%-8s skipped: the %ss budget is spent' "$name" "$BUDGET")"; return 0; fi
  [ "$limit" -gt "$((left - 5))" ] && limit=$((left - 5))
  echo "=== $name (limit ${limit}s)" >> "$LOG"
  STEP_LIMIT=$limit timeout --kill-after=10 "$limit" bash -c "$fn" >> "$LOG" 2>&1
  rc=$?
  note "$(printf '%-8s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")$([ $rc = 124 ] && echo "  (stopped at its ${limit}s limit)")"
}

# -- setup: venv, offline wheels, recbench ------------------------------------------------------------------------
# The image's python3 is itself a virtual environment (/opt/torch/.venv), and a venv made from it with
# --system-site-packages sees the *base* interpreter's packages, not that venv's jax and flax. So the new venv also
# gets a .pth file naming the image interpreter's own site-packages: pip there counts those as installed and adds
# only what is missing, from wheels/, into the new venv, which comes first on sys.path.
#
# ready PY: whether PY has recbench installed with its dependencies (asked from /, so that the checkout's own
# recbench/ folder does not answer for an install).
ready() { (cd / && "$1" -c "import recbench, hydra, wandb, tensorflow_datasets") 2>/dev/null; }
setup() {
  if [ "$QUICK" = 1 ] && ready "$BASE_PY"; then
    echo "recbench and its dependencies already import with $BASE_PY: no venv, no pip"; return 0
  fi
  if [ -x "$VENV/bin/python" ] && ready "$VENV/bin/python"; then echo "$VENV is complete: no pip"; return 0; fi
  [ -d "$WHEELS" ] || { echo "setup: no $WHEELS (run scripts/gpu_wheels.sh where PyPI is reachable)"; return 1; }
  "$BASE_PY" -m venv --system-site-packages "$VENV" || return 1
  local site
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
  "$BASE_PY" -c "import site; print('\n'.join(site.getsitepackages()))" > "$site/_gpu_image_site.pth"
  local pip=("$VENV/bin/python" -m pip install --no-index --find-links "$WHEELS" --no-cache-dir --quiet
             --disable-pip-version-check)
  "${pip[@]}" "hydra-core>=1.3.8,<1.4" "wandb==0.31.0" "tensorflow-datasets==4.9.10" "array-record>=0.8.6" \
    "grain>=0.2.18,<0.3" importlib_resources || echo "setup: some wheels did not install (see above)"
  # Editable, no dependencies (the image's jax stays); the build backend (setuptools) comes from wheels/ too.
  "${pip[@]}" --no-deps -e "$REPO" || "${pip[@]}" --no-deps --no-build-isolation -e "$REPO"
}
export -f ready setup
step setup 150 setup
PY=$BASE_PY
if ! { [ "$QUICK" = 1 ] && ready "$BASE_PY"; } && [ -x "$VENV/bin/python" ]; then PY=$VENV/bin/python; fi
PY=$("$PY" -c 'import sys; print(sys.executable)')
export PY PATH="$(dirname "$PY"):$PATH"
note "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
ready "$PY" || note "recbench or one of its dependencies does not import with $PY: the steps below will fail"

# -- backend and recbench-info ------------------------------------------------------------------------------------
backend() {
  "$PY" scripts/gpu_probe.py backend --out "$OUTDIR/backend.json" > /dev/null || return 1
  recbench-info model=blt > "$OUTDIR/info.json"
}
export -f backend
step backend 60 backend
[ -f "$OUTDIR/backend.json" ] && "$PY" - "$OUTDIR/backend.json" >> "$SUMMARY" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"backend  {r['backend']}: {r['device_kind']} x{r['device_count']} | jax {r['jax']}, jaxlib {r['jaxlib']}"
      + "".join(f", {k} {v}" for k, v in r["plugins"].items()))
for w in r["warnings"]:
    print(f"WARNING  {w}")
EOF

# -- smoke: a few steps of blt and cornet_s, every compile logged; blt again, warm --------------------------------
# train NAME MODEL [OVERRIDE...]: one short run into $SMOKE_OUT/NAME, its log in /tmp/recbench-smoke-NAME.log.
train() {
  local name=$1 model=$2; shift 2
  JAX_LOG_COMPILES=1 JAX_EXPLAIN_CACHE_MISSES=1 recbench model=$model trainer.total_steps=$SMOKE_STEPS \
    trainer.eval_every=$((SMOKE_STEPS / 2)) trainer.checkpoint_every=$SMOKE_STEPS trainer.log_every=5 \
    trainer.progress=false logger=disabled "hydra.run.dir=$SMOKE_OUT/$name" paths.output_root=$SMOKE_OUT \
    paths.compile_cache=$SMOKE_OUT/.jax_cache trainer.resume=false $SMOKE_ARGS "$@" \
    > "/tmp/recbench-smoke-$name.log" 2>&1
}
smoke() {
  local rc=0 model
  rm -rf "$SMOKE_OUT"
  for model in $SMOKE_MODELS; do
    echo "--- $model"; train "$model" "$model" || rc=1; tail -3 "/tmp/recbench-smoke-$model.log"
  done
  echo "--- blt, warm (programs from the compilation cache the first run wrote)"
  train blt-warm blt || rc=1; tail -3 /tmp/recbench-smoke-blt-warm.log
  return $rc
}
export -f train smoke
step smoke 150 smoke
# JAX_LOG_COMPILES logs "Compiling jit(NAME) with global shapes and types (...)" for each program it compiles (a
# program loaded from the compilation cache too): the same step twice is a recompilation. JAX_EXPLAIN_CACHE_MISSES
# logs each retrace with its call site.
for model in $SMOKE_MODELS; do
  f=/tmp/recbench-smoke-$model.log
  [ -f "$f" ] || continue
  echo "== $model: $(grep -c "Compiling jit(" "$f") compiles; by program:"
  grep -oE "Compiling jit\([^)]*\)" "$f" | sort | uniq -c | sort -rn | head -12
  echo "-- train and eval step programs (each should compile once, and once more only for a new batch shape):"
  grep -oE "Compiling jit\((step|update|evaluate|train_step|eval_step)\) with .*Argument mapping" "$f" \
    | sort | uniq -c | cut -c1-200
  echo "-- the same program and input types compiled more than once (static arguments are not in the line, so"
  echo "   parameter-init ops such as broadcast_in_dim repeat legitimately; a step here is a recompilation):"
  grep -oE "Compiling jit\(.*Argument mapping" "$f" | sort | uniq -c | awk '$1 > 1' | cut -c1-200
  echo "-- tracing cache misses by call site:"
  grep -oE "TRACING CACHE MISS at [^ ]+ \([^)]*\)" "$f" | sed 's/TRACING CACHE MISS at //' | sort | uniq -c \
    | sort -rn | head -12
  echo "-- run:"
  grep -E "^backend |warning|final accuracy|rror" "$f" | head -8
done > "$OUTDIR/smoke.txt" 2>&1
for name in $SMOKE_MODELS blt-warm; do
  [ -f "$SMOKE_OUT/$name/summary.json" ] && "$PY" - "$SMOKE_OUT/$name/summary.json" "$name" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"smoke    {sys.argv[2]}: first step {s['first_step_s']} s, {s['images_per_s']} img/s, wall {s['wall_time_s']} s, "
      f"final accuracy {s['final_accuracy']:.3f}, {s['device']}")
EOF
done | tee -a "$OUTDIR/smoke.txt" >> "$SUMMARY"

# -- loop vs scan, tests, memory ----------------------------------------------------------------------------------
probe() { "$PY" scripts/gpu_probe.py loop-scan $QUICK_FLAG --out "$OUTDIR/loop_scan.json" > /dev/null; }
tests() {
  local xdist=""
  # Several test processes share the one GPU: none may take most of its memory up front (PREALLOCATE=false).
  if [ "$QUICK" != 1 ] && "$PY" -c "import xdist" 2>/dev/null; then xdist="-n ${GPU_CHECK_XDIST:-6}"; fi
  # tests/conftest.py defaults JAX_PLATFORMS to cpu; on the GPU machine the accelerator is named explicitly, with
  # the CPU beside it as in a default JAX process (FLOPs are counted on the CPU backend).
  JAX_PLATFORMS=${JAX_PLATFORMS:-cuda,cpu} XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_DEFAULT_MATMUL_PRECISION=highest \
    "$PY" -m pytest -q -p no:cacheprovider $xdist $PYTEST_SEL > "$OUTDIR/pytest.log" 2>&1
  local rc=$?
  tail -15 "$OUTDIR/pytest.log"
  return $rc
}
memory() {
  "$PY" scripts/gpu_probe.py memory $QUICK_FLAG --budget $((STEP_LIMIT - 10)) --out "$OUTDIR/memory.json" > /dev/null
}
export -f probe tests memory
step probe 150 probe
step tests 180 tests
step memory 200 memory
for f in loop_scan memory; do
  [ -f "$OUTDIR/$f.json" ] && "$PY" - "$OUTDIR/$f.json" >> "$SUMMARY" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for name, r in d.get("models", {}).items():
    print(f"probe    {name}: logits equal {r['logits_equal']} (max diff {r['max_abs_logit_diff']:.1e}); "
          + "; ".join(f"{s} first step {r[s]['first_step_s']} s, {r[s]['images_per_s']} img/s" for s in ("loop", "scan")))
for r in d.get("rows", []):
    peak = r.get("peak_bytes_in_use")
    what = r.get("error") or r.get("skipped") or ("peak n/a" if peak is None else f"peak {peak / 2**30:.2f} GiB")
    print(f"memory   {r['model']} {r['variant']} batch {r['batch']}: {what}")
EOF
done

# -- recbench-bench, once it exists -------------------------------------------------------------------------------
bench() {
  if ! command -v recbench-bench > /dev/null || ! "$PY" -c "import recbench.bench.cli" 2>/dev/null; then
    echo "recbench-bench is not installed here: skipped"; return 0
  fi
  recbench-bench $BENCH_ARGS
}
export -f bench
step bench 90 bench

note "total    $((SECONDS - START))s; results in $OUTDIR: $(cd "$OUTDIR" && ls | tr '\n' ' ')"
