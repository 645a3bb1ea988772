"""MNIST and Fashion-MNIST: IDX reading, checksum verification, download and splits.

Files are looked for as ``<data_dir>/MNIST/raw/<name>`` (or ``FashionMNIST/raw``), the
layout torchvision uses, either gzip-compressed (``<name>.gz``) or decompressed. Every
file is checked against the official checksums before use: a model trained on a
silently corrupted file gives numbers nobody can compare, so a bad file is refused,
never used.

Verification policy:

- The MD5 of the DECOMPRESSED bytes must match the official value, whatever the
  compression: mirrors and packagers (Debian's dataset-fashion-mnist, for one) recompress
  the .gz wrappers, so their own sums vary while the data inside does not.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ram.errors import RamError

# IDX element types (third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# Deflate cannot expand data by more than about 1032:1, so a gzip file whose header
# claims more than this many bytes per compressed byte is broken; checking first avoids
# allocating the absurd amount a corrupted header may ask for.
_MAX_GZIP_RATIO = 1100
_FIX = "delete it and re-download or re-copy it"
DOWNLOAD_TIMEOUT_S = 30.0

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


@dataclass(frozen=True)
class _File:
    """One file of a data set: its name without .gz, expected shape and checksums."""

    name: str
    shape: tuple[int, ...]
    md5: str  # official MD5 of the decompressed bytes


@dataclass(frozen=True)
class _Dataset:
    title: str
    folder: str                        # relative to data_dir
    mirror: str                        # base URL; file URL = mirror + name + ".gz"
    train: tuple[_File, _File]         # (images, labels)
    test: tuple[_File, _File]
    system_dirs: tuple[Path, ...] = ()  # read-only places a system package installs it to


_DATASETS: dict[str, _Dataset] = {
    "mnist": _Dataset(
        title="MNIST",
        folder="MNIST/raw",
        mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
        train=(_File("train-images-idx3-ubyte", (60000, 28, 28), md5="6bbc9ace898e44ae57da46a324031adb"),
               _File("train-labels-idx1-ubyte", (60000,), md5="a25bea736e30d166cdddb491f175f624")),
        test=(_File("t10k-images-idx3-ubyte", (10000, 28, 28), md5="2646ac647ad5339dbf082846283269ea"),
              _File("t10k-labels-idx1-ubyte", (10000,), md5="27ae3e4e09519cfbb04c329615203637")),
    ),
    "fashion-mnist": _Dataset(
        title="Fashion-MNIST",
        folder="FashionMNIST/raw",
        mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        train=(_File("train-images-idx3-ubyte", (60000, 28, 28), md5="f4a8712d7a061bf5bd6d2ca38dc4d50a"),
               _File("train-labels-idx1-ubyte", (60000,), md5="9018921c3c673c538a1fc5bad174d6f9")),
        test=(_File("t10k-images-idx3-ubyte", (10000, 28, 28), md5="8181f5470baa50b63fa0f6fddb340f0a"),
              _File("t10k-labels-idx1-ubyte", (10000,), md5="15d484375f8d13e6eb1aabb0c3f46965")),
        # Debian's dataset-fashion-mnist package installs the four original .gz files here.
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
}


def _read_idx(path: Path) -> tuple[torch.Tensor, str]:
    """Parse an IDX file in one pass (decompressing once); return (tensor, MD5 of decompressed bytes)."""
    try:
        with open(path, "rb") as raw:
            # Sniff the content instead of trusting the suffix: IDX starts with 00 00, gzip with 1f 8b.
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            file_size = os.fstat(raw.fileno()).st_size
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            head = stream.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise RamError(f"{path} is not an IDX file (magic number {head.hex() or 'missing'}); {_FIX}")
            code, ndim = head[2], head[3]
            if code not in _IDX_DTYPES:
                raise RamError(f"{path}: unknown IDX element type 0x{code:02x}; {_FIX}")
            dims = stream.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise RamError(f"{path} is truncated inside its header; {_FIX}")
            shape = struct.unpack(f">{ndim}I", dims)
            dtype = _IDX_DTYPES[code]
            need = math.prod(shape) * dtype.itemsize
            have = file_size - 4 - 4 * ndim
            if not gzipped and have != need:
                what = "truncated" if have < need else "longer than its header says"
                raise RamError(f"{path} is {what} ({have} data bytes, header says {need}); {_FIX}")
            if gzipped and need > _MAX_GZIP_RATIO * file_size:
                raise RamError(f"{path} is truncated (header says {need} bytes, too many for a "
                               f"{file_size}-byte gzip file); {_FIX}")
            data = np.empty(need, dtype=np.uint8)
            got = stream.readinto(memoryview(data)) if need else 0
            if got < need:
                raise RamError(f"{path} is truncated ({got} data bytes, header says {need}); {_FIX}")
            if stream.read(1):
                raise RamError(f"{path} is longer than its header says; {_FIX}")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise RamError(f"{path} is a truncated or corrupted gzip file ({_one_line(e)}); {_FIX}") from e
    except OSError as e:
        raise RamError(f"cannot read {path} ({_one_line(e)}); check it exists and is readable") from e
    md5 = hashlib.md5(head)
    md5.update(dims)
    md5.update(data)
    values = data.view(dtype).reshape(shape)
    if dtype.itemsize > 1:
        values = values.astype(dtype.newbyteorder("="))
    return torch.from_numpy(values), md5.hexdigest()


def load_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (gzip-compressed or not) into a tensor of its shape and type.

    The magic number, element type, dimensions and exact byte count are validated; a
    truncated, oversized or corrupted file raises RamError naming the file.
    """
    return _read_idx(Path(path))[0]


