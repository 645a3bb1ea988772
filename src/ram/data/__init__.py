"""Data sets as tensors on the model's device, and the batches drawn from them.

Everything is held in memory as uint8 and converted per batch, so the data costs no
host-device traffic during training. Translated and cluttered training images are made
afresh for every batch from training digits; validation and test images are fixed by a
seed and made from validation and test digits only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from ..config import Config
from ..errors import RamError
from . import mnist, variants

DIGIT_DATASETS = ("mnist", "fashion-mnist", "translated", "cluttered60", "cluttered100")
VALID_SEED, TEST_SEED = 12345, 54321


@dataclass
class Data:
    train_x: torch.Tensor            # uint8: digits (N, 28, 28), or images (N, C, S, S)
    train_y: torch.Tensor
    valid_x: torch.Tensor            # uint8 images (N, C, S, S), fixed
    valid_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    variant: variants.Variant | None = None  # set when training images are generated
    max_shift: int = 0                       # augmentation: random shifts of training images

    def train_batches(self, batch_size: int, generator: torch.Generator,
                      rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled batches; with several processes each takes its own shard."""
        n = self.train_x.shape[0]
        perm = torch.randperm(n, generator=generator, device=generator.device).to(self.train_x.device)
        if world_size > 1 and self.variant is not None:
            # The shuffle is shared (disjoint shards); each rank draws its own positions and clutter.
            generator = torch.Generator(device=generator.device).manual_seed(
                generator.initial_seed() * world_size + rank)
        step = batch_size * world_size
        for start in range(0, n - step + 1, step):  # drop the ragged tail: equal batches
            idx = perm[start + rank * batch_size:start + (rank + 1) * batch_size]
            y = self.train_y[idx]
            if self.variant is not None:
                x = variants.make_batch(self.train_x[idx], self.train_x, self.variant, generator)
            else:
                x = self.train_x[idx]
            x = to_float(x)
            if self.max_shift:
                x = random_shift(x, self.max_shift, generator)
            yield x, y

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        return self.train_x.shape[0] // (batch_size * world_size)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dx, dy) in [-max_shift, max_shift], zero-filled.

    A training-time augmentation: the same digit is seen at slightly different places, so
    the glimpse path cannot simply memorise where each training image's strokes lie.
    """
    B, C, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p)).flatten(2)
    dx, dy = torch.randint(0, 2 * p + 1, (2, B, 1), generator=generator, device=generator.device).to(x.device)
    rows = dy + torch.arange(H, device=x.device)  # (B, H) rows of the padded image to read
    cols = dx + torch.arange(W, device=x.device)
    idx = (rows[:, :, None] * (W + 2 * p) + cols[:, None, :]).view(B, 1, H * W)
    return padded.gather(2, idx.expand(B, C, H * W)).view(B, C, H, W)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1]."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    return x.unsqueeze(1) if x.dim() == 3 else x


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
