"""Checkpoints: written atomically, loaded with ``weights_only=True``, refused when foreign.

A checkpoint holds only plain types and tensors: model and optimizer state, the config
as a dict, the epoch, accuracies, the metric history and the RNG states that make a
resumed run continue exactly where it stopped.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .config import Config
from .errors import RamError

FORMAT = "ram-checkpoint-v1"


def save(path: str | Path, payload: dict) -> Path:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location="cpu") -> dict:
    """Load and check a checkpoint; any problem is one RamError line."""
    path = Path(path)
    if not path.is_file():
        raise RamError(f"no checkpoint at {path}: train one first (ram-train) or pass the right --model_path")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # not a zip/pickle, truncated, or holds arbitrary objects
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise RamError(f"{path} is not a readable ram checkpoint ({reason}); "
                       "it may be truncated or foreign: use another file or retrain") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise RamError(f"{path} is not a ram checkpoint (no '{FORMAT}' tag); "
                       "pass a file written by ram-train")
    for key in ("model_state_dict", "config", "epoch"):
        if key not in ckpt:
            raise RamError(f"{path} lacks '{key}'; the file is damaged: use another checkpoint")
    return ckpt


def load_weights(model: torch.nn.Module, state_dict: dict, path) -> None:
    """Load weights that must fit the model exactly; nothing is half-loaded on mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else
                  f"unexpected {unexpected[:3]}" if unexpected else
                  f"shape of {wrong[0]} is {tuple(state_dict[wrong[0]].shape)}, "
                  f"model expects {tuple(own[wrong[0]].shape)}")
        raise RamError(f"weights in {path} do not fit their config ({detail}); "
                       "the checkpoint is inconsistent: retrain or use another file")
    model.load_state_dict(state_dict)


def config_of(ckpt: dict, path) -> Config:
    if not isinstance(ckpt["config"], dict):
        raise RamError(f"{path} has a config that is not a dict; use a checkpoint written by ram-train")
    return Config.from_dict(ckpt["config"])


def restore(build, path, device="cpu", ckpt: dict | None = None):
    """(model, checkpoint): ``build(config)`` made from the checkpoint's own config, with its
    weights, in eval mode, and ``.config`` and ``.class_names`` set.

    The location policy gets the std of the checkpoint's last epoch, which a narrowing
    schedule (``--std_final``) makes a function of the epoch rather than a fixed value.
    """
    ckpt = ckpt if ckpt is not None else load(path, map_location=device)
    config = config_of(ckpt, path)
    model = build(config).to(device)
    load_weights(model, ckpt["model_state_dict"], path)
    if hasattr(model, "locator"):
        model.locator.std = config.policy_std(max(ckpt["epoch"] - 1, 0))
    model.config = config
    model.class_names = [str(n) for n in ckpt.get("class_names") or range(config.num_classes)]
    return model.eval(), ckpt
