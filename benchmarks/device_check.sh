#!/usr/bin/env bash
# Every GPU figure of docs/speed.md in one call of under 10 minutes, for the moment a GPU
# is at hand: what the GPU is, the training step's throughput (eager and compiled, float32
# and bfloat16, batch 128 and 512), then the time to accuracy of MNIST's recipe (one seed,
# target 1.2% validation error) with its curve.
#
#   bash benchmarks/device_check.sh [OUT_DIR]      (default: $OUT, else benchmarks/measurements/gpu)
#
# Needs torch with CUDA, numpy, tqdm, matplotlib and pillow; the package is read from src/,
# so nothing is installed. Each step has its own time limit and a failed step does not stop
# the others, so one call always brings back every figure it could take.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/measurements/gpu}}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    | tee -a "$out/gpu.txt"
git rev-parse HEAD 2>/dev/null | tee -a "$out/gpu.txt"

# Throughput: about 20 s each eager; compiling adds a minute or so of warm-up.
for args in "" "--bf16" "--compile" "--compile --bf16" "--batch_size 512 --bf16" "--batch_size 512 --compile --bf16"; do
    timeout 150 $py benchmarks/throughput.py --device cuda --steps 500 --warmup 30 $args \
        | tee -a "$out/throughput.jsonl" || echo "throughput $args: failed or timed out" | tee -a "$out/errors.txt"
done

# Time to accuracy: ram-train's MNIST recipe, one seed, capped at four minutes of training.
timeout 300 $py benchmarks/time_to_accuracy.py --seeds 1 --target 1.2 --name mnist_gpu \
    --out "$out/tta_mnist_gpu.json" --plot "$out/tta_mnist_gpu.png" --note "H100/H200, nothing else running" \
    -- --dataset mnist --device cuda --compile --num_epochs 200 \
    2>&1 | tail -n 40 || echo "time to accuracy: failed or timed out" | tee -a "$out/errors.txt"
