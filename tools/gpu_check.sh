#!/usr/bin/env bash
# The GPU checks (tests/gpu) on a bare CUDA machine whose Python has torch but not the project's other packages.
#
# Usage, from the repo root on the GPU machine: `bash tools/gpu_check.sh [pytest args]`. Wheels for what the image
# lacks are taken from .whl/ when present (downloaded on a machine with an index; the list is in docs/gpu.md). On
# the project's trainer image nothing is installed and the tests run as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/workloads:$PWD/operator:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 - <<'PY'
import importlib.metadata as md
for name in ("torch", "transformers", "trl", "datasets", "deepspeed", "accelerate", "pyarrow", "pydantic"):
    try:
        print(f"{name}=={md.version(name)}", end="  ")
    except md.PackageNotFoundError:
        print(f"{name} MISSING", end="  ")
print()
PY
exec python3 -m pytest -p no:cacheprovider -m gpu tests/gpu -v -s -rA "$@"
