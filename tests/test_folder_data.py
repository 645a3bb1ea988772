"""Folder data sets: exact pixels, layouts, refusals and the decode cache."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram.data import folder
from ram.data.folder import load_folder
from ram.errors import RamError

CLASSES = ["circle", "cross", "stripes"]


def _pattern(label: int, i: int, size: int = 20, rgb: bool = False) -> np.ndarray:
    """A class-specific shape plus per-image noise, so both class and image are recoverable."""
    rng = np.random.default_rng(100 * label + i)
    yy, xx = np.mgrid[:size, :size]
    shape = [(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2,
             (abs(yy - xx) < 2) | (abs(yy + xx - size) < 2),
             (yy // 3) % 2 == 0][label]
    img = np.where(shape, 200, 30).astype(np.int64) + rng.integers(0, 50, (size, size))
    if rgb:
        img = np.stack([img, 255 - img, rng.integers(0, 256, (size, size))], -1)
    return img.astype(np.uint8)


def _tree(root: Path, rgb: bool = False, n: int = 6, size: int = 20) -> dict:
    """root/<class>/<i>.png; returns {(label, i): array} as written."""
    written = {}
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(n):
            written[label, i] = _pattern(label, i, size, rgb)
            Image.fromarray(written[label, i]).save(root / name / f"{i:02d}.png")
    return written


def _expected(written: dict, channels: int) -> torch.Tensor:
    arrays = [written[k] for k in sorted(written)]
    t = torch.from_numpy(np.stack(arrays))
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)


def test_grayscale_tree_keeps_exact_pixels_and_labels(tmp_path):
    written = _tree(tmp_path)
    data = load_folder(tmp_path, progress=False)
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (18, 1, 20, 20)
    assert torch.equal(data.train_images, _expected(written, 1))
    assert torch.equal(data.train_labels, torch.tensor([0] * 6 + [1] * 6 + [2] * 6))
    assert data.train_labels.dtype == torch.int64
    assert data.class_names == CLASSES and data.skipped == []
    assert data.valid_images is None and data.valid_labels is None


def test_rgb_tree_keeps_exact_pixels_and_widens_gray_images(tmp_path):
    written = _tree(tmp_path, rgb=True)
    gray = _pattern(1, 9)
    Image.fromarray(gray).save(tmp_path / "cross" / "99.png")
    rgba = np.dstack([_pattern(2, 9, rgb=True), np.full((20, 20), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "stripes" / "99.png")
    data = load_folder(tmp_path, progress=False)
    assert data.train_images.shape == (20, 3, 20, 20)
    images = data.train_images
    originals = torch.cat([images[:12], images[13:19]])  # each class's 99.png sorts last
    assert torch.equal(originals, _expected(written, 3))
    assert torch.equal(images[12], torch.from_numpy(gray).expand(3, 20, 20))  # replicated
    assert torch.equal(images[19], torch.from_numpy(rgba[..., :3]).permute(2, 0, 1))  # no alpha


def test_channels_can_be_forced(tmp_path):
    written = _tree(tmp_path, rgb=True, n=2)
    one = load_folder(tmp_path, channels=1, progress=False).train_images
    luma = np.array(Image.fromarray(written[0, 0]).convert("L"))
    assert one.shape == (6, 1, 20, 20) and torch.equal(one[0, 0], torch.from_numpy(luma))
    with pytest.raises(RamError, match="channels"):
        load_folder(tmp_path, channels=2, progress=False)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits(tmp_path):
    (tmp_path / "a").mkdir()
    values = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 17) * 257  # k * 257 -> k
    Image.fromarray(values).save(tmp_path / "a" / "x.png")
    data = load_folder(tmp_path, progress=False)
    assert data.train_images.shape == (1, 1, 4, 4)
    assert torch.equal(data.train_images[0, 0], torch.from_numpy((values // 257).astype(np.uint8)))


def test_broken_file_is_skipped_and_reported(tmp_path):
    _tree(tmp_path)
    bad = tmp_path / "cross" / "x.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.warns(UserWarning) as caught:
        data = load_folder(tmp_path, progress=False)
    assert any(str(bad.resolve()) in str(w.message) for w in caught)
    assert data.train_images.shape[0] == 18
    assert [Path(p) for p, _ in data.skipped] == [bad.resolve()]


def test_empty_and_unreadable_classes_and_empty_trees_are_refused(tmp_path):
    _tree(tmp_path / "t1")
    (tmp_path / "t1" / "zebra").mkdir()
    (tmp_path / "t1" / "zebra" / "notes.txt").write_text("not an image")
    with pytest.raises(RamError, match="zebra holds no png"):
        load_folder(tmp_path / "t1", progress=False)
    _tree(tmp_path / "t2")
    (tmp_path / "t2" / "zebra").mkdir()
    (tmp_path / "t2" / "zebra" / "a.PNG").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(RamError, match="zebra holds no readable"):
        load_folder(tmp_path / "t2", progress=False)
    (tmp_path / "t3").mkdir()
    with pytest.raises(RamError, match="no class subfolders"):
        load_folder(tmp_path / "t3", progress=False)
    with pytest.raises(RamError, match="not a folder"):
        load_folder(tmp_path / "missing", progress=False)


def test_mixed_sizes_need_image_size_and_are_resized_then_centre_cropped(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small, tall = _pattern(0, 0, 16), _pattern(1, 0, 30)[:, :20]  # 16x16 and 20 wide x 30 high
    Image.fromarray(small).save(tmp_path / "a" / "small.png")
    Image.fromarray(tall).save(tmp_path / "b" / "tall.png")
    with pytest.raises(RamError, match="--image_size") as err:
        load_folder(tmp_path, progress=False)
    assert "small.png" in str(err.value) and "tall.png" in str(err.value)
    data = load_folder(tmp_path, image_size=16, progress=False)
    assert data.train_images.shape == (2, 1, 16, 16)
    assert torch.equal(data.train_images[0, 0], torch.from_numpy(small))  # already 16x16: untouched
    ref = Image.fromarray(tall).resize((16, 24), Image.Resampling.BILINEAR).crop((0, 4, 16, 20))
    assert torch.equal(data.train_images[1, 0], torch.from_numpy(np.array(ref)))


def test_non_square_images_need_image_size(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(_pattern(0, 0, 30)[:, :20]).save(tmp_path / "a" / "x.BMP")  # any case
    with pytest.raises(RamError, match="not square"):
        load_folder(tmp_path, progress=False)
    assert load_folder(tmp_path, image_size=20, progress=False).train_images.shape == (1, 1, 20, 20)


def test_explicit_train_val_layout(tmp_path):
    train = _tree(tmp_path / "train", n=4)
    val = {}
    for label, name in enumerate(CLASSES):
        (tmp_path / "val" / name).mkdir(parents=True)
        val[label, 0] = _pattern(label, 50)
        Image.fromarray(val[label, 0]).save(tmp_path / "val" / name / "v.png")
    data = load_folder(tmp_path, progress=False)
    assert data.class_names == CLASSES
    assert torch.equal(data.train_images, _expected(train, 1))
    assert torch.equal(data.valid_images, _expected(val, 1))
    assert torch.equal(data.valid_labels, torch.tensor([0, 1, 2]))
    (tmp_path / "val" / "extra").mkdir()
    Image.fromarray(_pattern(0, 51)).save(tmp_path / "val" / "extra" / "e.png")
    with pytest.raises(RamError, match="only in val: \\['extra'\\]"):
        load_folder(tmp_path, progress=False)


def test_cache_is_created_reused_and_rebuilt_when_the_folder_changes(tmp_path, monkeypatch):
    _tree(tmp_path, n=2)
    first = load_folder(tmp_path, progress=False)
    caches = list(tmp_path.glob(".ram_cache_*.pt"))
    assert len(caches) == 1

    class Decoded(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Decoded

    with monkeypatch.context() as m:
        m.setattr(folder.Image, "open", refuse)
        again = load_folder(tmp_path, progress=False)
    assert torch.equal(again.train_images, first.train_images)
    assert torch.equal(again.train_labels, first.train_labels) and again.class_names == CLASSES

    Image.fromarray(_pattern(0, 7)).save(tmp_path / "circle" / "new.png")
    grown = load_folder(tmp_path, progress=False)
    assert grown.train_images.shape[0] == 7
    assert [p.name for p in tmp_path.glob(".ram_cache_*.pt")] != [caches[0].name]
    assert len(list(tmp_path.glob(".ram_cache_*.pt"))) == 1  # the stale cache is removed

    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "circle" / "new.png")
    assert int(load_folder(tmp_path, progress=False).train_images[2].max()) == 0  # modified file
    touched = tmp_path / "circle" / "00.png"  # same bytes, newer mtime: must decode again
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with monkeypatch.context() as m, pytest.raises(Decoded):
        m.setattr(folder.Image, "open", refuse)
        load_folder(tmp_path, progress=False)
    (tmp_path / "circle" / "new.png").unlink()
    assert torch.equal(load_folder(tmp_path, progress=False).train_images, first.train_images)


def test_cache_falls_back_to_home_when_the_cache_folder_is_unwritable(tmp_path, monkeypatch):
    _tree(tmp_path / "data", n=1)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    blocked = tmp_path / "file.txt"
    blocked.write_text("a file, so no folder can be made under it")
    data = load_folder(tmp_path / "data", cache_dir=blocked / "sub", progress=False)
    assert len(list((tmp_path / "home" / ".cache" / "ram").glob(".ram_cache_*.pt"))) == 1
    monkeypatch.setattr(folder.Image, "open", lambda *a, **k: 1 / 0)
    again = load_folder(tmp_path / "data", cache_dir=blocked / "sub", progress=False)
    assert torch.equal(again.train_images, data.train_images)
    monkeypatch.undo()
    _tree(tmp_path / "other", n=1)  # a second folder's cache leaves the first one's alone
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    load_folder(tmp_path / "other", cache_dir=blocked / "sub", progress=False)
    assert len(list((tmp_path / "home" / ".cache" / "ram").glob(".ram_cache_*.pt"))) == 2


# ----------------------------------------------------------------------------- test/ splits
def _split(root: Path, split: str, seed: int, n: int = 2, classes=CLASSES) -> dict:
    written = {}
    for label, name in enumerate(classes):
        (root / split / name).mkdir(parents=True)
        for i in range(n):
            written[label, i] = _pattern(label, seed + i)
            Image.fromarray(written[label, i]).save(root / split / name / f"{i}.png")
    return written


def test_train_val_test_layout_reads_each_split(tmp_path):
    train, val, test = (_split(tmp_path, s, seed) for s, seed in (("train", 0), ("val", 20), ("test", 40)))
    data = load_folder(tmp_path, progress=False)
    assert torch.equal(data.train_images, _expected(train, 1))
    assert torch.equal(data.valid_images, _expected(val, 1))
    assert torch.equal(data.test_images, _expected(test, 1))
    assert torch.equal(data.test_labels, torch.tensor([0, 0, 1, 1, 2, 2]))


def test_train_and_test_without_val_leave_the_validation_split_to_the_caller(tmp_path):
    train, test = _split(tmp_path, "train", 0, n=3), _split(tmp_path, "test", 40)
    data = load_folder(tmp_path, progress=False)
    assert data.class_names == CLASSES  # train/ and test/ are splits, not classes
    assert torch.equal(data.train_images, _expected(train, 1))
    assert data.valid_images is None and torch.equal(data.test_images, _expected(test, 1))


def test_pool_with_a_test_folder_keeps_test_out_of_the_classes(tmp_path):
    pool = _tree(tmp_path, n=2)
    test = _split(tmp_path, "test", 40, n=1)
    data = load_folder(tmp_path, progress=False)
    assert data.class_names == CLASSES
    assert torch.equal(data.train_images, _expected(pool, 1))
    assert torch.equal(data.test_images, _expected(test, 1)) and data.valid_images is None
    _tree(tmp_path / "plain", n=1)
    plain = load_folder(tmp_path / "plain", progress=False)  # a tree without test/
    assert plain.test_images is None and plain.test_labels is None


def test_ambiguous_split_layouts_are_refused(tmp_path):
    _split(tmp_path / "a", "train", 0)
    (tmp_path / "a" / "zebra").mkdir()
    with pytest.raises(RamError, match="holds train/ and also class folders \\['zebra'\\]"):
        load_folder(tmp_path / "a", progress=False)
    _tree(tmp_path / "b", n=1)
    _split(tmp_path / "b", "val", 0)
    with pytest.raises(RamError, match="val/ split but no train/"):
        load_folder(tmp_path / "b", progress=False)
    _split(tmp_path / "c", "train", 0)
    _split(tmp_path / "c", "test", 0, classes=CLASSES[:2])
    with pytest.raises(RamError, match="only in train: \\['stripes'\\], only in test: \\[\\]"):
        load_folder(tmp_path / "c", progress=False)


# ----------------------------------------------------------------------------- build_folder_data
def _config(root, **kw):
    from ram.config import Config
    return Config(dataset="folder", data_dir=str(root), **kw)


def test_build_folder_data_splits_by_seed_and_sets_the_config(tmp_path):
    from ram.data import build_data
    from ram.data.mnist import train_valid_split
    _tree(tmp_path, rgb=True, n=10, size=20)
    config = _config(tmp_path, valid_size=0.2, seed=3, image_size=16)
    with pytest.warns(UserWarning, match="no test/ folder.*validation set \\(6 images\\)"):
        data = build_data(config, "cpu")
    assert (config.channels, config.num_classes, config.image_size) == (3, 3, 16)
    full = load_folder(tmp_path, image_size=16, progress=False)
    train_idx, valid_idx = train_valid_split(30, 0.2, 3)
    assert torch.equal(data.train_x, full.train_images[train_idx])
    assert torch.equal(data.valid_y, full.train_labels[valid_idx])
    assert torch.equal(data.test_x, data.valid_x) and torch.equal(data.test_y, data.valid_y)
    assert data.variant is None and data.class_names == CLASSES
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (24, 3, 16, 16)
    x, y = next(data.train_batches(8, torch.Generator().manual_seed(0)))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 16, 16) and float(x.max()) <= 1
    with pytest.warns(UserWarning, match="no test/ folder"):
        other = build_data(_config(tmp_path, valid_size=0.2, seed=4, image_size=16), "cpu")
    assert not torch.equal(other.valid_x, data.valid_x)  # the seed chooses the split
    with pytest.warns(UserWarning, match="no test/ folder"):
        same = build_data(_config(tmp_path, valid_size=0.2, seed=4, split_seed=3, image_size=16), "cpu")
    assert torch.equal(same.valid_x, data.valid_x)  # unless --split_seed fixes it
    assert torch.equal(same.train_x, data.train_x)


def test_build_folder_data_uses_explicit_val_and_test(tmp_path, recwarn):
    from ram.data import build_data
    train, val, test = (_split(tmp_path, s, seed, n=3) for s, seed in (("train", 0), ("val", 20), ("test", 40)))
    config = _config(tmp_path, valid_size=0.5, channels=3, num_classes=10)
    data = build_data(config, "cpu")
    assert not [w for w in recwarn if "no test/" in str(w.message)]
    assert torch.equal(data.train_x, _expected(train, 1))  # val/ given: no split of train/
    assert torch.equal(data.valid_x, _expected(val, 1)) and torch.equal(data.test_x, _expected(test, 1))
    assert (config.channels, config.num_classes, config.image_size) == (1, 3, 20)


def test_build_folder_data_honours_train_size(tmp_path):
    from ram.data import build_data
    train = _split(tmp_path, "train", 0, n=4)
    _split(tmp_path, "val", 20, n=1)
    data = build_data(_config(tmp_path, train_size=5), "cpu")
    assert torch.equal(data.train_x, _expected(train, 1)[:5]) and len(data.valid_y) == 3
