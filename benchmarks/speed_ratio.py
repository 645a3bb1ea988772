"""The training step's speed against a plain batched RAM, both measured in one run.

    python benchmarks/speed_ratio.py PLAIN_RAM_PY [--rounds 3] [--out FILE.json]

PLAIN_RAM_PY is a plain batched RAM trainer that prints "epoch 1 ...s (N img/s)" when run
as ``python PLAIN_RAM_PY DATA --epochs 1 --bs B --bench-only``. The rounds interleave it
with ``benchmarks/throughput.py`` (float32, then --bf16), so all three see the machine in the
same minutes; the ratios are of the medians. Run it with the machine otherwise idle.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reproduce import git_commit  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ours(batch: int, threads: int, steps: int, bf16: bool, device: str) -> dict:
    cmd = [sys.executable, str(HERE / "throughput.py"), "--batch_size", str(batch), "--threads", str(threads),
           "--steps", str(steps), "--device", device] + (["--bf16"] if bf16 else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def plain(script: str, data: str, batch: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, script, data, "--epochs", "1", "--bs", str(batch), "--bench-only"],
                         check=True, capture_output=True, text=True, env=env).stdout
    return float(re.search(r"epoch 1 [\d.]+s \((\d+) img/s\)", out).group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plain_ram", help="path of the plain batched trainer")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--note", default="", help="what else ran on the machine")
    p.add_argument("--out", default="")
    a = p.parse_args()
    runs = {"float32": [], "bf16": [], "plain": []}
    for _ in range(a.rounds):
        runs["float32"].append(ours(a.batch_size, a.threads, a.steps, False, a.device))
        runs["bf16"].append(ours(a.batch_size, a.threads, a.steps, True, a.device))
        runs["plain"].append(plain(a.plain_ram, a.data_dir, a.batch_size, a.threads))
    med = lambda xs: statistics.median(xs)  # noqa: E731
    train = {k: [r["train_images_per_s"] for r in runs[k]] for k in ("float32", "bf16")}
    evals = {k: [r["eval_images_per_s"] for r in runs[k]] for k in ("float32", "bf16")}
    result = {
        "what": "training images/s (MNIST, 6 glimpses of 8x8) and evaluation images/s, medians of interleaved rounds",
        "batch_size": a.batch_size, "threads": a.threads, "rounds": a.rounds, "device": a.device,
        "train_images_per_s": {**{k: med(v) for k, v in train.items()}, "plain": med(runs["plain"])},
        "eval_images_per_s": {k: med(v) for k, v in evals.items()},
        "ratio_to_plain": {k: round(med(v) / med(runs["plain"]), 2) for k, v in train.items()},
        "each_round": {"train": train, "eval": evals, "plain": runs["plain"]},
        "commit": git_commit(), "cpu": cpu_model(), "torch": torch.__version__,
        "platform": platform.platform(), "note": a.note,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
