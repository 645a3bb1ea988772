"""The glimpse sensor rho(x, l): a retina-like, multi-resolution view around a location.

The sensor extracts k square patches centred on l; the first is g x g pixels and each
next one twice as wide. Every patch is reduced to g x g by area averaging (average
pooling), so the centre is seen sharply and the surround coarsely, and the k patches
are stacked into k*C*g*g values. Pixels outside the image read as zero.

Coordinates: l = (x, y) in [-1, 1], (0, 0) the image centre, (-1, -1) the top-left
corner. A location falls on pixel column ``px = floor((x + 1) / 2 * W)`` (row likewise)
and a patch of side s covers columns ``[px - s//2, px - s//2 + s)``.

Every patch shares that centre, so the smaller patches are central crops of the largest
one: one gather of the largest patch per glimpse serves every scale.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def scale_sizes(glimpse_size: int, num_scales: int) -> list[int]:
    """Side in pixels of each scale's patch: g, 2g, 4g, ..."""
    return [glimpse_size * 2**i for i in range(num_scales)]


@functools.lru_cache(maxsize=32)
def _index_constants(device: torch.device, H: int, W: int, S: int) -> tuple[torch.Tensor, ...]:
    """Constants of the location -> flat index map for an image size, made once per device.

    Cached because building a tensor from Python numbers on a GPU is a host-to-device copy
    that waits for the device: once per image size is fine, once per batch is not.
    """
    Hp, Wp = H + 2 * S, W + 2 * S
    ar = torch.arange(S)
    window = (ar[:, None] * Wp + ar[None, :]).reshape(1, 1, -1)  # offsets of an S x S window
    half_size = torch.tensor([W / 2, H / 2])
    lowest = torch.zeros(2, dtype=torch.long)
    highest = torch.tensor([Wp - S, Hp - S])
    strides = torch.tensor([1, Wp])
    return tuple(t.to(device) for t in (window, half_size, lowest, highest, strides))


class Retina:
    """Glimpse sensor for one image batch; pads the images once, then serves every glimpse.

    ``Retina(x, g, k).glimpse(l)`` returns (B, k*C*g*g). Padding by the largest side
    means any patch whose start is clamped into the padded canvas stays all-zero where
    it lies outside the image, so locations far outside [-1, 1] are exact too.
    """

    def __init__(self, images: torch.Tensor, glimpse_size: int, num_scales: int):
        self.g, self.k = glimpse_size, num_scales
        self.B, self.C, self.H, self.W = images.shape
        self.S = scale_sizes(glimpse_size, num_scales)[-1]
        self.pad = self.S
        padded = F.pad(images, (self.pad, self.pad, self.pad, self.pad))
        self.Hp, self.Wp = padded.shape[-2:]
        self.flat = padded.reshape(self.B, self.C, self.Hp * self.Wp)
        self.window, self.half_size, self.lowest, self.highest, self.strides = _index_constants(
            images.device, self.H, self.W, self.S)

    def glimpse(self, l: torch.Tensor) -> torch.Tensor:
        S = self.S
        # the location's pixel (module doc), then the largest patch's top-left corner, padded
        corner = ((l + 1) * self.half_size).floor_().long() + (self.pad - S // 2)
        corner = torch.clamp(corner, self.lowest, self.highest)
        idx = (corner * self.strides).sum(1).view(self.B, 1, 1) + self.window
        patch = self.flat.gather(2, idx.expand(self.B, self.C, S * S)).view(self.B, self.C, S, S)
        if self.k == 1:
            return patch.reshape(self.B, -1)
        scales = []
        for i, s in enumerate(scale_sizes(self.g, self.k)):
            o = S // 2 - s // 2  # the smaller patch is the central crop of the largest
            crop = patch[:, :, o:o + s, o:o + s]
            scales.append(F.avg_pool2d(crop, 2**i) if i else crop)
        return torch.cat(scales, dim=1).reshape(self.B, -1)


def glimpse(images: torch.Tensor, l: torch.Tensor, glimpse_size: int, num_scales: int) -> torch.Tensor:
    """rho(x, l) for a batch of images (B, C, H, W) and locations (B, 2): (B, k*C*g*g)."""
    return Retina(images, glimpse_size, num_scales).glimpse(l)
