"""Does validation choose well? The checkpoint validation chose (``*_best.pth``) against the
last epoch's (``*_latest.pth``), both judged on fresh canvases of the validation digits.

A run keeps the epoch whose validation error was lowest. With 6,000 validation images and
200 epochs that minimum is partly luck: its own images cannot say whether the chosen
weights are better or merely drew a lucky reading. For the generated data sets
(translated, cluttered) the held-out validation digits can be placed anew: the same
digits, never trained on, at new positions with new clutter, which the choice never saw.
The test set is never read. MNIST and Fashion-MNIST have no such second draw, so their
runs are skipped.

``--train_digits N`` also asks whether the model fits what it trained on: both checkpoints
on one fresh rendering of the first N training digits of the run's split. An error there
near the validation digits' means the model underfits: its training, not the data it saw,
is what to change. A checkpoint file given in place of a run's folder (a shipped model,
say: src/ram/pretrained/translated.pth) is judged alone.

    python benchmarks/selection_check.py runs/tta/translated_ram8_recipe/seed* --draws 5

prints one JSON line per run: the error of each checkpoint on each fresh draw, their means,
both checkpoints' epochs, and with ``--train_digits`` their error on the training digits.
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
TRAIN_SEED = 2000    # the training digits' rendering: no fixed set's seed, and training draws its own


def fresh_draws(config, draws: int, train_digits: int = 0):
    """``draws`` new renderings of the run's validation digits (uint8 images, labels); with
    ``train_digits``, instead one rendering of the first that many of its training digits."""
    variant = resolve_variant(config)
    if variant is None or variant.plain:
        return None
    images, labels = mnist.load_dataset("mnist", config.data_dir, train=True, download=False)
    train_idx, valid_idx = mnist.train_valid_split(len(labels), config.valid_size, config.valid_split_seed())
    if train_digits:
        idx = train_idx[:train_digits]
        return [variants.fixed_set(images[idx], labels[idx], variant, TRAIN_SEED)]
    return [variants.fixed_set(images[valid_idx], labels[valid_idx], variant, FRESH_SEEDS + d)
            for d in range(1, draws + 1)]


def checkpoints(run: Path) -> dict[str, Path]:
    """What to judge: a run folder's chosen and last checkpoints, or one checkpoint file."""
    if run.is_file():
        return {"given": run}
    best, latest = sorted(run.glob("*_best.pth")), sorted(run.glob("*_latest.pth"))
    if len(best) != 1 or len(latest) != 1:
        raise RamError(f"{run} holds no single *_best.pth and *_latest.pth; pass a run's folder or a checkpoint")
    return {"chosen": best[0], "last": latest[0]}


def check(run_dir: Path, draws: int, train_digits: int = 0) -> dict | None:
    models = {which: load_model(path) for which, path in checkpoints(run_dir).items()}
    config = next(iter(models.values()))[1]
    sets = fresh_draws(config, draws)
    if sets is None:
        print(f"skipping {run_dir}: {config.dataset} has no fresh draw of its validation digits", file=sys.stderr)
        return None
    train = fresh_draws(config, 1, train_digits) if train_digits else []
    result = {"run": str(run_dir), "dataset": config.dataset, "num_glimpses": config.num_glimpses,
              "seed": config.seed, "split_seed": config.split_seed, "draws": draws, "train_digits": train_digits}
    for which, (model, _, ckpt) in models.items():
        errors = [round(100 * (1 - evaluate(model, x, y)), 3) for x, y in sets]
        result[which] = {"epoch": ckpt["epoch"], "error_percent": errors,
                         "mean_error_percent": round(sum(errors) / len(errors), 3)}
        for x, y in train:
            result[which]["train_error_percent"] = round(100 * (1 - evaluate(model, x, y)), 3)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path,
                   help="run folders, each with one *_best.pth and *_latest.pth, or checkpoint files")
    p.add_argument("--draws", type=int, default=5, help="fresh renderings of the validation digits")
    p.add_argument("--train_digits", type=int, default=0,
                   help="also the error on one fresh rendering of this many training digits (0: off)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        for run in args.runs:
            result = check(run, args.draws, args.train_digits)
            if result:
                print(json.dumps(result), flush=True)
    except RamError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
