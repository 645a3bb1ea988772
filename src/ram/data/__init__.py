"""Data sets as tensors on the model's device, and the batches drawn from them.

Everything is held in memory as uint8 and converted per batch (batches.py), so the data
costs no host-device traffic during training. Translated and cluttered training images are made
afresh for every batch from training digits; validation and test images are fixed by a
seed and made from validation and test digits only.
"""
from __future__ import annotations

import torch

from ..config import Config
from ..errors import RamError
from . import mnist, variants
from .batches import Data, random_shift, to_float

DIGIT_DATASETS = ("mnist", "fashion-mnist", "translated", "cluttered60", "cluttered100")
VALID_SEED, TEST_SEED = 12345, 54321
__all__ = ["Data", "build_data", "random_shift", "resolve_variant", "to_float"]


def resolve_variant(config: Config) -> variants.Variant | None:
    """The paper's preset for the dataset, with --image_size/--num_clutter overrides."""
    preset = variants.PRESETS.get(config.dataset, variants.PRESETS["mnist"])
    size = config.image_size or preset.image_size
    clutter = preset.num_clutter if config.num_clutter < 0 else config.num_clutter
    v = variants.Variant(image_size=size, num_clutter=clutter, clutter_size=config.clutter_size)
    return None if (size == 28 and clutter == 0) else v


def build_data(config: Config, device: torch.device | str) -> Data:
    if config.dataset == "folder":
        from .folder import build_folder_data
        return build_folder_data(config, device)
    if config.dataset not in DIGIT_DATASETS:
        raise RamError(f"unknown --dataset {config.dataset!r}; choose one of "
                       f"{', '.join(DIGIT_DATASETS + ('folder',))}")
    source = "fashion-mnist" if config.dataset == "fashion-mnist" else "mnist"
    images, labels = mnist.load_dataset(source, config.data_dir, train=True)
    test_images, test_labels = mnist.load_dataset(source, config.data_dir, train=False)
    train_idx, valid_idx = mnist.train_valid_split(len(labels), config.valid_size, config.valid_split_seed())
    if config.train_size:
        train_idx = train_idx[:config.train_size]
    variant = resolve_variant(config)

    def fixed(x, y, seed):
        if variant is None:
            return x.unsqueeze(1), y
        return variants.fixed_set(x, y, variant, seed)

    valid_x, valid_y = fixed(images[valid_idx], labels[valid_idx], VALID_SEED)
    test_x, test_y = fixed(test_images, test_labels, TEST_SEED)
    train_x = images[train_idx] if variant is not None else images[train_idx].unsqueeze(1)
    put = lambda t: t.to(device)
    return Data(put(train_x), put(labels[train_idx]), put(valid_x), put(valid_y),
                put(test_x), put(test_y), mnist.CLASS_NAMES[source], variant, config.max_shift)
