"""Classify new images with a trained model: ``ram-predict IMAGE... --model_path PATH``.

Images may be files (read with Pillow, converted to the model's channels, resized and
centre-cropped to its image size by the same rule as folder data sets) or tensors
already of the model's size: float in [0, 1] or uint8, (B, C, H, W), (C, H, W) or (H, W).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .cli import friendly
from .config import Config
from .data import variants
from .data.folder import _BAD_IMAGE, read_image
from .errors import RamError

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


def load_for_prediction(path, device="cpu") -> tuple[torch.nn.Module, Config, list[str]]:
    """Model (eval mode), its config and class names, all from the checkpoint alone."""
    from .evaluate import load_model
    model, config, ckpt = load_model(path, device)
    names = ckpt.get("class_names") or [str(i) for i in range(config.num_classes)]
    return model, config, [str(n) for n in names]


def from_checkpoint(path, device="cpu") -> torch.nn.Module:
    """The model with ``.config`` and ``.class_names`` set, ready for :func:`predict`."""
    model, config, names = load_for_prediction(path, device)
    model.config, model.class_names = config, names
    return model


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


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ram-predict", description="Classify images with a trained model "
                                "and draw where it looked.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="png/jpg/bmp files")
    p.add_argument("--model_path", required=True, help="a checkpoint written by ram-train")
    p.add_argument("--device", default="", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--plot_dir", default="./plots", help="where predictions.png is written")
    p.add_argument("--mc_samples", type=int, default=0,
                   help="average over N sampled glimpse paths (0: the deterministic policy)")
    return p


@friendly
def predict_main(argv=None) -> None:
    args = predict_parser().parse_args(argv)
    if args.mc_samples < 0:
        raise RamError("--mc_samples must be 0 (deterministic policy) or more")
    from .train import pick_device
    model = from_checkpoint(args.model_path, pick_device(args.device))
    pred = predict(model, args.images, mc_samples=args.mc_samples)
    for path, name, p in zip(args.images, pred.classes, pred.probabilities.tolist()):
        print(f"{path}: {name} (probability {p:.2f})")
    if pred.locations.shape[1] == 0:
        print(f"no glimpse picture: {model.config.model} looks at the whole image", file=sys.stderr)
        return
    from .viz import draw_glimpses
    n = 64  # a readable grid; the lines above cover every image
    picture = draw_glimpses(pred.images[:n], pred.locations[:n], model.config.glimpse_size,
                            model.config.num_scales, preds=pred.indices[:n],
                            class_names=model.class_names, path=Path(args.plot_dir) / "predictions.png")
    print(f"glimpse paths drawn in {picture}", file=sys.stderr)  # stdout: one line per image
