#!/usr/bin/env bash
# One prepared run on a GPU machine (issue 13): the CUDA checks, then the GPU overhead benchmark.
#
#   bash scripts/gpu_check.sh               # on the GPU machine, from the repository root
#   bash scripts/gpu_check.sh --cpu-smoke   # anywhere: the same steps on CPU with tiny sizes
#
# Wheels for what the machine lacks (libcst, torchviz, graphviz) are taken from .whl/ if present. Logs and
# JSON go to $OUT (default /tmp/gpu_check_out), at most 4 files:
#   gpu_check.log          everything printed (environment, checks, benchmark table)
#   check_cuda.json        every check: name, PASS/FAIL/SKIP, seconds, details
#   trace_gr001_cuda.json  one CUDA trace report (save_json of the GR001 scenario)
#   bench_gpu.json         the benchmark's figures per model and configuration
# Each part runs under `timeout`, so the whole script ends within about 6.5 minutes; a part that fails or
# times out does not stop the next (the per-op part, the CPU-side cost per torch call on this host, does not
# change the exit status). Exit status: 1 if a check failed or a part timed out/crashed.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=""
[ "${1:-}" = "--cpu-smoke" ] && SMOKE="--cpu-smoke"
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

log() { echo "$@" | tee -a "$LOG"; }
T0=$(date +%s)

if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    2>&1 | tee -a "$LOG"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  log "no .whl/ folder: libcst, torchviz and graphviz must already be installed"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

log "== environment ($(date -u +%FT%TZ))"
{ nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"; } | tee -a "$LOG"
timeout 60 "$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, platform, shutil
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cuda available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"card: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
          f"capability {p.major}.{p.minor}")
for m in ("gradlint", "libcst", "torchviz", "graphviz", "click", "torchvision", "numpy"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '?')} from {mod.__file__}")
    except Exception as e:
        print(f"  {m}: NOT importable ({type(e).__name__}: {e})")
print(f"  graphviz dot binary: {shutil.which('dot')}")
import gradlint
print(f"  gradlint.trace: {gradlint.trace}")
EOF

RC=0
log ""
log "== 1. CUDA checks (tests/gpu/check_cuda.py), limit 110 s"
timeout -k 5 110 "$PY" tests/gpu/check_cuda.py $SMOKE --json "$OUT/check_cuda.json" \
  --example-json "$OUT/trace_gr001_cuda.json" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
log "check_cuda.py exit status $rc$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
[ "$rc" = 0 ] || RC=1

log ""
log "== 2. overhead benchmark (benchmarks/bench_gpu.py), limit 200 s"
timeout -k 5 200 "$PY" benchmarks/bench_gpu.py $SMOKE --budget-s 140 --json "$OUT/bench_gpu.json" 2>&1 \
  | grep -v 'SyncActivityProfilerHandler\|Memory block of unknown size' | tee -a "$LOG"
rc=${PIPESTATUS[0]}
log "bench_gpu.py exit status $rc$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
[ "$rc" = 0 ] || RC=1

log ""
log "== 3. per-op cost on this host's CPU (benchmarks/bench_tracer.py --per-op), limit 60 s"
timeout -k 5 60 "$PY" benchmarks/bench_tracer.py --per-op --clock process --steps 20 --rounds 5 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
log "bench_tracer.py --per-op exit status $rc$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"

log ""
log "== done in $(($(date +%s) - T0)) s, exit $RC; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $RC
