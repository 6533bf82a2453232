#!/usr/bin/env bash
# The GPU batch (issue 17): one prepared run on a lent GPU machine, through the device tool.
#
#   bash bench/gpu/prepare.sh                   # here, first: the missing wheels into .whl/, the photos into .gpu-data/
#   device run "bash bench/gpu/run.sh", carry [".whl", ".gpu-data"], timeout_s 600
#   bash bench/gpu/run.sh --dry-run             # the same steps on CPU at tiny sizes (tests/test_gpu_batch.py runs it)
#
# The steps, their time caps and the files written under $OUT are in bench/gpu/batch.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 RAY_ADDRESS=local OMP_WAIT_POLICY=PASSIVE
if [[ ${1:-} == --dry-run ]]; then
  exec "${PYTHON:-.venv/bin/python}" bench/gpu/batch.py --dry-run
fi
# The GPU machine's python holds torch, torchvision, timm, pandas, scipy, statsmodels, onnxruntime, ...; what it lacks
# travels as wheels, and the workbench runs from this working tree.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
exec python3 bench/gpu/batch.py
