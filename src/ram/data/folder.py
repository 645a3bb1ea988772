"""The user's own images, read from an ImageFolder-style tree into uint8 tensors.

Layouts (class folders are sorted by name; a class's label is its index in that order):

* ``root/<class>/...``: one pool; the caller makes the seeded train/valid split.
* ``root/train/<class>/...`` and ``root/val/<class>/...``: an explicit split, used when
  both ``train/`` and ``val/`` exist; both must hold the same class folders.

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
CACHE_VERSION = 1
_BAD_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class FolderData:
    train_images: torch.Tensor          # uint8 (N, C, S, S)
    train_labels: torch.Tensor          # int64 (N,)
    valid_images: torch.Tensor | None   # None unless the tree has an explicit val/
    valid_labels: torch.Tensor | None
    class_names: list[str]
    skipped: list[tuple[str, str]]      # (path, reason) of files that could not be read


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files; refuses an empty class, which could not be learned."""
    classes = {}
    for d in _visible_dirs(split_dir):
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if not files:
            raise RamError(f"class folder {d} holds no png/jpg/jpeg/bmp images; "
                           "add images to it or remove it")
        classes[d.name] = files
    return classes


def _decode(path: Path, image_size: int | None, channels: int | None) -> np.ndarray:
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
    explicit = (root / "train").is_dir() and (root / "val").is_dir()
    splits = ({s: _scan(root / s) for s in ("train", "val")} if explicit
              else {"train": _scan(root)})
    if explicit and set(splits["train"]) != set(splits["val"]):
        t, v = set(splits["train"]), set(splits["val"])
        raise RamError(f"class folders differ between {root / 'train'} and {root / 'val'} "
                       f"(only in train: {sorted(t - v)}, only in val: {sorted(v - t)}); "
                       "give both the same class folders")
    class_names = sorted(splits["train"])
    if not class_names:
        raise RamError(f"no class subfolders with images in {root}; "
                       f"put each class's images in {root}/<class>/")
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
                              blob["class_names"], _report(root, blob["skipped"]))

    arrays, kept, skipped = [], [], []
    for s, label, f in tqdm(items, desc=f"decoding {root.name}", unit="img", disable=not progress):
        try:
            arrays.append(_decode(f, image_size, channels))
            kept.append((s, label, f))
        except _BAD_IMAGE as e:
            skipped.append((f.relative_to(root).as_posix(), f"{type(e).__name__}: {e}"))
    reported = _report(root, skipped)  # before any refusal below, which they may explain
    if not arrays:
        raise RamError(f"none of the image files under {root} could be read")
    decoded = {(s, label) for s, label, _ in kept}
    for s, label in {(s, label) for s, label, _ in items} - decoded:
        where = root / s if explicit else root
        raise RamError(f"class folder {where / class_names[label]} holds no readable image; "
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
    is_val = torch.tensor([s == "val" for s, _, _ in kept])
    blob = {"train_images": images[~is_val], "train_labels": labels[~is_val],
            "valid_images": images[is_val] if explicit else None,
            "valid_labels": labels[is_val] if explicit else None,
            "class_names": class_names, "skipped": skipped}
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
                      blob["valid_labels"], class_names, reported)
