"""Translated and cluttered MNIST, generated on the device that holds the digits.

The paper's harder data sets (section 4.1):

- translated: the 28x28 digit placed at a uniformly random position wholly
  inside a blank S x S canvas (S = 60);
- cluttered: the translated digit plus ``num_clutter`` pieces of clutter, each
  a ``clutter_size`` square cut at a random position from a random digit of a
  pool and pasted at a random position of the canvas (4 pieces of 8x8 for
  60x60, 8 for 100x100).

Pieces are combined with the canvas by pixel-wise maximum, so clutter can add
strokes but never erase the digit, and the order of pasting does not matter.

Dtypes: generation works in uint8 (the MNIST storage type) end to end, so a
generated image is exact and costs one byte a pixel. ``render`` returns uint8
(B, 1, S, S); ``make_batch`` converts to float32 in [0, 1] with ``to_unit``
(``x.float() / 255``). ``fixed_set`` keeps its images as uint8 to save memory;
the caller converts each batch with ``to_unit``.

Randomness: every draw goes through the ``torch.Generator`` passed in, which
must live on the same device as the digits (``torch.Generator(device="cuda")``
for CUDA tensors), so training batches are drawn on the device without host
round trips. Fixed sets (validation, test) are drawn on the CPU from a seeded
generator so they are bit-identical on every machine.

Training images are meant to be generated afresh for every batch; evaluation
sets are fixed with ``fixed_set`` and made from test digits only (pass the
test digits as the pool too, which is the default).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ram.errors import RamError

DIGIT = 28  # side of an MNIST digit
FIXED_CHUNK = 1000  # images per chunk of a fixed set; part of its definition, do not change


@dataclass(frozen=True)
class Variant:
    """How an image is made from a digit: canvas side and clutter.

    ``image_size == 28`` with no clutter is plain MNIST: images are returned as
    they are (only converted), and no random number is drawn.
    """

    image_size: int = DIGIT
    num_clutter: int = 0
    clutter_size: int = 8

    def __post_init__(self) -> None:
        if self.image_size < DIGIT:
            raise RamError(f"image_size {self.image_size} is smaller than a digit; "
                           f"use at least {DIGIT}")
        if self.num_clutter < 0:
            raise RamError(f"num_clutter {self.num_clutter} is negative; use 0 or more pieces")
        if not 1 <= self.clutter_size <= DIGIT:
            raise RamError(f"clutter_size {self.clutter_size} must lie in [1, {DIGIT}]: "
                           "pieces are cut from a digit")

    @property
    def translated(self) -> bool:
        """Whether the digit moves inside a larger canvas."""
        return self.image_size > DIGIT

    @property
    def plain(self) -> bool:
        """Plain MNIST: the digit is the image."""
        return not self.translated and self.num_clutter == 0


PRESETS: dict[str, Variant] = {
    "mnist": Variant(),
    "translated": Variant(60, 0),
    "cluttered60": Variant(60, 4),
    "cluttered100": Variant(100, 8),
}


class Draws(NamedTuple):
    """All random choices behind one batch, as integer tensors on the device.

    Positions are (row, column) of a top-left corner.
    """

    offset: torch.Tensor  # (B, 2) digit position in the canvas, in [0, S - 28]
    clutter_digit: torch.Tensor  # (B, n) index into the pool
    clutter_cut: torch.Tensor  # (B, n, 2) piece position inside its digit, in [0, 28 - c]
    clutter_paste: torch.Tensor  # (B, n, 2) piece position in the canvas, in [0, S - c]


def _draw(batch: int, pool_size: int, variant: Variant, generator: torch.Generator,
          device: torch.device) -> Draws:
    """Draw the positions of one batch, in a fixed order (part of the fixed sets' definition)."""
    s, n, c = variant.image_size, variant.num_clutter, variant.clutter_size

    def randint(high: int, size: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(0, high, size, generator=generator, device=device)

    offset = randint(s - DIGIT + 1, (batch, 2))
    if n == 0:
        none = torch.zeros(batch, 0, 2, dtype=torch.long, device=device)
        return Draws(offset, none[..., 0], none, none)
    return Draws(
        offset,
        randint(pool_size, (batch, n)),
        randint(DIGIT - c + 1, (batch, n, 2)),
        randint(s - c + 1, (batch, n, 2)),
    )


def _square(side: int, stride: int, device: torch.device) -> torch.Tensor:
    """Flat offsets of a side x side square in a row-major image of the given row stride."""
    r = torch.arange(side, device=device)
    return (r[:, None] * stride + r[None, :]).reshape(-1)


def _compose(digits: torch.Tensor, pool: torch.Tensor, variant: Variant,
             draws: Draws) -> torch.Tensor:
    """Build uint8 (B, 1, S, S) canvases from digits, a clutter pool and the draws.

    Works on a flat canvas per image: the digit is written by scatter (the
    canvas is blank, so no combine is needed), then each clutter piece is
    gathered from the pool and max-combined in place. The loop runs over the
    few pieces (n <= 8), not over samples; within one piece the target pixels of
    a row are distinct, so plain scatter is exact and deterministic. (A single
    ``scatter_reduce_(..., "amax")`` would also be exact, but CUDA builds of torch
    may refuse it under ``torch.use_deterministic_algorithms``.)
    """
    b, s, c = digits.shape[0], variant.image_size, variant.clutter_size
    device = digits.device
    canvas = torch.zeros(b, s * s, dtype=torch.uint8, device=device)
    corner = draws.offset[:, 0] * s + draws.offset[:, 1]  # (B,)
    canvas.scatter_(1, corner[:, None] + _square(DIGIT, s, device),
                    digits.reshape(b, DIGIT * DIGIT))

    if variant.num_clutter:
        # Cut every piece at once: flat indices into the whole pool.
        cut = (draws.clutter_digit * (DIGIT * DIGIT)
               + draws.clutter_cut[..., 0] * DIGIT + draws.clutter_cut[..., 1])
        pieces = pool.reshape(-1)[cut[..., None] + _square(c, DIGIT, device)]  # (B, n, c*c)
        paste = draws.clutter_paste[..., 0] * s + draws.clutter_paste[..., 1]  # (B, n)
        dest = paste[..., None] + _square(c, s, device)  # (B, n, c*c)
        for j in range(variant.num_clutter):
            idx = dest[:, j]
            canvas.scatter_(1, idx, torch.maximum(canvas.gather(1, idx), pieces[:, j]))
    return canvas.view(b, 1, s, s)


def _is_digits(t: torch.Tensor) -> bool:
    return t.dtype == torch.uint8 and t.dim() == 3 and tuple(t.shape[1:]) == (DIGIT, DIGIT)


def _check(digits: torch.Tensor, pool: torch.Tensor | None, variant: Variant) -> None:
    """Shape, dtype and device checks (metadata only: no host sync)."""
    if not _is_digits(digits):
        raise RamError(f"digits must be a uint8 (B, 28, 28) tensor, got {digits.dtype} "
                       f"{tuple(digits.shape)}; pass raw MNIST digits")
    if variant.num_clutter == 0:
        return
    if pool is None or not _is_digits(pool) or pool.shape[0] == 0:
        got = "None" if pool is None else f"{pool.dtype} {tuple(pool.shape)}"
        raise RamError(f"clutter pool must be a non-empty uint8 (N, 28, 28) tensor, got {got}; "
                       "pass the digits to cut clutter from")
    if pool.device != digits.device:
        raise RamError(f"clutter pool is on {pool.device} but digits are on {digits.device}; "
                       "move both to one device")


def render(digits: torch.Tensor, pool: torch.Tensor | None, variant: Variant,
           generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, 1, S, S) images of ``variant`` made from uint8 (B, 28, 28) ``digits``.

    ``pool`` (uint8 (N, 28, 28), same device) supplies the clutter; it is unused
    without clutter. ``generator`` must be on the digits' device. Plain MNIST
    returns a view of ``digits`` and draws nothing.
    """
    _check(digits, pool, variant)
    if variant.plain:
        return digits.unsqueeze(1)
    if generator.device.type != digits.device.type:
        raise RamError(f"generator is on {generator.device} but digits are on {digits.device}; "
                       "create the generator on the digits' device")
    pool_size = 0 if pool is None else pool.shape[0]
    draws = _draw(digits.shape[0], pool_size, variant, generator, digits.device)
    return _compose(digits, pool if pool is not None else digits, variant, draws)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1], the package's image convention."""
    return images.float().div_(255)


def make_batch(digits: torch.Tensor, pool: torch.Tensor | None, variant: Variant,
               generator: torch.Generator) -> torch.Tensor:
    """float32 (B, 1, S, S) images in [0, 1]: ``render`` followed by ``to_unit``."""
    return to_unit(render(digits, pool, variant, generator))


def fixed_set(
    digits: torch.Tensor, labels: torch.Tensor, variant: Variant, seed: int,
    pool: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic data set: (uint8 (N, 1, S, S) images on the CPU, labels).

    Drawn on the CPU from ``torch.Generator().manual_seed(seed)`` in chunks of
    ``FIXED_CHUNK`` images, so the same digits and seed give the same bytes on
    every run and machine (see ``checksum``). Clutter is cut from ``pool``,
    by default the digits themselves, so a test set holds test digits only.
    Images stay uint8 to save memory; convert each batch with ``to_unit``.
    """
    if labels.shape[:1] != digits.shape[:1]:
        raise RamError(f"{digits.shape[0]} digits but {labels.shape[0]} labels; "
                       "pass matching digits and labels")
    digits = digits.cpu()
    pool = digits if pool is None else pool.cpu()
    _check(digits, pool, variant)
    if variant.plain:
        return digits.unsqueeze(1).clone(), labels
    generator = torch.Generator().manual_seed(seed)
    chunks = [render(digits[i:i + FIXED_CHUNK], pool, variant, generator)
              for i in range(0, digits.shape[0], FIXED_CHUNK)]
    s = variant.image_size
    images = torch.cat(chunks) if chunks else torch.zeros(0, 1, s, s, dtype=torch.uint8)
    return images, labels


def checksum(t: torch.Tensor) -> str:
    """sha256 hex digest of the tensor's contiguous CPU bytes (shape and dtype not included)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()
