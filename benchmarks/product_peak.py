"""What the machine's matrix products reach at the model's own shapes, printed as JSON.

    python benchmarks/product_peak.py --threads 2

Evaluation spends most of its time in the glimpse and core networks' products (a batch of
1,000 images: 1000 x 512 x 256 for the core, 1000 x 256 x 256 for f_g). This times
``torch.addmm`` alone at those shapes, in bfloat16 and float32, and counts the FLOP of the
products of one evaluated image of the MNIST preset, so that an evaluation rate can be
read as a fraction of what the products alone allow: images/s x FLOP per image against
the products' GFLOP/s (docs/speed.md, "What bounds evaluation").
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from ram.config import Config
from ram.model import build_model


def mnist_eval_flop_per_image(model: torch.nn.Module, batch: int = 8) -> float:
    """The FLOP of the products one 28x28 image's evaluation (``predict_proba``) runs with
    the MNIST preset's ``model``, as PyTorch's own counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch, 1, 28, 28)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.predict_proba(x)
    return counter.get_total_flops() / batch


def peak(rows: int, k: int, n: int, dtype: torch.dtype, calls: int, repeats: int) -> float:
    """Best GFLOP/s of ``repeats`` timings of ``calls`` addmm (rows x k) @ (k x n)."""
    a, b, bias = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.randn(n, dtype=dtype)
    for _ in range(20):
        torch.addmm(bias, a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            torch.addmm(bias, a, b)
        best = max(best, 2 * rows * k * n * calls / (time.perf_counter() - start) / 1e9)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    p.add_argument("--rows", type=int, default=1000, help="the evaluation batch")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(Config.for_dataset("mnist")).eval()
    # (in, out) of the two large products, read from the model rather than restated
    shapes = {name: (fc.in_features, fc.out_features)
              for name, fc in (("core f_h", model.core.fc_h), ("glimpse f_g", model.glimpse_net.fc_g))}
    gflops = {str(dtype).removeprefix("torch."): {name: round(peak(args.rows, k, n, dtype, args.calls, args.repeats))
                                                   for name, (k, n) in shapes.items()}
              for dtype in (torch.bfloat16, torch.float32)}
    print(json.dumps({"what": "best GFLOP/s of torch.addmm at the evaluation's shapes", "rows": args.rows,
                      "gflop_per_s": gflops, "mnist_eval_flop_per_image": mnist_eval_flop_per_image(model),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
