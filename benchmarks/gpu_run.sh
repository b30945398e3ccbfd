#!/usr/bin/env bash
# Everything issue 7 runs on a GPU machine, as ONE command (the device tool: repo root, $OUT
# collected, 600 s at most). Needs build/gpu-wheels (benchmarks/gpu_wheels.sh) carried along.
#   bash benchmarks/gpu_run.sh [all|bench|digits|tests]     (default: all = bench then digits)
# Run here first: bash benchmarks/gpu_wheels.sh. Time budget: BUDGET_S (default 570) in all; the
# benchmark gets BENCH_S (default 330) of it, the digits comparison what is left. Results and logs
# go to $OUT (default results/gpu-run). BENCH_ARGS and DIGITS_ARGS add options to the scripts.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${OUT:-results/gpu-run}
mkdir -p "$out"
budget=${BUDGET_S:-570}
SECONDS=0
exec > >(tee -a "$out/gpu_run.log") 2>&1
nvidia-smi -L || echo "nvidia-smi failed"
# The image's python3 (itself a venv holding torch, scipy, matplotlib, scikit-learn, sympy,
# cython, h5py, nvidia-curand) gets what it lacks from the carried wheels, offline, in a folder
# put first on PYTHONPATH (numpy 2.2.6 there shadows the image's numpy 2.5, which Brian2 2.8
# cannot use). A venv of its own would not see the image's packages.
py=${PYTHON:-python3}
site=build/gpu-site
if [ ! -f "$site/.complete" ]; then
    rm -rf "$site"
    "$py" -m pip install -q --no-index --no-deps --target "$site" build/gpu-wheels/*.whl || exit 1
    touch "$site/.complete"
fi
export PYTHONPATH="$PWD/$site${PYTHONPATH:+:$PYTHONPATH}"
echo "setup done after ${SECONDS} s"
# fail early if a module the runs import is missing (the wheels must cover new imports)
"$py" -c "import brian2, brian2cuda, numpy, torch, neurosim.cli, benchmarks.gpu_cases
import protocols.feedback_cancellation, protocols.equilibrium_propagation
print('brian2', brian2.__version__, 'brian2cuda', brian2cuda.__version__, 'numpy',
      numpy.__version__, 'torch', torch.__version__)" || exit 1
export OMP_NUM_THREADS=1
if [ "$what" = all ] || [ "$what" = bench ]; then
    bench=${BENCH_S:-330}
    left=$((budget - SECONDS - 10))
    [ "$what" = bench ] && bench=$left
    [ "$bench" -gt "$left" ] && bench=$left
    "$py" benchmarks/gpu.py --out "$out" --budget-s "$bench" ${BENCH_ARGS:-}
fi
if [ "$what" = all ] || [ "$what" = digits ]; then
    left=$((budget - SECONDS - 10))
    if [ "$left" -gt 60 ]; then
        # the runs' folders stay outside $OUT (the device tool brings back few files)
        "$py" benchmarks/gpu_digits.py --out /tmp/gpu-digits --budget-s "$left" ${DIGITS_ARGS:-}
        cp /tmp/gpu-digits/gpu_digits.json "$out/" 2>/dev/null
    else
        echo "digits comparison not run: ${left} s left"
    fi
fi
if [ "$what" = tests ]; then
    left=$((budget - SECONDS - 10))
    timeout "$left" "$py" -m pytest -q -p no:cacheprovider tests/test_gpu.py \
        -m "not slow" 2>&1 | tail -30
fi
echo "gpu_run.sh done after ${SECONDS} s"
