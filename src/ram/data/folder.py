"""The user's own images, read from an ImageFolder-style tree into uint8 tensors.

Layouts (class folders are sorted by name; a class's label is its index in that order):

* ``root/<class>/...``: one pool; the caller makes the seeded train/valid split.
* ``root/train/<class>/...``, optionally with ``root/val/<class>/...`` and/or
  ``root/test/<class>/...``: explicit splits. ``val/`` is the validation set (without
  it the caller splits ``train/``); ``test/`` is the test set. Every split must hold the
  same class folders.
* ``root/<class>/...`` plus ``root/test/<class>/...``: a pool and a test set.

So at the top of the tree the names ``train``, ``val`` and ``test`` always name splits,
never classes; a ``train/`` or ``val/`` beside class folders is refused as ambiguous.

Files are found recursively inside each class folder; png/jpg/jpeg/bmp in any case are
read, hidden files and folders are ignored. Decoding happens once: the result is cached
as ``.ram_cache_<key>.pt`` and rebuilt whenever an image file is added, removed or
modified, the requested size or channels change, or the folder moves. If the cache
cannot be written next to the images (or in ``cache_dir``), ``~/.cache/ram/`` is used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ram.errors import RamError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
CACHE_VERSION = 2
SPLITS = ("train", "val", "test")  # reserved names at the top of a tree
_BAD_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class FolderData:
    train_images: torch.Tensor          # uint8 (N, C, S, S)
    train_labels: torch.Tensor          # int64 (N,)
    valid_images: torch.Tensor | None   # None unless the tree has a val/
    valid_labels: torch.Tensor | None
    class_names: list[str]
    skipped: list[tuple[str, str]]      # (path, reason) of files that could not be read
    test_images: torch.Tensor | None = None  # None unless the tree has a test/
    test_labels: torch.Tensor | None = None


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_dirs(root: Path) -> dict[str, Path]:
    """Split name -> the folder holding its class folders (see the module docstring)."""
    top = {d.name: d for d in _visible_dirs(root)}
    found = {s: top[s] for s in SPLITS if s in top}
    classes = sorted(set(top) - set(SPLITS))
    if "train" in found and classes:
        raise RamError(f"{root} holds train/ and also class folders {classes[:3]}; "
                       f"move those into {root / 'train'}/ or remove train/")
    if "val" in found and "train" not in found:
        raise RamError(f"{root} has a val/ split but no train/; "
                       f"put the training images in {root / 'train'}/<class>/")
    return {"train": found.get("train", root), **{s: found[s] for s in ("val", "test") if s in found}}


def _scan(split_dir: Path, skip: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """Class name -> sorted image files; refuses an empty class, which could not be learned."""
    classes = {}
    for d in _visible_dirs(split_dir):
        if d.name in skip:
            continue  # a split folder beside the pool's class folders, not a class
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if not files:
            raise RamError(f"class folder {d} holds no png/jpg/jpeg/bmp images; "
                           "add images to it or remove it")
        classes[d.name] = files
    return classes


def read_image(path: Path, image_size: int | None, channels: int | None) -> np.ndarray:
    """One image as uint8 (H, W) when grayscale or (H, W, 3) otherwise.

    Grayscale modes (1/L/LA/I;16/...) stay one channel (alpha dropped, 16-bit scaled to
    8 bits); every other mode (RGBA, P, CMYK, ...) becomes RGB. ``channels`` forces 1
    (luma) or 3. With ``image_size`` the shorter side is resized to it (bilinear,
    antialiased) and the centre ``image_size`` x ``image_size`` square is kept.
    """
    with Image.open(path) as img:
        img.load()
        gray = img.mode in GRAY_MODES if channels is None else channels == 1
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            if img.mode != "F":
                arr = arr / 257.0  # 16-bit range onto 8 bits
            img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        img = img.convert("L" if gray else "RGB")
    if image_size is not None:
        w, h = img.size
        if min(w, h) != image_size:
            scale = image_size / min(w, h)
            w, h = max(image_size, round(w * scale)), max(image_size, round(h * scale))
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        left, top = (w - image_size) // 2, (h - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    return np.asarray(img, dtype=np.uint8)


def _cache_paths(root: Path, cache_dir, files: list[Path], image_size, channels) -> list[Path]:
    # The prefix names this folder and configuration, so pruning stale caches (see _save)
    # never touches another folder's cache in a shared cache folder.
    config = f"{CACHE_VERSION}|{image_size}|{channels}|{root}"
    config = hashlib.sha256(config.encode()).hexdigest()[:8]
    content = hashlib.sha256()
    for f in files:
        st = f.stat()
        line = f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n"
        content.update(line.encode())
    name = f".ram_cache_{config}-{content.hexdigest()[:16]}.pt"
    return [Path(cache_dir or root) / name, Path.home() / ".cache" / "ram" / name]


def _save(blob: dict, path: Path) -> None:
    """Atomic write (temp file + rename) so an interrupted run never leaves a torn cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(blob, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    config = path.name.split("-")[0]  # older caches of this configuration are now stale
    for old in path.parent.glob(config + "-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)


def _report(root: Path, skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = [(str(root / rel), reason) for rel, reason in skipped]
    for path, reason in out:
        warnings.warn(f"skipped unreadable image {path}: {reason}", stacklevel=3)
    if out:
        warnings.warn(f"skipped {len(out)} unreadable image file(s) under {root}", stacklevel=3)
    return out


def load_folder(root, image_size: int | None = None, channels: int | None = None,
                cache_dir=None, progress: bool = True) -> FolderData:
    """Read an image tree (see the module docstring) into uint8 (N, C, S, S) tensors.

    ``channels`` None means 1 when every image is grayscale and 3 otherwise. Without
    ``image_size`` all images must share one square size; otherwise each is resized so
    its shorter side is ``image_size`` (bilinear, antialiased), then centre-cropped.
    Unreadable files are skipped, warned about and listed in ``skipped``.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise RamError(f"--data_dir {root} is not a folder; "
                       "pass a folder with one subfolder per class")
    if channels not in (None, 1, 3):
        raise RamError(f"channels must be 1 or 3, not {channels}")
    if image_size is not None and image_size < 1:
        raise RamError(f"--image_size must be positive, not {image_size}")
    dirs = _split_dirs(root)
    splits = {s: _scan(d, SPLITS if d == root else ()) for s, d in dirs.items()}
    for s in splits.keys() - {"train"}:
        if set(splits[s]) != set(splits["train"]):
            t, o = set(splits["train"]), set(splits[s])
            raise RamError(f"class folders differ between {dirs['train']} and {dirs[s]} "
                           f"(only in train: {sorted(t - o)}, only in {s}: {sorted(o - t)}); "
                           "give every split the same class folders")
    class_names = sorted(splits["train"])
    if not class_names:
        raise RamError(f"no class subfolders with images in {dirs['train']}; "
                       f"put each class's images in {dirs['train']}/<class>/")
    items = [(s, label, f) for s, classes in splits.items()
             for label, name in enumerate(class_names) for f in classes[name]]

    paths = _cache_paths(root, cache_dir, [f for _, _, f in items], image_size, channels)
    for path in paths:
        if path.is_file():
            try:
                blob = torch.load(path, weights_only=True)
            except Exception:  # a damaged cache is only a cache: decode again
                continue
            return FolderData(blob["train_images"], blob["train_labels"],
                              blob["valid_images"], blob["valid_labels"],
                              blob["class_names"], _report(root, blob["skipped"]),
                              blob["test_images"], blob["test_labels"])

    arrays, kept, skipped = [], [], []
    for s, label, f in tqdm(items, desc=f"decoding {root.name}", unit="img", disable=not progress):
        try:
            arrays.append(read_image(f, image_size, channels))
            kept.append((s, label, f))
        except _BAD_IMAGE as e:
            skipped.append((f.relative_to(root).as_posix(), f"{type(e).__name__}: {e}"))
    reported = _report(root, skipped)  # before any refusal below, which they may explain
    if not arrays:
        raise RamError(f"none of the image files under {root} could be read")
    decoded = {(s, label) for s, label, _ in kept}
    for s, label in {(s, label) for s, label, _ in items} - decoded:
        raise RamError(f"class folder {dirs[s] / class_names[label]} holds no readable image; "
                       "fix or remove it")
    shapes = {}
    for a, (_, _, f) in zip(arrays, kept):
        shapes.setdefault(a.shape[:2], f)
    if len(shapes) > 1:
        (s1, f1), (s2, f2) = list(shapes.items())[:2]
        raise RamError(f"images differ in size ({f1} is {s1[1]}x{s1[0]}, "
                       f"{f2} is {s2[1]}x{s2[0]}); "
                       "pass --image_size to resize and centre-crop them all")
    (h, w), = shapes
    if h != w:
        raise RamError(f"images are {w}x{h}, not square (e.g. {shapes[(h, w)]}); "
                       "pass --image_size to resize and centre-crop them")
    c = 3 if any(a.ndim == 3 for a in arrays) else 1
    stacked = np.stack([np.repeat(a[..., None], 3, 2) if a.ndim == 2 and c == 3
                        else a.reshape(h, w, c) for a in arrays])
    images = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label, _ in kept], dtype=torch.int64)
    split = np.array([s for s, _, _ in kept])
    blob = {"class_names": class_names, "skipped": skipped}
    for s, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        mask = torch.from_numpy(split == s)
        blob[f"{key}_images"] = images[mask] if s in splits else None
        blob[f"{key}_labels"] = labels[mask] if s in splits else None
    for path in paths:
        try:
            _save(blob, path)
            break
        except OSError:  # read-only data folder: fall back to the user's cache folder
            continue
    else:
        warnings.warn(f"could not write a cache for {root} to {paths[0].parent} or "
                      f"{paths[1].parent}; it will be decoded again next time", stacklevel=2)
    return FolderData(blob["train_images"], blob["train_labels"], blob["valid_images"],
                      blob["valid_labels"], class_names, reported,
                      blob["test_images"], blob["test_labels"])


def build_folder_data(config, device: torch.device | str):
    """The tree at ``config.data_dir`` as a :class:`ram.data.Data` on ``device``.

    * Validation: the tree's ``val/`` when it has one; otherwise a seeded split of the
      training images, ``mnist.train_valid_split(n, config.valid_size, config.valid_split_seed())``,
      the same rule as for MNIST.
    * Test: the tree's ``test/`` when it has one; otherwise the validation set stands
      in for it (a warning says so), so the "test" figures are then validation figures.
    * ``config.channels``, ``config.num_classes`` and ``config.image_size`` are set from
      what was read, before the model is built from the config (the Trainer builds the
      data first). ``config.image_size`` 0 means "the images' own size" (all must then
      be square and equal); any other value resizes and centre-crops every image.
    * ``config.train_size`` N > 0 keeps the first N training images, as for MNIST.
    * The channels follow the images (1 if all are grayscale, else 3); the decode cache
      sits beside the data, as for :func:`load_folder`.
    """
    from .batches import Data
    from .mnist import train_valid_split

    loaded = load_folder(config.data_dir, image_size=config.image_size or None)
    x, y = loaded.train_images, loaded.train_labels
    if loaded.valid_images is not None:
        train_x, train_y, valid_x, valid_y = x, y, loaded.valid_images, loaded.valid_labels
    else:
        train_idx, valid_idx = train_valid_split(len(y), config.valid_size, config.valid_split_seed())
        train_x, train_y, valid_x, valid_y = x[train_idx], y[train_idx], x[valid_idx], y[valid_idx]
    if getattr(config, "train_size", 0):  # quick runs: the first N training images only
        train_x, train_y = train_x[:config.train_size], train_y[:config.train_size]
    if loaded.test_images is not None:
        test_x, test_y = loaded.test_images, loaded.test_labels
    else:
        test_x, test_y = valid_x, valid_y
        warnings.warn(f"{config.data_dir} has no test/ folder: the validation set "
                      f"({len(valid_y)} images) stands in as the test set, so test figures "
                      "are validation figures", stacklevel=2)
    config.channels, config.image_size = train_x.shape[1], train_x.shape[-1]
    config.num_classes = len(loaded.class_names)
    put = lambda t: t.to(device)  # noqa: E731
    return Data(put(train_x), put(train_y), put(valid_x), put(valid_y), put(test_x), put(test_y),
                list(loaded.class_names), variant=None)
