"""Translated and cluttered MNIST: placement, clutter, determinism, against a naive reference."""
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ram.data.variants import (
    PRESETS, Draws, Variant, _draw, checksum, fixed_set, make_batch, render, to_unit,
)
from ram.errors import RamError

# sha256 of fixed sets built from the first MNIST test digits; a change means the
# generation (draw order, placement, clutter) changed and old test sets are not comparable.
PINNED = {
    ("cluttered60", 1200, 0): "890eeafd1939a83996013bbd29137c703f10cc6b8ec39c7c5c464a5763767bdf",
    ("cluttered100", 300, 7): "c516b7d7ae97b54b94f6ce90395992d1942e9a43895545788e9951f5ba23100e",
}


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


@pytest.fixture(scope="module")
def mnist_test(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = data_dir / "MNIST" / "raw"
    if not (raw / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST test files not found")
    images = _read_idx(raw / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _read_idx(raw / "t10k-labels-idx1-ubyte.gz", 8)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def reference(digits: torch.Tensor, pool: torch.Tensor, variant: Variant,
              draws: Draws) -> torch.Tensor:
    """One image at a time, one piece at a time, with slices: the definition itself."""
    s, c = variant.image_size, variant.clutter_size
    d, p = digits.numpy(), pool.numpy()
    off, idx, cut, paste = (t.numpy() for t in draws)
    out = np.zeros((len(d), s, s), np.uint8)
    for i in range(len(d)):
        oy, ox = off[i]
        out[i, oy:oy + 28, ox:ox + 28] = d[i]
        for j in range(variant.num_clutter):
            (cy, cx), (py, px) = cut[i, j], paste[i, j]
            region = out[i, py:py + c, px:px + c]
            np.maximum(region, p[idx[i, j], cy:cy + c, cx:cx + c], out=region)
    return torch.from_numpy(out).unsqueeze(1)


def draws_and_images(digits, pool, variant, seed):
    """The draws behind render(seed), obtained from a twin generator."""
    twin = torch.Generator().manual_seed(seed)
    draws = _draw(len(digits), len(pool), variant, twin, digits.device)
    return draws, render(digits, pool, variant, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", [
    PRESETS["translated"], PRESETS["cluttered60"], PRESETS["cluttered100"],
    Variant(40, 3, clutter_size=5), Variant(28, 2),
])
def test_matches_naive_reference(mnist_test, variant):
    digits, _ = mnist_test
    draws, images = draws_and_images(digits[:200], digits[:1000], variant, seed=3)
    s = variant.image_size
    assert images.dtype == torch.uint8 and images.shape == (200, 1, s, s)
    assert torch.equal(images, reference(digits[:200], digits[:1000], variant, draws))


def test_translated_digit_intact_and_background_blank(mnist_test):
    digits, _ = mnist_test
    draws, images = draws_and_images(digits[:300], digits, PRESETS["translated"], seed=1)
    for i in range(300):
        oy, ox = draws.offset[i].tolist()
        window = images[i, 0, oy:oy + 28, ox:ox + 28]
        assert torch.equal(window, digits[i])
        assert int(images[i].sum()) == int(digits[i].sum())  # nothing outside the window


def test_clutter_never_erases_digit(mnist_test):
    digits, _ = mnist_test
    draws, images = draws_and_images(digits[:300], digits, PRESETS["cluttered100"], seed=2)
    covered = 0
    for i in range(300):
        oy, ox = draws.offset[i].tolist()
        window = images[i, 0, oy:oy + 28, ox:ox + 28]
        assert bool((window >= digits[i]).all())
        covered += int((window != digits[i]).any())
    assert covered > 0  # clutter did land on some digits, so the check above had teeth


def test_make_batch_is_float_render():
    digits = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    v = PRESETS["cluttered60"]
    x = make_batch(digits, digits, v, torch.Generator().manual_seed(5))
    u = render(digits, digits, v, torch.Generator().manual_seed(5))
    assert x.dtype == torch.float32 and x.shape == (16, 1, 60, 60)
    assert torch.equal(x, u.float() / 255) and torch.equal(to_unit(u), x)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_plain_mnist_unchanged_and_draws_nothing(mnist_test):
    digits, _ = mnist_test
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x = make_batch(digits[:64], None, PRESETS["mnist"], g)
    assert torch.equal(x, digits[:64].unsqueeze(1).float() / 255)
    assert torch.equal(g.get_state(), state)
    assert not PRESETS["mnist"].translated and PRESETS["translated"].translated


def test_positions_cover_their_whole_range():
    v = PRESETS["cluttered60"]
    d = _draw(5000, 10, v, torch.Generator().manual_seed(0), torch.device("cpu"))
    ranges = ((d.offset, 32), (d.clutter_cut, 20), (d.clutter_paste, 52), (d.clutter_digit, 9))
    for t, high in ranges:
        assert int(t.min()) == 0 and int(t.max()) == high
    counts = torch.bincount(d.offset.reshape(-1), minlength=33)  # 10000 draws, ~303 per value
    assert int(counts.min()) > 200 and int(counts.max()) < 420
    assert d.clutter_digit.shape == (5000, 4) and d.clutter_paste.shape == (5000, 4, 2)


def test_clutter_count_and_size_on_blank_digits():
    # Blank digits and an all-white pool: every white pixel is clutter.
    blank = torch.zeros(500, 28, 28, dtype=torch.uint8)
    white = torch.full((3, 28, 28), 255, dtype=torch.uint8)
    draws, one = draws_and_images(blank, white, Variant(60, 1), seed=0)
    for i in range(500):
        ys, xs = torch.nonzero(one[i, 0], as_tuple=True)
        assert len(ys) == 64  # one whole 8x8 piece, never cropped by the canvas edge
        assert (int(ys.min()), int(xs.min())) == tuple(draws.clutter_paste[i, 0].tolist())
        assert int(ys.max() - ys.min()) == 7 and int(xs.max() - xs.min()) == 7
    v = Variant(40, 3, clutter_size=5)
    draws, many = draws_and_images(blank, white, v, seed=1)
    count = (many == 255).sum(dim=(1, 2, 3))
    assert int(count.max()) == 75 and int(count.min()) >= 25 and int((many % 255).sum()) == 0
    for i in range(500):  # every piece is fully white at its paste position
        for py, px in draws.clutter_paste[i].tolist():
            assert bool((many[i, 0, py:py + 5, px:px + 5] == 255).all())


def test_seeds(mnist_test):
    digits, _ = mnist_test
    v = PRESETS["cluttered60"]
    a = make_batch(digits[:64], digits, v, torch.Generator().manual_seed(11))
    b = make_batch(digits[:64], digits, v, torch.Generator().manual_seed(11))
    c = make_batch(digits[:64], digits, v, torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_fixed_set_pinned_and_from_its_own_digits(mnist_test):
    digits, labels = mnist_test
    for (name, n, seed), expected in PINNED.items():
        images, ys = fixed_set(digits[:n], labels[:n], PRESETS[name], seed)
        s = PRESETS[name].image_size
        assert images.dtype == torch.uint8 and images.shape == (n, 1, s, s)
        assert images.device.type == "cpu"
        assert torch.equal(ys, labels[:n])
        assert checksum(images) == expected, f"{name}: generation changed"
    v = PRESETS["cluttered60"]
    images, _ = fixed_set(digits[:300], labels[:300], v, 4)
    again, _ = fixed_set(digits[:300], labels[:300], v, 4, pool=digits[:300])
    other, _ = fixed_set(digits[:300], labels[:300], v, 4, pool=digits[5000:6000])
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert not torch.equal(images, fixed_set(digits[:300], labels[:300], v, 5)[0])


def test_fixed_set_plain_mnist(mnist_test):
    digits, labels = mnist_test
    images, ys = fixed_set(digits[:10], labels[:10], PRESETS["mnist"], 0)
    assert torch.equal(images, digits[:10].unsqueeze(1)) and torch.equal(ys, labels[:10])


def test_checksum():
    t = torch.arange(6, dtype=torch.uint8)
    assert checksum(t) == hashlib.sha256(bytes(range(6))).hexdigest()
    m = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert checksum(m.t()) == checksum(m.t().contiguous()) != checksum(m)
    assert checksum(m) == hashlib.sha256(m.numpy().tobytes()).hexdigest()


def test_bad_input_raises():
    for bad in (dict(image_size=20), dict(image_size=60, num_clutter=-1),
                dict(image_size=60, clutter_size=29), dict(image_size=60, clutter_size=0)):
        with pytest.raises(RamError):
            Variant(**bad)
    g = torch.Generator().manual_seed(0)
    digits = torch.zeros(4, 28, 28, dtype=torch.uint8)
    with pytest.raises(RamError, match="uint8"):
        make_batch(digits.float(), digits, PRESETS["translated"], g)
    with pytest.raises(RamError, match="pool"):
        make_batch(digits, None, PRESETS["cluttered60"], g)
    with pytest.raises(RamError, match="pool"):
        make_batch(digits, digits[:0], PRESETS["cluttered60"], g)
    with pytest.raises(RamError, match="labels"):
        fixed_set(digits, torch.zeros(3, dtype=torch.long), PRESETS["translated"], 0)
