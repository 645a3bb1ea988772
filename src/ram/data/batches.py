"""A data set held on the model's device, and the batches of one epoch drawn from it.

Everything is held in memory as uint8 and converted per batch, so the data costs no
host-device traffic during training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from . import variants


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