def check_images_labels(images: torch.Tensor, labels: torch.Tensor, source: str,
                        num_classes: int = 10) -> None:
    """Refuse an images/labels pair that cannot belong together (counts or label range)."""
    if images.ndim != 3 or labels.ndim != 1:
        raise RamError(f"{source}: expected images (N, H, W) and labels (N,), got shapes "
                       f"{tuple(images.shape)} and {tuple(labels.shape)}; check the files")
    if images.shape[0] != labels.shape[0]:
        raise RamError(f"{source}: {images.shape[0]} images but {labels.shape[0]} labels, so the "
                       "images and labels files do not belong together; re-copy the matching pair")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise RamError(f"{source}: labels outside 0..{num_classes - 1} "
                       f"(found {int(labels.min())}..{int(labels.max())}); re-copy the labels file")


def _load_verified(spec: _File, path: Path) -> torch.Tensor:
    """Read a file and refuse it unless it is exactly the official one (see module doc)."""
    tensor, md5 = _read_idx(path)
    if tuple(tensor.shape) != spec.shape or tensor.dtype != torch.uint8:
        raise RamError(f"{path} holds a {tensor.dtype} array of shape {tuple(tensor.shape)}, expected "
                       f"uint8 {spec.shape}: it is not {spec.name}; {_FIX}")
    if md5 != spec.md5:
        raise RamError(f"{path} has the wrong checksum (md5 of its decompressed bytes {md5}, expected "
                       f"{spec.md5}): it is corrupted or not the official file; {_FIX}")
    return tensor


def _find(ds: _Dataset, spec: _File, data_dir: Path) -> Path | None:
    """The first of <dir>/<name>, <dir>/<name>.gz over data_dir's folder then system dirs."""
    for folder in (data_dir / ds.folder, *ds.system_dirs):
        for candidate in (folder / spec.name, folder / f"{spec.name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _download(ds: _Dataset, spec: _File, dest: Path) -> torch.Tensor:
    """Fetch <mirror>/<name>.gz to a temporary file, verify it, then rename it into place.

    The rename is atomic, so an interrupted or corrupted download never leaves a file
    under the real name. Network failures propagate as OSError/HTTPException.
    """
    url = ds.mirror + spec.name + ".gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        print(f"downloading {url}", file=sys.stderr)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        try:
            tensor = _load_verified(spec, tmp)
        except RamError as e:
            raise RamError(f"the file downloaded from {url} failed verification ({e}); try again later "
                           f"or get it by hand from {ds.mirror} into {dest.parent}/") from e
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        return tensor
    finally:
        tmp.unlink(missing_ok=True)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def load_dataset(name: str, data_dir: str | os.PathLike, train: bool,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the training (60,000) or test (10,000) split of "mnist" or "fashion-mnist".

    Returns uint8 images (N, 28, 28) and int64 labels (N,). Files missing from
    ``<data_dir>/<folder>/`` (and from the system folders) are downloaded when
    ``download`` is true; otherwise, or when that fails, a RamError says which files
    to put where and where to get them.
    """
    key = name.lower().replace("_", "-")
    if key not in _DATASETS:
        raise RamError(f"unknown dataset {name!r}; known: {', '.join(_DATASETS)}")
    ds = _DATASETS[key]
    data_dir = Path(data_dir).expanduser()
    specs = ds.train if train else ds.test
    found = [_find(ds, spec, data_dir) for spec in specs]
    folder = data_dir / ds.folder
    tensors: list[torch.Tensor | None] = [None, None]
    missing = [spec for spec, path in zip(specs, found) if path is None]
    if missing:
        reason = "automatic download is off"
        if download:
            try:
                for i, spec in enumerate(specs):
                    if found[i] is None:
                        tensors[i] = _download(ds, spec, folder / f"{spec.name}.gz")
                reason = ""
            except (OSError, http.client.HTTPException, ValueError) as e:
                reason = f"download failed: {_one_line(e)}"
        if reason:
            names = " and ".join(f"{s.name}.gz" for s, p, t in zip(specs, found, tensors)
                                 if p is None and t is None)
            also = " (or install Debian's dataset-fashion-mnist package)" if ds.system_dirs else ""
            raise RamError(f"{ds.title} {'training' if train else 'test'} data not found: put {names} "
                           f"(or the decompressed files) in {folder}/{also}; get them from {ds.mirror} "
                           f"({reason})")
    for i, spec in enumerate(specs):
        if tensors[i] is None:
            tensors[i] = _load_verified(spec, found[i])
    images, labels = tensors[0], tensors[1].long()
    check_images_labels(images, labels, f"{ds.title} {'training' if train else 'test'} files in {folder}",
                        num_classes=len(CLASS_NAMES[key]))
    return images, labels


def train_valid_split(n: int, valid_size: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices 0..n-1 into sorted (train, valid) index tensors by a seeded permutation.

    The permutation comes from a CPU torch.Generator, so the same (n, valid_size, seed)
    gives the same split on every machine. The valid part has round(valid_size * n)
    indices (at least one when valid_size > 0); valid_size 0 gives an empty valid set.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RamError(f"cannot split {n!r} examples; the count must be a non-negative integer")
    if isinstance(valid_size, bool) or not isinstance(valid_size, (int, float)) \
            or not 0 <= valid_size < 1:
        raise RamError(f"valid_size {valid_size!r} must be a fraction in [0, 1)")
    n_valid = 0 if valid_size == 0 else max(1, round(valid_size * n))
    if valid_size > 0 and n_valid >= n:
        raise RamError(f"valid_size {valid_size} of {n} examples leaves none to train on; "
                       "use a smaller valid_size or more data")
    perm = torch.randperm(n, generator=torch.Generator(device="cpu").manual_seed(seed))
    return perm[n_valid:].sort().values, perm[:n_valid].sort().values
