"""Pictures of training and of where the model looks.

Every glimpse box drawn here comes from :func:`glimpse_box`, which follows the
retina's own convention, so a box on a picture covers exactly the pixels the
sensor read. Static figures use matplotlib (Agg, no screen); animations are drawn
directly with Pillow, which is fast enough to render a batch in well under a
second.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from ram.errors import RamError  # noqa: E402

STEP_CMAP = "cool"  # cyan -> magenta: both stay visible on black and on white strokes
LOSS_KEYS = ("train_loss", "valid_loss", "ce", "reinforce", "baseline")
ACC_KEYS = ("train_acc", "valid_acc", "test_acc")


def glimpse_box(location, image_hw: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), ends exclusive, of a size x size patch centred at `location`.

    Same rule as the retina: px = floor((x + 1) / 2 * W), columns [px - s//2, px - s//2 + s).
    The box may stick out of the image; the retina reads zeros there.
    """
    x, y = (float(v) for v in location)
    h, w = image_hw
    px, py = math.floor((x + 1) / 2 * w), math.floor((y + 1) / 2 * h)
    x0, y0 = px - size // 2, py - size // 2
    return x0, y0, x0 + size, y0 + size


# ----------------------------------------------------------------------------- curves
def plot_training_curves(metrics: list[dict], path) -> Path:
    """Losses, error rates (log scale) and learning rate / throughput per epoch, in one PNG.

    Any key may be missing from any epoch; a panel appears only if it has data.
    """
    if not metrics:
        raise RamError("no metrics to plot: the metrics list is empty; train for at least one epoch")

    def series(key: str) -> tuple[list, list]:
        pts = [(m.get("epoch", i + 1), m[key]) for i, m in enumerate(metrics)
               if m.get(key) is not None and np.isfinite(m[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    losses = {k: xy for k in LOSS_KEYS if (xy := series(k))[0]}
    accs = {k: xy for k in ACC_KEYS if (xy := series(k))[0]}
    lr, speed = series("lr"), series("images_per_s")
    panels = [p for p, has in (("loss", losses), ("error", accs), ("lr", lr[0] or speed[0])) if has]
    if not panels:
        raise RamError("nothing to plot: the metrics hold none of "
                       f"{', '.join(LOSS_KEYS + ACC_KEYS + ('lr', 'images_per_s'))}")

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3, which="both")
        if panel == "loss":
            for key, (xs, ys) in losses.items():
                ax.plot(xs, ys, marker=".", label=key)
            ax.set(title="losses", ylabel="loss")
        elif panel == "error":
            percent = max(max(ys) for _, ys in accs.values()) > 1.0  # accuracies given in %
            errors = {k: (xs, [100.0 - a if percent else 100.0 * (1.0 - a) for a in ys])
                      for k, (xs, ys) in accs.items()}
            for key, (xs, err) in errors.items():
                line, = ax.plot(xs, err, marker=".", label=f"{key[:-4]} (last {err[-1]:.2f}%)")
                if key == "valid_acc":  # the epoch a checkpoint would be selected on
                    best = int(np.argmin(err))
                    ax.plot(xs[best], err[best], "*", ms=12, color=line.get_color(),
                            label=f"best valid {err[best]:.2f}% @ {xs[best]}")
            if min(e for _, err in errors.values() for e in err) > 0:  # log shows 1% vs 0.5% apart
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # not "10^0"
                ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
            ax.set(title="error", ylabel="error (%)")
        else:
            twin = ax.twinx() if lr[0] and speed[0] else ax  # lr and speed differ by 1e7
            if lr[0]:
                ax.plot(*lr, color="tab:green", marker=".", label="lr")
                ax.set(yscale="log", ylabel="learning rate")
            if speed[0]:
                twin.plot(*speed, color="tab:purple", marker=".", label="images/s")
                twin.set_ylabel("images / s")
            ax.set_title("schedule and speed")
        handles = [h for a in dict.fromkeys([ax, twin if panel == "lr" else ax])
                   for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles=handles, fontsize=8)  # one legend, even across twin axes
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------- glimpses
def draw_glimpses(images, locations, glimpse_size: int, num_scales: int, labels=None, preds=None,
                  class_names: Sequence[str] | None = None, path="glimpses.png", ncols: int = 8) -> Path:
    """A grid of images, each with its glimpse path: boxes per scale, numbered steps, a trail."""
    imgs, locs = _check(images, locations)
    b, t = locs.shape[:2]
    h, w = imgs.shape[1:3]
    ncols = max(1, min(ncols, b))
    nrows = math.ceil(b / ncols)
    colours = plt.get_cmap(STEP_CMAP)(np.linspace(0, 1, t))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:b]):
        # extent puts pixel column c on [c, c + 1], so a box's corners are its pixel edges
        ax.imshow(imgs[i], extent=(0, w, h, 0), interpolation="nearest", vmin=0, vmax=1)
        centres = []
        for s in range(t):
            for k in range(num_scales):
                x0, y0, x1, y1 = glimpse_box(locs[i, s], (h, w), glimpse_size * 2 ** k)
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colours[s],
                                       lw=1.4 if k == 0 else 0.8, alpha=1.0 if k == 0 else 0.6,
                                       ls="-" if k == 0 else "--"))
                if k == 0:
                    centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
        cx, cy = zip(*centres)
        ax.plot(cx, cy, color="white", lw=0.8, alpha=0.7)
        for s, (x, y) in enumerate(centres):
            ax.text(x, y, str(s + 1), fontsize=6, ha="center", va="center", color="black",
                    bbox=dict(boxstyle="circle,pad=0.15", fc=colours[s], ec="none", alpha=0.9))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        title, wrong = _title(i, labels, preds, class_names, arrow="→")
        ax.set_title(title, fontsize=9, color="red" if wrong else "black")
    fig.tight_layout()
    return _save(fig, path)


