#!/usr/bin/env bash
# Set up rlreg in ./.venv.   Usage: bash scripts/setup.sh [dev]
#
# - Creates .venv with python3 (>= 3.10) unless it exists.
# - torch: a torch the calling Python already has is kept (the venv then sees it through
#   --system-site-packages); otherwise a CUDA build where an NVIDIA GPU is visible, and the CPU
#   build (torch==2.13.0, or $RLREG_TORCH_SPEC) elsewhere, so CPU machines and CI stay small and fast.
# - Installs rlreg editable with the mujoco extra (main job) or the dev extra (tests, benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
extra="mujoco"
[ "${1:-}" = "dev" ] && extra="dev"
pip_install() {  # quiet pip; drops this machine's harmless "Location ... is ignored" index warnings
  "$VPY" -m pip install -q --disable-pip-version-check --progress-bar off "$@" 2> >(grep -v "^WARNING: Location" >&2)
}

VPY=.venv/bin/python
if [ ! -x "$VPY" ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "setup: keeping the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing torch with CUDA"
    pip_install "${RLREG_TORCH_SPEC:-torch}"
  else
    echo "setup: no GPU, installing the CPU build of torch"
    pip_install "${RLREG_TORCH_SPEC:-torch==2.13.0}"
  fi
fi
echo "setup: installing rlreg[$extra]"
pip_install -e ".[$extra]"
echo "setup: done ($("$VPY" -c 'import torch, rlreg; print("rlreg", rlreg.__version__, "torch", torch.__version__)'))"
