"""MNIST / Fashion-MNIST loading: real data, checksums, refusals of broken files, splits."""

import dataclasses
import gzip
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ram.data import mnist
from ram.data.mnist import CLASS_NAMES, check_images_labels, load_dataset, load_idx, train_valid_split
from ram.errors import RamError

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = _SHARED if (_SHARED / "MNIST" / "raw").is_dir() else Path(__file__).resolve().parents[1] / "data"
RAW = DATA / "MNIST" / "raw"
TEST_FILES = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _raw_bytes(name: str) -> bytes:
    return gzip.decompress((RAW / f"{name}.gz").read_bytes())


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    """IDX bytes for `array`: magic (00 00 type ndim), big-endian dims, big-endian data."""
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A data_dir whose MNIST/raw/ holds exactly `files` (name -> bytes)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    return tmp_path


def _test_files(**replace: bytes) -> dict[str, bytes]:
    """The real test-split files decompressed, with some replaced (keyword = file name, '-' as '_')."""
    files = {name: _raw_bytes(name) for name in TEST_FILES}
    files.update({k.replace("_", "-"): v for k, v in replace.items()})
    return files


@pytest.fixture(scope="module")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("mnist", DATA, train=False, download=False)


def test_real_mnist_train_loads_with_known_values():
    images, labels = load_dataset("mnist", DATA, train=True, download=False)
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,) and labels.dtype == torch.int64
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # The well-known pixel mean 0.1307 and std 0.3081, from an exact histogram (no float copy).
    hist = torch.bincount(images.flatten(), minlength=256).double()
    value = torch.arange(256, dtype=torch.float64) / 255
    mean = (hist * value).sum().item() / images.numel()
    assert abs(mean - 0.1307) < 1e-4
    assert abs(math.sqrt((hist * value**2).sum().item() / images.numel() - mean**2) - 0.3081) < 1e-4


def test_real_mnist_test_split(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(images.max()) == 255 and int(images.min()) == 0


def test_load_idx_matches_naive_parse():
    data = _raw_bytes("t10k-images-idx3-ubyte")
    n, h, w = struct.unpack(">III", data[4:16])
    expected = np.frombuffer(data[16:], dtype=np.uint8).reshape(n, h, w)
    got = load_idx(RAW / "t10k-images-idx3-ubyte.gz")
    assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), expected)


def test_load_idx_multibyte_big_endian(tmp_path):
    values = np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=">i2")
    path = tmp_path / "x-idx2-short"
    path.write_bytes(_idx(values, code=0x0B))
    got = load_idx(path)
    assert got.dtype == torch.int16 and got.tolist() == values.tolist()


def test_decompressed_files_load_the_same(tmp_path, mnist_test):
    images, labels = load_dataset("mnist", _folder(tmp_path, _test_files()), train=False, download=False)
    assert torch.equal(images, mnist_test[0]) and torch.equal(labels, mnist_test[1])


