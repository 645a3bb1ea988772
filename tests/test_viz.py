"""Pictures: boxes land on the pixels the retina reads, files are valid, bad input is refused."""
import numpy as np
import pytest
import torch
from PIL import Image

from ram import viz
from ram.errors import RamError

CYAN = (0, 255, 255)


# ----------------------------------------------------------------------------- glimpse_box
@pytest.mark.parametrize("loc, hw, size, box", [
    ((0.0, 0.0), (28, 28), 8, (10, 10, 18, 18)),     # centre: px = 14, columns [10, 18)
    ((-1.0, -1.0), (28, 28), 8, (-4, -4, 4, 4)),     # top-left corner: half the patch is outside
    ((1.0, 1.0), (28, 28), 8, (24, 24, 32, 32)),     # bottom-right: px = W, patch mostly outside
    ((0.0, 0.0), (28, 28), 16, (6, 6, 22, 22)),      # second scale of g = 8
    ((0.5, -0.5), (20, 40), 5, (28, 3, 33, 8)),      # x is the column (W = 40), y the row (H = 20)
    ((-0.99, 0.3), (60, 60), 12, (-6, 33, 6, 45)),   # floor, not round: px = floor(0.3) = 0
])
def test_glimpse_box_follows_the_retina_convention(loc, hw, size, box):
    assert viz.glimpse_box(torch.tensor(loc), hw, size) == box


