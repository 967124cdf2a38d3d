#!/usr/bin/env bash
# GPU check of minimace: one table (ok / fail / skip, each with its reason), at most ~5 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh            # on a machine with a CUDA GPU: writes benchmarks/results_gpu.md
#   bash benchmarks/gpu_check.sh --dry-run  # the CPU dry-run (what runs on a machine without a GPU)
#
# Rows: the `cuda`-marked tests on the device (model, forces, stress, training step, checkpoint round trip,
# equivariance in float32/float64), energy + forces of minimace vs mace-torch on ethanol and a 3000-atom water
# box (float32, float64; mace-torch's cuequivariance where it imports), training steps per second, fixed vs
# edge-budget batches, a 1-process torchrun (NCCL) from shards, peak GPU memory. Installs nothing.
#
# Pythons (found in this order): $PYTHON, .venv/bin/python, python3 — needs the repo's dependencies
# (pip install -e ".[dev]", or the packages on PYTHONPATH). $MACE_PYTHON, .venv-mace/bin/python, or $PYTHON
# when mace-torch imports there — for the comparison rows, which are skipped (with the reason) without it.
# Exit status: 0 when no row failed (on a machine without a GPU: after its CPU dry-run), 1 otherwise.
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"

PY="${PYTHON:-}"
[ -z "$PY" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
[ -z "$PY" ] && PY=python3
MPY="${MACE_PYTHON:-}"
[ -z "$MPY" ] && [ -x .venv-mace/bin/python ] && MPY=.venv-mace/bin/python
[ -z "$MPY" ] && "$PY" -c "import mace" 2>/dev/null && MPY="$PY"

if ! "$PY" -c "import torch, ase, vesin, minimace" 2>/dev/null; then
    echo "gpu_check: $PY cannot import torch, ase, vesin and minimace; install the repo (pip install -e '.[dev]')" >&2
    exit 2
fi

GPU=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
if [ "${1:-}" = "--dry-run" ] || [ "$GPU" != 1 ]; then
    [ "$GPU" != 1 ] && echo "gpu_check: no GPU here (torch.cuda.is_available() is False): CPU dry-run on small sizes"
    exec "$PY" benchmarks/gpu_check.py --device cpu --dry-run ${MPY:+--mace-python "$MPY"}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PY" benchmarks/gpu_check.py --device cuda ${MPY:+--mace-python "$MPY"} --out benchmarks/results_gpu.md
