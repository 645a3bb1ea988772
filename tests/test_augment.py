"""The shift augmentation moves each image by its own offset, exactly, with zero fill."""
import torch

from ram.data import random_shift


def naive_shift(image, dx, dy):
    C, H, W = image.shape
    out = torch.zeros_like(image)
    for r in range(H):
        for c in range(W):
            sr, sc = r + dy, c + dx  # the output pixel (r, c) reads the input at (r + dy, c + dx)
            if 0 <= sr < H and 0 <= sc < W:
                out[:, r, c] = image[:, sr, sc]
    return out


def test_random_shift_matches_a_per_image_reference():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 7, 9)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(5))
    # replay the generator's draws: offsets in [0, 4] -> shifts in [-2, 2]
    d = torch.randint(0, 5, (2, 64, 1), generator=torch.Generator().manual_seed(5)).squeeze(2) - 2
    assert set(d.flatten().tolist()) == {-2, -1, 0, 1, 2}
    for b in range(64):
        assert torch.equal(shifted[b], naive_shift(x[b], int(d[0, b]), int(d[1, b])))
