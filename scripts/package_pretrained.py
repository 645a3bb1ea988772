"""Ship a trained model with the package:

    python scripts/package_pretrained.py NAME CHECKPOINT --made_by "THE TRAINING COMMAND"

Writes src/ram/pretrained/NAME.pth: the checkpoint's (averaged) weights and config, no
optimizer state, in the checkpoint format. The config's precision becomes fp32, so the
model gives the same figures on every machine, and the file records the test figure under
that evaluation (a classifier's test error, or Catch's rate over the 1,000 seeded games),
which ``ram-evaluate --pretrained NAME`` prints and the tests check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ram import checkpoint, pretrained  # noqa: E402
from ram.commands.evaluate import measure  # noqa: E402
from reproduce import git_commit  # noqa: E402

# Where files go when a shipped model is trained further: the current folder, not the
# machine it was made on.
PATHS = {"data_dir": "./data", "save_dir": "./checkpoints", "log_dir": "./logs", "plot_dir": "./plots"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("checkpoint")
    p.add_argument("--made_by", required=True, help="the command that trained it, recorded in the file")
    a = p.parse_args(argv)
    ckpt = checkpoint.load(a.checkpoint)
    config = checkpoint.config_of(ckpt, a.checkpoint)
    config.precision, config.device = "fp32", ""
    for key, value in PATHS.items():
        setattr(config, key, value)
    shipped = {"model_state_dict": ckpt["model_state_dict"], "config": config.to_dict(), "epoch": ckpt["epoch"],
               "class_names": ckpt.get("class_names"), "valid_accuracy": ckpt.get("valid_accuracy"),
               "seed": config.seed, "made_by": a.made_by, "commit": git_commit(), "source": str(a.checkpoint)}
    out = ROOT / "src" / "ram" / "pretrained" / f"{a.name}.pth"
    checkpoint.save(out, shipped)
    shipped["test"] = measure(out)  # what ram-evaluate --pretrained reproduces
    checkpoint.save(out, shipped)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, seed {config.seed}, epoch {shipped['epoch']}, "
          f"{pretrained.describe(shipped['test'])}")


if __name__ == "__main__":
    main()