def animate_glimpses(images, locations, glimpse_size: int, num_scales: int, path, labels=None,
                     preds=None, class_names: Sequence[str] | None = None, ncols: int = 4,
                     fps: float = 2) -> Path:
    """An animated GIF of a batch: frame t shows glimpse t's boxes and the trail so far."""
    imgs, locs = _check(images, locations)
    b, t = locs.shape[:2]
    h, w = imgs.shape[1:3]
    f = max(1, 160 // max(h, w))  # integer upscale keeps pixels square and boxes exact
    ncols = max(1, min(ncols, b))
    nrows = math.ceil(b / ncols)
    font, arrow = _font(12)
    colours = [tuple(int(255 * c) for c in rgba[:3]) for rgba in plt.get_cmap(STEP_CMAP)(np.linspace(0, 1, t))]
    pixels = (np.clip(imgs, 0, 1) * 255).astype(np.uint8)
    pad, title_h, header_h = 4, 16, 18
    tile_w, tile_h = w * f, h * f + title_h
    size = (pad + ncols * (tile_w + pad), header_h + nrows * (tile_h + pad))
    frames = []
    for step in range(t):
        canvas = Image.new("RGB", size, (30, 30, 30))
        draw = ImageDraw.Draw(canvas)
        draw.text((pad, 2), f"glimpse {step + 1} / {t}", fill=(255, 255, 255), font=font)
        for i in range(b):
            x, y = pad + (i % ncols) * (tile_w + pad), header_h + (i // ncols) * (tile_h + pad)
            title, wrong = _title(i, labels, preds, class_names, arrow=arrow)
            draw.text((x, y), title, fill=(255, 80, 80) if wrong else (230, 230, 230), font=font)
            canvas.paste(_draw_tile(pixels[i], locs[i, : step + 1], glimpse_size, num_scales, f, colours),
                         (x, y + title_h))
        frames.append(np.asarray(canvas))
    return animate_frames(frames, path, fps, hold_last=4)


def _draw_tile(pixels: np.ndarray, locs: np.ndarray, glimpse_size: int, num_scales: int, f: int,
               colours: Sequence[tuple]) -> Image.Image:
    """One image upscaled f times, the trail through locs, and the boxes of the last location.

    Drawn on the tile alone, so boxes that stick out are cut at the image's edge.
    """
    h, w = pixels.shape[:2]
    tile = Image.fromarray(pixels).resize((w * f, h * f), Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    last = len(locs) - 1
    centres = []
    for s, loc in enumerate(locs):
        x0, y0, x1, y1 = glimpse_box(loc, (h, w), glimpse_size)
        centres.append(((x0 + x1) * f // 2, (y0 + y1) * f // 2))
    if len(centres) > 1:
        draw.line(centres, fill=(200, 200, 200), width=1)
    r = max(1, f // 2)
    for s, (cx, cy) in enumerate(centres):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[s])
    for k in range(num_scales):
        x0, y0, x1, y1 = glimpse_box(locs[last], (h, w), glimpse_size * 2 ** k)
        # pixel c spans [c*f, (c+1)*f - 1]; the outline is drawn inside the box's own pixels
        draw.rectangle((x0 * f, y0 * f, x1 * f - 1, y1 * f - 1), outline=colours[last],
                       width=2 if k == 0 and f >= 3 else 1)
    return tile


def animate_frames(frames: list[np.ndarray], path, fps: float = 2, hold_last: float = 1.0) -> Path:
    """Write HxWx3 uint8 frames as a looping GIF; the last frame stays `hold_last` times longer."""
    if not frames:
        raise RamError("no frames to animate: pass at least one HxWx3 uint8 frame")
    if fps <= 0:
        raise RamError(f"fps must be positive, got {fps}; pass e.g. fps=2")
    # fast octree quantisation: Pillow's default median cut takes seconds on photo-like frames
    images = [Image.fromarray(np.asarray(fr, dtype=np.uint8)).convert("RGB")
              .quantize(256, method=Image.Quantize.FASTOCTREE) for fr in frames]
    duration = [round(1000 / fps)] * len(images)
    duration[-1] = round(duration[-1] * hold_last)
    path = _prepare(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


# ----------------------------------------------------------------------------- helpers
def _check(images, locations) -> tuple[np.ndarray, np.ndarray]:
    """(B,C,H,W) images and (B,T,2) locations as numpy, images made (B,H,W,3) for drawing."""
    imgs = torch.as_tensor(images).detach().cpu().float().numpy()
    locs = torch.as_tensor(locations).detach().cpu().float().numpy()
    if imgs.ndim != 4 or imgs.shape[1] not in (1, 3):
        raise RamError(f"images must be (B, C, H, W) with C = 1 or 3, got shape {tuple(imgs.shape)}")
    if locs.ndim != 3 or locs.shape[2] != 2 or locs.shape[0] != imgs.shape[0] or locs.shape[1] == 0:
        raise RamError(f"locations must be (B, T, 2) with B = {imgs.shape[0]} and T >= 1, "
                       f"got shape {tuple(locs.shape)}")
    imgs = np.repeat(imgs, 3, axis=1) if imgs.shape[1] == 1 else imgs
    return np.clip(imgs.transpose(0, 2, 3, 1), 0, 1), locs


def _title(i: int, labels, preds, class_names, arrow: str) -> tuple[str, bool]:
    """'label → pred' for image i and whether the prediction is wrong."""
    name = lambda v: str(class_names[v]) if class_names is not None else str(v)  # noqa: E731
    lab = None if labels is None else int(labels[i])
    pred = None if preds is None else int(preds[i])
    parts = [name(v) for v in (lab, pred) if v is not None]
    return f" {arrow} ".join(parts), lab is not None and pred is not None and lab != pred


@lru_cache(maxsize=4)
def _font(size: int):
    """matplotlib's DejaVu Sans (it has the arrow); Pillow's default font and '->' otherwise."""
    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), size), "→"
    except (OSError, ValueError):
        return ImageFont.load_default(), "->"


def _prepare(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save(fig, path) -> Path:
    path = _prepare(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
