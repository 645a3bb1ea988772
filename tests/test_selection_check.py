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
    draws = selection_check.fresh_draws(config, draws=2)
    assert len(draws) == 2
    for x, y in draws:
        assert torch.equal(y, valid.valid_y)  # the same digits, in the same order
        assert x.shape == valid.valid_x.shape and not torch.equal(x, valid.valid_x)
        # the same strokes, moved: each canvas holds its digit's ink, only elsewhere
        assert torch.equal(x.flatten(1).sum(1), valid.valid_x.flatten(1).sum(1))
    assert not torch.equal(draws[0][0], draws[1][0])


def test_plain_digits_have_no_fresh_draw(data_dir):
    assert selection_check.fresh_draws(Config.for_dataset("mnist", data_dir=str(data_dir)), draws=2) is None


def test_training_digits_are_the_runs_own_drawn_anew(data_dir):
    config = Config.for_dataset("translated", data_dir=str(data_dir), split_seed=1, valid_size=0.01)
    data = build_data(config, "cpu")  # train_x: the training split's 28x28 digits, in order
    (x, y), = selection_check.fresh_draws(config, draws=2, train_digits=50)
    assert torch.equal(y, data.train_y[:50]) and x.shape == (50, 1, 60, 60)
    # each canvas holds its training digit's ink, placed somewhere on the canvas
    assert torch.equal(x.flatten(1).sum(1), data.train_x[:50].flatten(1).sum(1))


def test_a_checkpoint_file_is_judged_alone(monkeypatch):
    monkeypatch.chdir(ROOT)  # the shipped model's config reads ./data
    result = selection_check.check(ROOT / "src/ram/pretrained/translated.pth", draws=1, train_digits=300)
    assert "chosen" not in result and "last" not in result
    given = result["given"]
    shipped = torch.load(ROOT / "src/ram/pretrained/translated.pth", weights_only=True)
    assert given["epoch"] == shipped["epoch"] and result["train_digits"] == 300
    # a trained model reads fresh canvases of the digits it learned from almost without error
    assert 0 <= given["train_error_percent"] < 3 and 0 < given["mean_error_percent"] < 3
