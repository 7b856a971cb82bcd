#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (a few minutes): the CUDA tests of the focal loss, then the GPU benchmark,
# which writes bench/results_cuda.json; re-executing nbs/01_losses.ipynb afterwards shows it as the CUDA table.
#   bash bench/gpu_check.sh            (PYTHON=... to use another interpreter; OUT=dir also gets a copy of the results)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1
"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'triton', triton.__version__)"
status=0
timeout 360 "$PY" -m pytest tests/test_losses_cuda.py -m cuda -q -p no:cacheprovider || status=$?
timeout 200 "$PY" bench/focal_bench.py --preset gpu --repeats 11 --save || status=$?
if [ -n "${OUT:-}" ] && [ -f bench/results_cuda.json ]; then cp bench/results_cuda.json "$OUT"/; fi
exit $status
