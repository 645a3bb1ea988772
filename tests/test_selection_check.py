"""benchmarks/selection_check.py: fresh draws of the validation digits, never the test set."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import selection_check  # noqa: E402
from ram.config import Config  # noqa: E402
from ram.data import build_data  # noqa: E402


def test_fresh_draws_place_the_validation_digits_anew(data_dir):
    config = Config.for_dataset("translated", data_dir=str(data_dir), split_seed=1, valid_size=0.01)
    valid = build_data(config, "cpu")
    draws = selection_check.fresh_validation(config, draws=2)
    assert len(draws) == 2
    for x, y in draws:
        assert torch.equal(y, valid.valid_y)  # the same digits, in the same order
        assert x.shape == valid.valid_x.shape and not torch.equal(x, valid.valid_x)
        # the same strokes, moved: each canvas holds its digit's ink, only elsewhere
        assert torch.equal(x.flatten(1).sum(1), valid.valid_x.flatten(1).sum(1))
    assert not torch.equal(draws[0][0], draws[1][0])


def test_plain_digits_have_no_fresh_draw(data_dir):
    assert selection_check.fresh_validation(Config.for_dataset("mnist", data_dir=str(data_dir)), draws=2) is None
