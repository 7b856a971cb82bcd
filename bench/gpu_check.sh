#!/usr/bin/env bash
# The focal loss on an NVIDIA GPU, in a few minutes: the CUDA tests, then the GPU benchmark, which writes
# bench/results_cuda.json (re-executing nbs/01d_engine.ipynb afterwards shows it as the CUDA table).
#
#   bash bench/gpu_check.sh --prepare   # here, once: .gpu/ gets AutoMM's focal_loss.py (for machines without AutoGluon)
#   bash bench/gpu_check.sh             # on the GPU machine, from the repository root (with .gpu/ beside it, if prepared)
#
# PYTHON=... picks the interpreter (default: .venv/bin/python if there, else python3); if OUT is set, the results
# file is copied there too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  src=$(.venv/bin/python -c "import importlib.metadata as m; print(m.distribution('autogluon.multimodal').locate_file('autogluon/multimodal/optim/losses/focal_loss.py'))")
  mkdir -p .gpu/autogluon/multimodal/optim/losses
  for d in autogluon autogluon/multimodal autogluon/multimodal/optim autogluon/multimodal/optim/losses; do : > ".gpu/$d/__init__.py"; done
  cp "$src" .gpu/autogluon/multimodal/optim/losses/focal_loss.py
  grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  echo "prepared .gpu/ (carry it to the GPU machine)"; exit 0
fi
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$PY" -c "import autogluon.multimodal" 2>/dev/null || export PYTHONPATH="$PWD/.gpu:${PYTHONPATH:-}"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'triton', triton.__version__)"
status=0
timeout 360 "$PY" -m pytest tests/test_losses_cuda.py -m cuda -q -p no:cacheprovider -rs || status=$?
timeout 200 "$PY" bench/focal_bench.py --preset gpu --repeats 11 --no-sigmoid --save || status=$?
if [ -n "${OUT:-}" ] && [ -f bench/results_cuda.json ]; then cp bench/results_cuda.json "$OUT"/; fi
exit $status