def test_glimpse_box_matches_a_naive_patch_read():
    """The box is exactly the set of pixels a zero-padded patch read takes from the image."""
    h, w, s = 13, 17, 6
    image = np.arange(1, h * w + 1).reshape(h, w)  # every pixel has its own nonzero id
    for x, y in [(-1, -1), (-0.3, 0.7), (0.2, 0.2), (0.99, -0.99)]:
        px, py = int(np.floor((x + 1) / 2 * w)), int(np.floor((y + 1) / 2 * h))
        read = {int(image[r, c]) for r in range(py - s // 2, py - s // 2 + s)
                for c in range(px - s // 2, px - s // 2 + s) if 0 <= r < h and 0 <= c < w}
        x0, y0, x1, y1 = viz.glimpse_box((x, y), (h, w), s)
        boxed = set(image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)].ravel().tolist())
        assert boxed == read


# ----------------------------------------------------------------------------- drawn pixels
def _coloured(tile: Image.Image) -> np.ndarray:
    """Mask of pixels painted in the box colour on a black image."""
    return np.all(np.asarray(tile) == CYAN, axis=-1)


def test_box_outlines_land_on_the_expected_pixels():
    black = np.zeros((28, 28, 3), np.uint8)
    tile = viz._draw_tile(black, np.array([[0.0, 0.0]]), 8, 2, 1, [CYAN])
    mask = _coloured(tile)
    assert tile.size == (28, 28)
    # scale 0 covers [10, 18): outline on rows/columns 10 and 17; scale 1 covers [6, 22): 6 and 21
    for lo, hi in [(10, 17), (6, 21)]:
        assert mask[lo, lo:hi + 1].all() and mask[hi, lo:hi + 1].all()
        assert mask[lo:hi + 1, lo].all() and mask[lo:hi + 1, hi].all()
    # nothing between the two outlines, nothing outside, the inside clear away from the centre dot
    assert not mask[:6].any() and not mask[22:].any() and not mask[:, :6].any() and not mask[:, 22:].any()
    assert not mask[7:10, 7:21].any() and not mask[18:21, 7:21].any()
    assert not mask[11, 11:17].any() and not mask[16, 11:17].any()


def test_box_outlines_scale_with_the_upscale_factor_and_clip_at_the_edge():
    black = np.zeros((28, 28, 3), np.uint8)
    tile = viz._draw_tile(black, np.array([[0.0, 0.0]]), 8, 1, 3, [CYAN])
    mask = _coloured(tile)
    assert tile.size == (84, 84)
    # pixels [10, 18) become [30, 54); the 2-pixel outline sits inside that range
    assert mask[30:54, 30:32].all() and mask[30:54, 52:54].all()
    assert not mask[30:54, 29].any() and not mask[30:54, 54].any() and not mask[33:40, 33:40].any()

    corner = _coloured(viz._draw_tile(black, np.array([[-1.0, -1.0]]), 8, 1, 1, [CYAN]))
    # box (-4, -4, 4, 4): only its right and bottom edges (column 3, row 3) are in the image
    assert corner[0:4, 3].all() and corner[3, 0:4].all()
    assert not corner[:, 4:].any() and not corner[4:, :].any() and not corner[2, 2]


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("c, hw, g, k", [(1, 28, 8, 1), (1, 60, 12, 3), (3, 100, 12, 4), (1, 24, 6, 3)])
def test_animate_glimpses_writes_one_frame_per_glimpse(tmp_path, c, hw, g, k):
    b, t = 5, 4
    images, locs = torch.rand(b, c, hw, hw), torch.rand(b, t, 2) * 2 - 1
    out = viz.animate_glimpses(images, locs, g, k, tmp_path / "sub" / "a.gif",
                               labels=torch.arange(b), preds=torch.arange(b), ncols=4, fps=4)
    gif = Image.open(out)
    assert gif.format == "GIF" and gif.n_frames == t
    f = max(1, 160 // hw)
    assert gif.size[0] == 4 + 4 * (hw * f + 4)  # four tiles of W*f pixels, 4-pixel gaps
    assert gif.size[1] > 2 * hw * f             # two rows of tiles
    durations = []
    for i in range(t):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert durations[:-1] == [250] * (t - 1) and durations[-1] > 250  # the last frame holds


def test_animate_glimpses_is_quick(tmp_path):
    import time
    images, locs = torch.rand(16, 1, 60, 60), torch.rand(16, 6, 2) * 2 - 1
    start = time.perf_counter()
    viz.animate_glimpses(images, locs, 12, 3, tmp_path / "a.gif")
    assert time.perf_counter() - start < 2.0


def test_animate_frames_round_trips_flat_colours(tmp_path):
    colours = [(255, 0, 0), (0, 128, 255), (10, 200, 30)]
    frames = [np.full((10, 12, 3), col, np.uint8) for col in colours]
    gif = Image.open(viz.animate_frames(frames, tmp_path / "f.gif", fps=5))
    assert gif.size == (12, 10) and gif.n_frames == 3
    for i, col in enumerate(colours):
        gif.seek(i)
        assert tuple(np.asarray(gif.convert("RGB"))[5, 6]) == col


def test_draw_glimpses_marks_wrong_predictions_in_red(tmp_path):
    def red_pixels(c, hw, k, preds):
        images, locs = torch.full((2, c, hw, hw), 0.5), torch.rand(2, 3, 2) * 2 - 1
        out = viz.draw_glimpses(images, locs, 8, k, labels=[3, 7], preds=preds, ncols=8,
                                class_names=[str(i) for i in range(10)], path=tmp_path / f"{c}.png")
        png = Image.open(out)
        assert png.format == "PNG" and png.size[0] > png.size[1]  # one row of two tiles
        rgb = np.asarray(png.convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum())

    assert red_pixels(1, 28, 1, preds=[3, 7]) == 0   # gray images, all right: no red anywhere
    assert red_pixels(3, 60, 3, preds=[3, 1]) > 10   # RGB images, one wrong: its title is red


def test_titles_use_class_names_and_flag_mistakes():
    assert viz._title(0, [1], [2], ["cat", "dog", "eel"], "→") == ("dog → eel", True)
    assert viz._title(0, torch.tensor([2]), torch.tensor([2]), None, "->") == ("2 -> 2", False)
    assert viz._title(0, [4], None, None, "→") == ("4", False)


# ----------------------------------------------------------------------------- curves
def test_training_curves_plot_whatever_keys_are_present(tmp_path):
    full = [{"epoch": e, "train_loss": 1 / e, "ce": 0.9 / e, "reinforce": -0.1 / e, "baseline": 0.1,
             "train_acc": 0.9, "valid_acc": 0.8 + e / 100, "test_acc": 0.85, "lr": 1e-3,
             "images_per_s": 5e3} for e in (1, 2, 3)]
    sparse = [{"epoch": 1, "valid_acc": 97.5}, {"epoch": 2}, {"valid_acc": None, "lr": 1e-3},
              {"epoch": 4, "train_acc": 1.0, "valid_acc": 99.0, "images_per_s": float("nan")}]
    for name, metrics in [("full", full), ("sparse", sparse)]:
        png = Image.open(viz.plot_training_curves(metrics, tmp_path / "deep" / f"{name}.png"))
        assert png.format == "PNG" and png.size[0] > png.size[1]
    with pytest.raises(RamError, match="empty"):
        viz.plot_training_curves([], tmp_path / "x.png")
    with pytest.raises(RamError, match="nothing to plot"):
        viz.plot_training_curves([{"epoch": 1}], tmp_path / "x.png")


# ----------------------------------------------------------------------------- bad input
def test_bad_shapes_are_refused_with_a_message(tmp_path):
    locs = torch.zeros(2, 3, 2)
    with pytest.raises(RamError, match="images must be"):
        viz.draw_glimpses(torch.zeros(2, 28, 28), locs, 8, 1, path=tmp_path / "x.png")
    with pytest.raises(RamError, match="images must be"):
        viz.animate_glimpses(torch.zeros(2, 2, 28, 28), locs, 8, 1, tmp_path / "x.gif")
    with pytest.raises(RamError, match="locations must be"):
        viz.animate_glimpses(torch.zeros(3, 1, 28, 28), locs, 8, 1, tmp_path / "x.gif")
    with pytest.raises(RamError, match="no frames"):
        viz.animate_frames([], tmp_path / "x.gif", fps=2)
