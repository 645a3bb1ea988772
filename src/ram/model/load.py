"""Build a model from its config, or from a checkpoint: the RAM or one of the paper's
whole-image baselines, whichever the config names."""
from __future__ import annotations

import torch

from .. import checkpoint
from ..config import Config
from .baselines import build_baseline
from .ram import RecurrentAttention


def build_model(config: Config) -> torch.nn.Module:
    """RecurrentAttention for ``--model ram`` or ``random``, else the named baseline."""
    if config.model in ("ram", "random"):
        return RecurrentAttention(config)
    return build_baseline(config)


def load_model(path, device="cpu", ckpt: dict | None = None) -> tuple[torch.nn.Module, Config, dict]:
    """(model, config, checkpoint): the model the checkpoint's own config describes, with its
    weights, in eval mode, with ``.config`` and ``.class_names`` set."""
    model, ckpt = checkpoint.restore(build_model, path, device, ckpt)
    return model, model.config, ckpt
