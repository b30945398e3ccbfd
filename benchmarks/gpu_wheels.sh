#!/usr/bin/env bash
# Build the wheelhouse that benchmarks/gpu_run.sh installs on a GPU machine, which cannot fetch
# anything. That machine's image has Python 3.12 with torch, scipy, matplotlib, scikit-learn,
# sympy, jinja2, cython, h5py, six and nvidia-curand, but not these (and numpy 2.5, which Brian2
# 2.8 cannot use: numpy 2.2.6 is installed over it in the venv). Run here, with network access:
#   bash benchmarks/gpu_wheels.sh            # -> build/gpu-wheels (git-ignored, about 22 MB)
# then name build/gpu-wheels in the device run's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build/gpu-wheels}
pip=${PIP:-.venv/bin/pip}
mkdir -p "$dest"
"$pip" download -q --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
    --abi cp312 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dest" \
    brian2==2.8.0 brian2cuda==1.0a7 numpy==2.2.6 neo==0.14.6 quantities==0.16.4 \
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    tomli_w==1.2.0
# nixio has no wheel on PyPI and its sdist is 29 MB (test data): build the pure-Python wheel here
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$pip" download -q --no-deps --no-binary=:all: -d "$tmp" nixio==1.5.4
"$pip" wheel -q --no-deps --no-build-isolation -w "$dest" "$tmp"/nixio-1.5.4.tar.gz
du -sh "$dest"
