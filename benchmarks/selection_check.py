"""Does validation choose well? The checkpoint validation chose (``*_best.pth``) against the
last epoch's (``*_latest.pth``), both judged on fresh canvases of the validation digits.

A run keeps the epoch whose validation error was lowest. With 6,000 validation images and
200 epochs that minimum is partly luck: its own images cannot say whether the chosen
weights are better or merely drew a lucky reading. For the generated data sets
(translated, cluttered) the held-out validation digits can be placed anew: the same
digits, never trained on, at new positions with new clutter, which the choice never saw.
Neither the test set nor the training digits are read. MNIST and Fashion-MNIST have no
such second draw, so their runs are skipped.

    python benchmarks/selection_check.py runs/tta/translated_ram8_recipe/seed* --draws 5

prints one JSON line per run: the error of each checkpoint on each fresh draw, their means,
and both checkpoints' epochs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ram.data import mnist, resolve_variant, variants  # noqa: E402
from ram.errors import RamError  # noqa: E402
from ram.model import load_model  # noqa: E402
from ram.training.evaluation import evaluate  # noqa: E402

FRESH_SEEDS = 1000  # the draws use seeds 1001, 1002, ...: never the validation set's or the test set's


def fresh_validation(config, draws: int):
    """``draws`` new renderings of the run's validation digits (uint8 images, labels)."""
    variant = resolve_variant(config)
    if variant is None or variant.plain:
        return None
    images, labels = mnist.load_dataset("mnist", config.data_dir, train=True, download=False)
    _, valid_idx = mnist.train_valid_split(len(labels), config.valid_size, config.valid_split_seed())
    return [variants.fixed_set(images[valid_idx], labels[valid_idx], variant, FRESH_SEEDS + d)
            for d in range(1, draws + 1)]


def check(run_dir: Path, draws: int) -> dict | None:
    best, latest = sorted(run_dir.glob("*_best.pth")), sorted(run_dir.glob("*_latest.pth"))
    if len(best) != 1 or len(latest) != 1:
        raise RamError(f"{run_dir} holds no single *_best.pth and *_latest.pth; pass a run's folder")
    models = {which: load_model(path[0]) for which, path in (("chosen", best), ("last", latest))}
    config = models["last"][1]
    sets = fresh_validation(config, draws)
    if sets is None:
        print(f"skipping {run_dir}: {config.dataset} has no fresh draw of its validation digits", file=sys.stderr)
        return None
    result = {"run": str(run_dir), "dataset": config.dataset, "num_glimpses": config.num_glimpses,
              "seed": config.seed, "split_seed": config.split_seed, "draws": draws}
    for which, (model, _, ckpt) in models.items():
        errors = [round(100 * (1 - evaluate(model, x, y)), 3) for x, y in sets]
        result[which] = {"epoch": ckpt["epoch"], "error_percent": errors,
                         "mean_error_percent": round(sum(errors) / len(errors), 3)}
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders, each with one *_best.pth and *_latest.pth")
    p.add_argument("--draws", type=int, default=5, help="fresh renderings of the validation digits")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        for run in args.runs:
            result = check(run, args.draws)
            if result:
                print(json.dumps(result), flush=True)
    except RamError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
