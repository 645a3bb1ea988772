"""The glimpse sensor against a naive per-sample, per-pixel reference."""
import itertools

import pytest
import torch

from ram.model.retina import Retina, glimpse


def naive_glimpse(image, l, g, k):
    """Read every pixel one by one: zero outside, k patches of side g*2^i, block-averaged."""
    C, H, W = image.shape
    px = int(((l[0] + 1) / 2 * W).floor())
    py = int(((l[1] + 1) / 2 * H).floor())
    out = []
    for i in range(k):
        s, f = g * 2**i, 2**i
        patch = torch.zeros(C, g, g, dtype=torch.float64)
        for c, r, q in itertools.product(range(C), range(g), range(g)):
            total = 0.0
            for dr, dq in itertools.product(range(f), range(f)):
                y = py - s // 2 + r * f + dr
                x = px - s // 2 + q * f + dq
                if 0 <= y < H and 0 <= x < W:
                    total += float(image[c, y, x])
            patch[c, r, q] = total / (f * f)
        out.append(patch.flatten())
    return torch.cat(out)


LOCATIONS = torch.tensor([
    [0.0, 0.0], [0.3, -0.55], [-0.9, 0.8],   # inside
    [-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.999, 0.0], [-1.0, 0.2],  # corners and borders
    [1.4, 0.0], [-3.0, 2.5], [0.5, -1.7], [40.0, -40.0],  # outside: partly or wholly off the image
])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("g,C,H,W", [(8, 1, 28, 28), (3, 1, 17, 23), (6, 3, 24, 24)])
def test_glimpse_matches_naive_reference(k, g, C, H, W):
    torch.manual_seed(k)
    B = len(LOCATIONS)
    # 8-bit pixels / 255, as the data pipeline hands them to the model. The reference
    # averages the levels exactly (float64) and divides by 255 once, so ours must equal it.
    levels = torch.randint(0, 256, (B, C, H, W)).float()
    images = levels / 255
    got = glimpse(images, LOCATIONS, g, k)
    assert got.shape == (B, k * C * g * g)
    for b in range(B):
        want = (naive_glimpse(levels[b], LOCATIONS[b], g, k) / 255).float()
        # naive output is scale-major then channel; reorder ours (scale, channel, y, x) alike
        assert torch.equal(got[b], want), f"location {LOCATIONS[b].tolist()} differs"


@pytest.mark.parametrize("k", [1, 3])
def test_copies_read_their_own_image_from_one_table(k):
    """With copies, row j * B + i looks at image i wherever its own location says: the
    pixels the naive reference reads there, from a table built once for the B images."""
    torch.manual_seed(0)
    B, copies, C, g = 4, 3, 2, 4
    levels = torch.randint(0, 256, (B, C, 20, 24)).float()
    locations = LOCATIONS[:B * copies]
    got = Retina(levels / 255, g, k, copies).glimpse(locations)
    assert got.shape == (B * copies, k * C * g * g)
    for row in range(B * copies):
        want = (naive_glimpse(levels[row % B], locations[row], g, k) / 255).float()
        assert torch.equal(got[row], want), f"row {row} differs"


def test_glimpse_far_outside_is_zero_and_centre_sees_the_middle():
    images = torch.arange(28 * 28.0).view(1, 1, 28, 28)
    assert glimpse(images, torch.tensor([[5.0, 5.0]]), 8, 2).abs().sum() == 0
    centre = glimpse(images, torch.zeros(1, 2), 8, 1).view(8, 8)
    assert torch.equal(centre, images[0, 0, 10:18, 10:18])


def test_wide_patches_of_a_large_image_are_exact_without_float64():
    # The 100x100 preset's scales (up to 96 pixels wide) over the largest sums they make:
    # an all-white image, and random levels. A float32 table would lose ~1e-4 per sum here.
    torch.manual_seed(0)
    levels = torch.cat([torch.full((1, 1, 100, 100), 255.0), torch.randint(0, 256, (3, 1, 100, 100)).float()])
    locations = torch.tensor([[0.0, 0.0], [0.93, -0.41], [-1.0, 1.0], [1.3, 0.2]])
    got = glimpse(levels / 255, locations, 12, 4)
    want = torch.stack([naive_glimpse(levels[b], locations[b], 12, 4) / 255 for b in range(4)]).float()
    assert torch.equal(got, want)
    assert torch.equal(got[0].view(4, 144)[0], torch.ones(144))  # the centre of a white image reads 1


def test_other_floats_are_read_to_the_nearest_level():
    torch.manual_seed(1)
    images = torch.rand(2, 1, 28, 28)
    locations = torch.tensor([[0.1, -0.2], [0.6, 0.5]])
    got = glimpse(images, locations, 8, 3)
    want = torch.stack([naive_glimpse(images[b], locations[b], 8, 3) for b in range(2)]).float()
    torch.testing.assert_close(got, want, atol=0.5 / 255, rtol=0)
