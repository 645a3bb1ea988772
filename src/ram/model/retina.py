"""The glimpse sensor rho(x, l): a retina-like, multi-resolution view around a location.

The sensor extracts k square patches centred on l; the first is g x g pixels and each
next one twice as wide. Every patch is reduced to g x g by area averaging (average
pooling), so the centre is seen sharply and the surround coarsely, and the k patches
are stacked into k*C*g*g values. Pixels outside the image read as zero.

Coordinates: l = (x, y) in [-1, 1], (0, 0) the image centre, (-1, -1) the top-left
corner. A location falls on pixel column ``px = floor((x + 1) / 2 * W)`` (row likewise)
and a patch of side s covers columns ``[px - s//2, px - s//2 + s)``.

With several scales the averages are read from an integral image (summed-area table)
made once per batch: the sum over any rectangle is +-1 times four of its entries, so every scale
costs (g+1)^2 reads per glimpse however wide its patch, where cutting the patches out
costs (g 2^(k-1))^2 (the 96-pixel patch of the 100x100 preset: 9216 reads, against 169
per scale). Clamping a rectangle's corners to the image intersects it with the image,
so pixels outside add nothing. The table holds int32 sums of the 8-bit pixel levels
(round(255 x)), which are exact, and each average is one float32 division of an exact
integer, so it is the correctly rounded mean of the patch's levels / 255
(tests/test_retina.py): no float64, which most GPUs run at a fraction of their speed.
The data pipeline hands the model 8-bit pixels / 255, so this reads them exactly; other
floats in [0, 1] are read to the nearest 1/255. One scale is a plain crop, read from the
image in a one-pixel zero border, onto which every coordinate outside is clamped.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


LEVELS = 255  # the pixels are 8-bit levels / 255


def scale_sizes(glimpse_size: int, num_scales: int) -> list[int]:
    """Side in pixels of each scale's patch: g, 2g, 4g, ..."""
    return [glimpse_size * 2**i for i in range(num_scales)]


@functools.lru_cache(maxsize=32)
def _constants(device: torch.device, g: int, k: int, H: int, W: int) -> tuple[torch.Tensor, ...]:
    """Constants of the location -> table index map, made once per device and setting:
    the offsets from the location's pixel to what is read, per scale (k, n): the g pixels
    of a crop (k = 1) or the g+1 cell edges of each patch; the highest coordinates (2, 1, 1)
    (the lowest are 0); W/2 and H/2; and what each scale's cell sums are divided by (k, 1, 1).

    Cached because building a tensor from Python numbers on a GPU is a host-to-device copy
    that waits for the device: once per setting is fine, once per glimpse is not.
    """
    if k == 1:  # the table is the image in a zero border: pixel x is at x + 1, 0 <= x + 1 <= W + 1
        offsets, highest = torch.arange(g, device=device).view(1, g) - g // 2 + 1, [W + 1, H + 1]
    else:
        edges = torch.arange(g + 1, device=device)
        offsets = torch.stack([edges * 2**i - s // 2 for i, s in enumerate(scale_sizes(g, k))])
        highest = [W, H]
    # a cell of scale i holds 4^i pixels, each LEVELS times its value
    divisor = torch.tensor([LEVELS * 4.0**i for i in range(k)], device=device).view(k, 1, 1)
    return (offsets, torch.tensor(highest, device=device).view(2, 1, 1),
            torch.tensor([W / 2, H / 2], device=device), divisor)


class Retina:
    """Glimpse sensor for one image batch: builds its table once (the integral image, or
    for one scale the image with a zero border), then serves every glimpse.
    ``Retina(x, g, k).glimpse(l)`` returns (B, k*C*g*g).

    ``copies``: the glimpses are asked for the batch repeated that many times (row
    j * B + i looks at image i), as when each image is followed along several paths. The
    table is still built once, for the B images: on 60x60 canvases building it costs more
    than a glimpse."""

    def __init__(self, images: torch.Tensor, glimpse_size: int, num_scales: int, copies: int = 1):
        self.g, self.k, self.copies = glimpse_size, num_scales, copies
        self.B, self.C, self.H, self.W = images.shape
        self.dtype = images.dtype
        if num_scales == 1:
            table = F.pad(images, (1, 1, 1, 1))
        else:  # table[y, x] = the sum of the pixel levels above and left of (y, x)
            # int32 holds the sum of up to 8.4 million levels exactly; beyond, int64 does
            exact = torch.int32 if self.H * self.W * LEVELS < 2**31 else torch.int64
            # the zero row and column go in first, so both sums run in place
            table = F.pad((images * LEVELS).round_().to(exact), (1, 0, 1, 0)).cumsum_(-1).cumsum_(-2)
        self.row = table.shape[-1]
        self.table = table.reshape(self.B, self.C, -1)
        # torch.compile bakes the constants into its graph; the cache is for eager mode
        constants = _constants.__wrapped__ if torch.compiler.is_compiling() else _constants
        self.offsets, self.highest, self.half_size, self.divisor = constants(
            images.device, self.g, self.k, self.H, self.W)

    def glimpse(self, l: torch.Tensor) -> torch.Tensor:
        B, C, g, k, copies = self.B, self.C, self.g, self.k, self.copies
        rows = B * copies
        p = ((l + 1) * self.half_size).floor_().long()  # the location's pixel (x, y), module doc
        # what to read per scale, clamped to the table: (rows, 2, k, n) for x and y
        at = torch.minimum((p.view(rows, 2, 1, 1) + self.offsets).clamp_(min=0), self.highest)
        idx = at[:, 1].unsqueeze(-1) * self.row + at[:, 0].unsqueeze(-2)
        # every copy of image i reads image i's table: their reads side by side along it
        idx = idx.view(copies, B, -1).transpose(0, 1).reshape(B, 1, -1)
        read = self.table.gather(2, idx.expand(B, C, -1))
        read = read.view(B, C, copies, -1).permute(2, 0, 1, 3).reshape(rows, C, -1)
        if k == 1:
            return read.view(rows, -1)
        corners = read.view(rows, C, k, g + 1, g + 1)
        sums = (corners[..., 1:, 1:] - corners[..., :-1, 1:]
                - corners[..., 1:, :-1] + corners[..., :-1, :-1])
        # averages, scale-major then channel, as the scales are stacked; a patch's sum of
        # levels is an exact float32 below 2^24, i.e. for patches of up to 65,000 pixels
        return (sums.to(self.dtype) / self.divisor).transpose(1, 2).reshape(rows, -1)


def glimpse(images: torch.Tensor, l: torch.Tensor, glimpse_size: int, num_scales: int) -> torch.Tensor:
    """rho(x, l) for a batch of images (B, C, H, W) and locations (B, 2): (B, k*C*g*g)."""
    return Retina(images, glimpse_size, num_scales).glimpse(l)
