"""Thin wrapper so the command works from a clone: python scripts/train_mnist.py --help"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ram.commands.train import main  # noqa: E402

if __name__ == "__main__":
    main()
