"""Classify new images with a trained model (the library side of ``ram-predict``).

Images may be files (read with Pillow, converted to the model's channels, resized and
centre-cropped to its image size by the same rule as folder data sets) or tensors
already of the model's size: float in [0, 1] or uint8, (B, C, H, W), (C, H, W) or (H, W).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import Config
from ..data import variants
from ..data.folder import _BAD_IMAGE, read_image
from ..errors import RamError

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's RGB -> L rule, as for folder data


@dataclass
class Prediction:
    classes: list[str]           # predicted class name per image
    indices: torch.Tensor        # (B,) predicted class index
    probabilities: torch.Tensor  # (B,) probability of the predicted class
    probs: torch.Tensor          # (B, num_classes)
    locations: torch.Tensor      # (B, T, 2) where each glimpse looked; T = 0 for the baselines
    images: torch.Tensor         # (B, C, S, S) float in [0, 1], as the model saw them


def image_size_of(config: Config) -> int:
    """The side the model was trained on: the config's, else the dataset's own (28/60/100)."""
    return config.image_size or variants.PRESETS.get(config.dataset, variants.PRESETS["mnist"]).image_size


def prepare(images, channels: int, size: int) -> torch.Tensor:
    """Files or tensors -> float (B, channels, size, size) in [0, 1]; a RamError otherwise."""
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise RamError("no images to classify: pass at least one image file")
        arrays = []
        for p in images:
            if not Path(p).is_file():
                raise RamError(f"no image file at {p}; check the path")
            try:
                a = read_image(Path(p), size, channels)
            except _BAD_IMAGE as e:
                raise RamError(f"{p} is not a readable image ({type(e).__name__}); "
                               "pass a png/jpg/bmp file") from None
            arrays.append(a.reshape(size, size, channels))
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)
    if not isinstance(images, torch.Tensor) or images.dim() not in (2, 3, 4):
        raise RamError("images must be file paths or a tensor (B, C, H, W), (C, H, W) or (H, W)")
    x = images.detach()
    x = x[None, None] if x.dim() == 2 else x[None] if x.dim() == 3 else x
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    if x.numel() and (x.min() < 0 or x.max() > 1):  # one check per call, not a training path
        raise RamError("float images must hold values in [0, 1]; divide 0-255 images by 255 "
                       "or pass them as uint8")
    if x.shape[1] not in (1, 3):
        raise RamError(f"images have {x.shape[1]} channels; pass 1 (grayscale) or 3 (RGB)")
    if x.shape[1] != channels:  # grey -> RGB by copying, RGB -> grey by luma
        x = x.expand(-1, 3, -1, -1) if channels == 3 else \
            (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-2:] != (size, size):
        raise RamError(f"images are {x.shape[-1]}x{x.shape[-2]} but the model was trained on "
                       f"{size}x{size}; resize them, or pass file paths (resized for you)")
    return x.contiguous()


@torch.no_grad()
def predict(model, images, config: Config | None = None, class_names: Sequence[str] | None = None,
            mc_samples: int = 0) -> Prediction:
    """Classify images; config and class names default to the model's own attributes."""
    config = config if config is not None else model.config
    names = list(class_names if class_names is not None else
                 getattr(model, "class_names", None) or range(config.num_classes))
    device = next(model.parameters()).device
    x = prepare(images, config.channels, image_size_of(config)).to(device)
    model.eval()
    probs, locations = model.predict_proba(x, mc_samples)
    if locations is None:  # a whole-image baseline: it takes no glimpses
        locations = probs.new_zeros(len(probs), 0, 2)
    p, idx = probs.max(1)
    return Prediction([str(names[i]) for i in idx.tolist()], idx, p, probs, locations, x)
