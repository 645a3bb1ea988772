"""Training and evaluation throughput (images/s) of one configuration, printed as JSON.

    python benchmarks/throughput.py --dataset mnist --num_glimpses 6 --batch_size 128
    torchrun --standalone --nproc_per_node 2 benchmarks/throughput.py --batch_size 64

Under torchrun each process trains on its own shard with DistributedDataParallel, as the
trainer does; the figure printed (by rank 0) is the global images/s (all processes).

Training covers the whole step as the trainer runs it: drawing the batch (variants are
generated on the device), forward, hybrid loss, backward, optimizer step. Evaluation is
the deterministic policy's forward pass over the test set. Warm-up steps are excluded.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import ram.model.ram  # noqa: E402
from ram.training import distributed  # noqa: E402
from reproduce import git_commit  # noqa: E402  (this folder is on the path when run as a script)
from ram.config import Config  # noqa: E402
from ram.data import build_data, to_float  # noqa: E402
from ram.model import build_model, hybrid_loss  # noqa: E402
from ram.training import build_optimizer, epoch_generator, pick_device  # noqa: E402
from ram.training.trainer import compile_step, step_loss  # noqa: E402
from ram.model.unroll import unroll_autograd  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--num_glimpses", type=int, default=6)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--device", default="")
    p.add_argument("--data_dir", default="./data")
    p.add_argument("--steps", type=int, default=200, help="timed training steps")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--eval_batch_size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    p.add_argument("--compile", action="store_true",
                   help="the forward pass and loss under torch.compile, as ram-train --compile (warm-up compiles)")
    p.add_argument("--bf16", action="store_true", help="the glimpse and core products in bfloat16 (ram-train --bf16)")
    p.add_argument("--step", choices=("paper", "config"), default="paper",
                   help="paper: the paper's hybrid loss on one sampled path, the step plain implementations "
                        "take (the speed ratio's); config: the loss the data set's preset trains, e.g. "
                        "MNIST's self-critical recipe with its mean path (ram-train's own step)")
    p.add_argument("--autograd_loop", action="store_true",
                   help="time the plain glimpse loop differentiated by autograd (unroll.unroll_autograd) "
                        "instead of the hand-written backward, for comparison")
    args = p.parse_args()
    if args.autograd_loop:
        # what RecurrentAttention calls; without autocast, so the products run in float32 even with --bf16
        ram.model.ram.unroll = lambda *a, bf16, copies, last_only: unroll_autograd(*a, copies, last_only)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dist = distributed.init_from_env(device.type)
    device = distributed.local_device(device, dist)
    config = Config.for_dataset(args.dataset, num_glimpses=args.num_glimpses, batch_size=args.batch_size,
                                data_dir=args.data_dir, device=str(device),
                                precision="bf16" if args.bf16 else "fp32")
    torch.manual_seed(0)
    data = build_data(config, device)
    model = build_model(config).to(device)
    optimizer, _ = build_optimizer(config, model)
    net = distributed.wrap(model, dist)

    def batches():
        epoch = 0
        while True:
            yield from data.train_batches(args.batch_size, epoch_generator(config, epoch, device),
                                          dist.rank, dist.world_size)
            epoch += 1

    def loss_fn(x, y):
        if args.step == "config":
            return step_loss(config, model, net, x, y)[0]
        return hybrid_loss(net(x), y, config.reinforce_weight, config.reward)[0]

    if args.compile:
        loss_fn = compile_step(loss_fn, device)
    stream = batches()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            start = time.perf_counter()
        x, y = next(stream)
        loss = loss_fn(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    train_ips = args.steps * args.batch_size * dist.world_size / (time.perf_counter() - start)

    model.eval()
    with torch.no_grad():
        x = to_float(data.test_x[:args.eval_batch_size])
        model.predict_proba(x)
        n, start = 0, time.perf_counter()
        for i in range(0, len(data.test_y), args.eval_batch_size):
            model.predict_proba(to_float(data.test_x[i:i + args.eval_batch_size]))
            n += len(data.test_y[i:i + args.eval_batch_size])
        sync(device)
        eval_ips = n / (time.perf_counter() - start)

    if not dist.is_main:
        distributed.cleanup(dist)
        return
    print(json.dumps({
        "dataset": args.dataset, "num_glimpses": args.num_glimpses, "batch_size": args.batch_size,
        "processes": dist.world_size, "global_batch_size": args.batch_size * dist.world_size,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "commit": git_commit(),
        "loop": "autograd" if args.autograd_loop else "default", "step": args.step, "bf16": args.bf16, "compile": args.compile,
        "train_images_per_s": round(train_ips), "eval_images_per_s": round(eval_ips),
    }))
    distributed.cleanup(dist)


if __name__ == "__main__":
    main()