def test_truncated_gz_is_refused(tmp_path):
    data = (RAW / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(RamError, match=r"t\.gz is a truncated.*delete it and re-download"):
        load_idx(tmp_path / "t.gz")
    # Same through the data-set loader, with a full-length compressed stream of a short file.
    short = gzip.compress(_raw_bytes("t10k-labels-idx1-ubyte")[:-1])
    files = {"t10k-images-idx3-ubyte": _raw_bytes("t10k-images-idx3-ubyte"),
             "t10k-labels-idx1-ubyte.gz": short}
    with pytest.raises(RamError, match=r"t10k-labels-idx1-ubyte\.gz is truncated \(9999 data bytes"):
        load_dataset("mnist", _folder(tmp_path / "d", files), train=False, download=False)


def test_oversized_gz_is_refused(tmp_path):
    (tmp_path / "t.gz").write_bytes(gzip.compress(_raw_bytes("t10k-labels-idx1-ubyte") + b"\0"))
    with pytest.raises(RamError, match=r"t\.gz is longer than its header says; delete it"):
        load_idx(tmp_path / "t.gz")


@pytest.mark.parametrize("extra", [-1, 1])
def test_truncated_or_oversized_raw_is_refused(tmp_path, extra):
    data = _raw_bytes("t10k-labels-idx1-ubyte")
    data = data[:extra] if extra < 0 else data + b"\0"
    (tmp_path / "labels").write_bytes(data)
    with pytest.raises(RamError, match="truncated" if extra < 0 else "longer than its header"):
        load_idx(tmp_path / "labels")


def test_corrupted_byte_fails_checksum(tmp_path):
    labels = bytearray(_raw_bytes("t10k-labels-idx1-ubyte"))
    labels[8] = (labels[8] + 1) % 10  # still a valid label, so only the checksum can tell
    root = _folder(tmp_path, _test_files(t10k_labels_idx1_ubyte=bytes(labels)))
    with pytest.raises(RamError, match=r"t10k-labels-idx1-ubyte has the wrong checksum"):
        load_dataset("mnist", root, train=False, download=False)
    # A recompressed corrupted file is refused too: the sum is over the decompressed bytes.
    gz = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").rename(gz)
    gz.write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(RamError, match="wrong checksum"):
        load_dataset("mnist", root, train=False, download=False)


def test_wrong_magic_is_refused(tmp_path):
    data = bytearray(_raw_bytes("t10k-labels-idx1-ubyte"))
    data[0] = 0x42
    (tmp_path / "labels").write_bytes(bytes(data))
    with pytest.raises(RamError, match="not an IDX file"):
        load_idx(tmp_path / "labels")
    data[0], data[2] = 0, 0x07  # valid magic prefix, unknown element type
    (tmp_path / "labels").write_bytes(bytes(data))
    with pytest.raises(RamError, match="unknown IDX element type 0x07"):
        load_idx(tmp_path / "labels")


def test_test_labels_under_train_name_are_refused(tmp_path):
    files = {"train-images-idx3-ubyte": _raw_bytes("t10k-images-idx3-ubyte"),
             "train-labels-idx1-ubyte": _raw_bytes("t10k-labels-idx1-ubyte")}
    with pytest.raises(RamError, match="expected uint8 \\(60000, 28, 28\\)"):
        load_dataset("mnist", _folder(tmp_path, files), train=True, download=False)


def test_mismatched_pair_and_label_range_are_refused():
    images = torch.zeros(5, 28, 28, dtype=torch.uint8)
    with pytest.raises(RamError, match="5 images but 4 labels"):
        check_images_labels(images, torch.zeros(4, dtype=torch.int64), "pair")
    with pytest.raises(RamError, match=r"labels outside 0\.\.9 \(found 0\.\.10\)"):
        check_images_labels(images, torch.tensor([0, 1, 2, 3, 10]), "pair")
    check_images_labels(images, torch.tensor([0, 1, 2, 3, 9]), "pair")  # a good pair passes


def _unreachable(monkeypatch, name: str, mirror: str, system_dirs=()) -> None:
    ds = dataclasses.replace(mnist._DATASETS[name], mirror=mirror, system_dirs=tuple(system_dirs))
    monkeypatch.setitem(mnist._DATASETS, name, ds)
    monkeypatch.setattr(mnist, "DOWNLOAD_TIMEOUT_S", 2.0)


def test_missing_files_with_failing_download_give_one_line(tmp_path, monkeypatch):
    _unreachable(monkeypatch, "mnist", "http://127.0.0.1:9/")
    _folder(tmp_path, {"t10k-labels-idx1-ubyte.gz": (RAW / "t10k-labels-idx1-ubyte.gz").read_bytes()})
    with pytest.raises(RamError) as info:
        load_dataset("mnist", tmp_path, train=False, download=True)
    msg = str(info.value)
    assert "\n" not in msg
    folder = tmp_path / "MNIST" / "raw"
    assert f"put t10k-images-idx3-ubyte.gz (or the decompressed files) in {folder}/" in msg
    assert "t10k-labels" not in msg  # that one is present
    assert "http://127.0.0.1:9/" in msg and "download failed" in msg
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == ["t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(RamError, match="automatic download is off"):
        load_dataset("mnist", tmp_path / "empty", train=True, download=False)


def test_download_verifies_then_renames(tmp_path, monkeypatch, mnist_test):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in TEST_FILES:
        shutil.copy(RAW / f"{name}.gz", mirror / f"{name}.gz")
    _unreachable(monkeypatch, "mnist", mirror.as_uri() + "/")
    images, labels = load_dataset("mnist", tmp_path / "d", train=False)
    assert torch.equal(images, mnist_test[0]) and torch.equal(labels, mnist_test[1])
    raw = tmp_path / "d" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [f"{n}.gz" for n in TEST_FILES]
    # A corrupted file on the mirror is refused and leaves nothing behind.
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(10000, np.uint8))))
    with pytest.raises(RamError, match="failed verification.*wrong checksum"):
        load_dataset("mnist", tmp_path / "e", train=False)
    left = sorted(p.name for p in (tmp_path / "e" / "MNIST" / "raw").iterdir())
    assert left == ["t10k-images-idx3-ubyte.gz"]


