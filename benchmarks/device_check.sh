#!/usr/bin/env bash
# Every GPU measurement of the README's Speed section in one call of under 10 minutes:
# throughput at batch 128 (both glimpse loops) and 512, then a short timed MNIST training
# whose curve shows that the GPU path learns as the CPU path does.
#
#   bash benchmarks/device_check.sh [OUT_DIR]      (default: benchmarks/measurements/gpu)
#
# Needs torch with CUDA, numpy, tqdm, matplotlib and pillow; the package is read from
# src/, so nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/measurements/gpu}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"

for args in "--batch_size 128" "--batch_size 128 --autograd_loop" "--batch_size 512"; do
    timeout 120 python benchmarks/throughput.py --device cuda --steps 500 $args | tee -a "$out/throughput.jsonl"
done

# 20 epochs of MNIST's preset: the time per epoch, and a curve to hold against the CPU's.
timeout 300 python scripts/train_mnist.py --device cuda --num_epochs 20 --seed 1 --no_progress \
    --save_dir "$out/run" --log_dir "$out" --plot_dir "$out" | tail -n 25
