#!/usr/bin/env bash
# GPU check of the bioheat engine (issue 18), for a machine with an NVIDIA GPU; < 10 min.
#
#   bench/gpu_check.sh            # results under $OUT if set, else bench/results
#
# 1. lists the GPUs (nvidia-smi -L);
# 2. checks that ioplan and numba import (else tries `pip install --no-index -e .`, which
#    uses only a local wheel cache or find-links, never the network); exit 2 if not;
# 3. runs tests/physics/test_physics_gpu.py's device tests: the GPU kernels against the CPU
#    kernels on the device (float64 and float32 runs through every path; the simulator's
#    runs of the same tests are part of the ordinary suite);
# 4. runs `bench/engine.py --gpu-only` (kernel time of the 10-min, 128^3, 1 mm microwave
#    ablation; bandwidth fraction; zone against the CPU; then whole `simulate` runs on the
#    CPU and the GPU side by side), or bench/_gpu.py directly if engine.py does not run.
# Python: $PYTHON, else python3 where there is no `python`.
# Exit status: 0 all passed, 1 a test or benchmark failed, 2 nothing could be imported.
set -u
cd "$(dirname "$0")/.."
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
unset NUMBA_ENABLE_CUDASIM
status=0
PY="${PYTHON:-python}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L
else
    echo "nvidia-smi: not found"
fi

if ! "$PY" -c "import ioplan, numba.cuda" 2>/dev/null; then
    "$PY" -m pip install --no-index --quiet -e . >/dev/null 2>&1
    if ! reason=$("$PY" -c "import ioplan, numba.cuda" 2>&1); then
        echo "gpu_check: cannot import ioplan and numba (no network install):" \
            "$(printf '%s' "$reason" | tail -n 1)"
        exit 2
    fi
fi
"$PY" -c "import sys; sys.path.insert(0, 'bench'); import _gpu; \
print('gpu_available:', _gpu.gpu_available() or 'yes')"

echo "== tests/physics/test_physics_gpu.py"
timeout 240 "$PY" -m pytest -p no:cacheprovider -q -rs --durations=0 -k device -n0 \
    tests/physics/test_physics_gpu.py \
    2>&1 | tee "$RESULTS/gpu_tests.txt" | tail -n 25
test_rc=${PIPESTATUS[0]}
[ "$test_rc" -eq 0 ] || { echo "gpu_check: tests failed (rc $test_rc)"; status=1; }

echo "== bench/engine.py --gpu-only"
if ! timeout 300 "$PY" bench/engine.py --gpu-only --out "$RESULTS/engine_gpu.json"; then
    echo "gpu_check: bench/engine.py --gpu-only failed; running bench/_gpu.py directly"
    timeout 120 "$PY" - "$RESULTS/gpu_direct.json" <<'EOF' || status=1
import json
import sys

sys.path.insert(0, "bench")
import _gpu

res = {
    "gpu_available": _gpu.gpu_available(),
    "device_bandwidth_bytes_per_s": _gpu.device_bandwidth_bytes_per_s(),
    "mw_ablation": _gpu.gpu_mw_ablation(),
}
with open(sys.argv[1], "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps(res, indent=1))
EOF
fi
echo "gpu_check: results in $RESULTS (status $status)"
exit "$status"