def test_fashion_mnist_is_looked_for_in_the_system_dir_and_verified(tmp_path, monkeypatch):
    """Files in the system folder are found, and refused unless they are the official data."""
    system = tmp_path / "usr-share"
    system.mkdir()
    rng = np.random.default_rng(0)
    (system / "t10k-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)))
    (system / "t10k-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 10000, dtype=np.uint8)))
    _unreachable(monkeypatch, "fashion-mnist", "http://127.0.0.1:9/", [system])
    with pytest.raises(RamError, match=r"usr-share/t10k-images-idx3-ubyte has the wrong checksum"):
        load_dataset("fashion_mnist", tmp_path / "d", train=False)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package_passes_verification(tmp_path):
    images, labels = load_dataset("fashion-mnist", tmp_path, train=False, download=False)
    assert images.shape == (10000, 28, 28) and labels[:5].tolist() == [9, 2, 1, 1, 6]


def test_class_names():
    assert len(CLASS_NAMES["fashion-mnist"]) == 10 and CLASS_NAMES["fashion-mnist"][9] == "Ankle boot"
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(RamError, match="unknown dataset 'cifar'; known: mnist, fashion-mnist"):
        load_dataset("cifar", tmp_path, train=True)


def test_split_is_disjoint_complete_and_deterministic():
    train, valid = train_valid_split(1000, 0.1, seed=3)
    assert len(valid) == 100 and len(train) == 900
    assert torch.equal(torch.cat([train, valid]).sort().values, torch.arange(1000))
    again = train_valid_split(1000, 0.1, seed=3)
    assert torch.equal(train, again[0]) and torch.equal(valid, again[1])
    assert not torch.equal(valid, train_valid_split(1000, 0.1, seed=4)[1])
    # The valid part is a random subset, not a block: it spans the index range.
    assert valid.min() < 100 and valid.max() > 900
    # Pinned values: the split must not depend on the machine, the global RNG or a refactor.
    torch.manual_seed(12345)
    assert train_valid_split(1000, 0.1, seed=3)[1][:8].tolist() == [22, 47, 69, 70, 77, 84, 96, 97]


def test_split_edge_cases():
    train, valid = train_valid_split(60000, 0.0, seed=1)
    assert valid.numel() == 0 and torch.equal(train, torch.arange(60000))
    assert train_valid_split(60000, 0.1, seed=1)[1].numel() == 6000
    assert train_valid_split(5, 0.01, seed=1)[1].numel() == 1  # a positive fraction never rounds to none
    for bad in (1.0, -0.1, math.nan, "0.1", True):
        with pytest.raises(RamError, match="valid_size"):
            train_valid_split(100, bad, seed=0)
    with pytest.raises(RamError, match="leaves none to train on"):
        train_valid_split(1, 0.5, seed=0)
    with pytest.raises(RamError, match="non-negative integer"):
        train_valid_split(-1, 0.1, seed=0)
