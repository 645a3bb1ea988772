"""The shift augmentation moves each image by its own offset, exactly, with zero fill."""
import math

import torch

from ram.data import random_affine, random_shift


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


def naive_rotate_scale(image, degrees, zoom):
    """Each output pixel reads the input, bilinearly, at the point the inverse rotation and
    scaling about the image centre takes it to; zero outside."""
    C, H, W = image.shape
    a = math.radians(degrees)
    out = torch.zeros_like(image)

    def pixel(r, c):
        return image[:, r, c] if 0 <= r < H and 0 <= c < W else torch.zeros(C)

    for r in range(H):
        for c in range(W):
            xo, yo = c + 0.5 - W / 2, r + 0.5 - H / 2
            xi = (math.cos(a) * xo - math.sin(a) * yo) / zoom + W / 2 - 0.5
            yi = (math.sin(a) * xo + math.cos(a) * yo) / zoom + H / 2 - 0.5
            c0, r0 = math.floor(xi), math.floor(yi)
            fx, fy = xi - c0, yi - r0
            out[:, r, c] = ((1 - fy) * ((1 - fx) * pixel(r0, c0) + fx * pixel(r0, c0 + 1))
                            + fy * ((1 - fx) * pixel(r0 + 1, c0) + fx * pixel(r0 + 1, c0 + 1)))
    return out


def test_random_affine_matches_a_per_image_reference():
    torch.manual_seed(0)
    x = torch.rand(6, 2, 9, 9)
    out = random_affine(x, 30.0, 0.2, torch.Generator().manual_seed(3))
    u = torch.rand(2, 6, generator=torch.Generator().manual_seed(3)) * 2 - 1  # the same draws
    for b in range(6):
        want = naive_rotate_scale(x[b], 30.0 * float(u[0, b]), 1 + 0.2 * float(u[1, b]))
        torch.testing.assert_close(out[b], want, atol=1e-5, rtol=0)
    assert not torch.allclose(out, x)


def test_random_affine_without_rotation_or_scaling_is_the_identity():
    x = torch.rand(4, 1, 28, 28)
    same = random_affine(x, 0.0, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)

