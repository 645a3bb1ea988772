"""Folder data end to end: train on generated PNGs, reload the checkpoint, predict new images."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram.config import Config
from ram.data.folder import read_image
from ram.errors import RamError
from ram.commands.predict import main as predict_main
from ram.model import Prediction, load_model, predict, prepare


def from_checkpoint(path):
    return load_model(path)[0]
from ram.training import Trainer

CLASSES = ["ant", "bee", "cat"]
SIZE = 16


def _image(label: int, i: int, rgb: bool) -> np.ndarray:
    """A class-specific bright band (rows, columns or diagonal) plus noise."""
    rng = np.random.default_rng(10 * label + i)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    band = [yy < 5, xx < 5, abs(yy - xx) < 3][label]
    img = np.where(band, 220, 20) + rng.integers(0, 30, (SIZE, SIZE))
    if rgb:
        img = np.stack([img, img // 2, 255 - img], -1)
    return img.astype(np.uint8)


def _tree(root: Path, rgb: bool, n: int = 8) -> Path:
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_image(label, i, rgb)).save(root / name / f"{i}.png")
    return root


def _train(root: Path, out: Path) -> Trainer:
    """One short epoch with the real Trainer (its curve plot skipped: slow and not tested here)."""
    config = Config(dataset="folder", data_dir=str(root), num_epochs=1, batch_size=8, num_glimpses=3,
                    glimpse_size=4, num_scales=2, glimpse_hidden=16, hidden_size=32, valid_size=0.25,
                    device="cpu", save_dir=str(out / "ckpt"), log_dir=str(out / "logs"),
                    plot_dir=str(out / "plots"))
    trainer = Trainer(config, progress=False)
    with pytest.MonkeyPatch.context() as m:
        m.setattr("ram.viz.plot_training_curves", lambda *args, **kwargs: None)
        trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """One short epoch on a 3-class RGB tree; returns (tree, checkpoint path, trainer)."""
    out = tmp_path_factory.mktemp("rgb")
    root = _tree(out / "images", rgb=True)
    with pytest.warns(UserWarning, match="no test/ folder"):
        trainer = _train(root, out)
    return root, trainer.path("best"), trainer


def test_rgb_tree_trains_through_the_retina_and_class_names_survive(rgb_run):
    root, ckpt, trainer = rgb_run
    assert trainer.config.channels == 3 and trainer.config.num_classes == 3
    assert trainer.data.train_x.shape == (18, 3, SIZE, SIZE) and len(trainer.history) == 1
    model, config, _ = load_model(ckpt)
    assert model.class_names == CLASSES and config.channels == 3 and config.image_size == SIZE
    assert not model.training
    model = from_checkpoint(ckpt)
    assert model.class_names == CLASSES and model.config.channels == 3
    retina_inputs = 2 * 3 * 4 * 4  # k scales x C channels x g x g
    assert any(m.in_features == retina_inputs for m in model.glimpse_net.modules()
               if isinstance(m, torch.nn.Linear))


def test_predict_on_files_matches_tensors_and_the_model_itself(rgb_run):
    root, ckpt, _ = rgb_run
    model = from_checkpoint(ckpt)
    files = [root / name / "7.png" for name in CLASSES]
    pred = predict(model, [str(f) for f in files])
    assert isinstance(pred, Prediction) and pred.probs.shape == (3, 3)
    assert pred.locations.shape == (3, 3, 2)  # (B, T, 2)
    pixels = torch.from_numpy(np.stack([np.asarray(Image.open(f)) for f in files])).permute(0, 3, 1, 2)
    probs, locations = model.predict_proba(pixels.float() / 255)
    assert torch.allclose(pred.probs, probs) and torch.equal(pred.locations, locations)
    assert torch.equal(pred.indices, probs.argmax(1))
    assert torch.equal(pred.probabilities, probs.max(1).values)
    assert pred.classes == [CLASSES[i] for i in probs.argmax(1).tolist()]
    from_uint8 = predict(model, pixels)  # uint8 and float in [0, 1] are the same images
    from_float = predict(model, pixels.float() / 255, model.config, CLASSES)
    assert torch.allclose(from_uint8.probs, pred.probs) and torch.allclose(from_float.probs, pred.probs)
    single = predict(model, pixels[1])  # one (C, H, W) image
    assert single.probs.shape == (1, 3) and torch.allclose(single.probs[0], pred.probs[1])


def test_files_of_another_size_are_resized_like_folder_data(rgb_run, tmp_path):
    _, ckpt, _ = rgb_run
    model = from_checkpoint(ckpt)
    big = np.kron(_image(2, 3, rgb=True), np.ones((3, 2, 1), np.uint8))  # 48 high x 32 wide
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(big[..., 0]).save(tmp_path / "gray.png")  # grayscale into an RGB model
    expected = torch.from_numpy(np.stack([read_image(tmp_path / "big.png", SIZE, 3),
                                          read_image(tmp_path / "gray.png", SIZE, 3)]))
    x = prepare([tmp_path / "big.png", tmp_path / "gray.png"], 3, SIZE)
    assert torch.equal(x, expected.permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(x[1, 0], x[1, 2])  # grey replicated to three channels
    assert torch.allclose(predict(model, str(tmp_path / "big.png")).probs[0],
                          model.predict_proba(x[:1])[0][0])


def test_tensor_inputs_are_converted_or_refused():
    rgb = torch.rand(2, 3, 5, 5)
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)
    assert torch.allclose(prepare(rgb, 1, 5), luma)
    assert torch.equal(prepare(luma[0, 0], 3, 5), luma[:1].expand(1, 3, 5, 5))  # (H, W) -> RGB
    with pytest.raises(RamError, match="trained on 6x6"):
        prepare(rgb, 3, 6)
    with pytest.raises(RamError, match="values in \\[0, 1\\]"):
        prepare(rgb * 255, 3, 5)
    with pytest.raises(RamError, match="4 channels"):
        prepare(torch.rand(1, 4, 5, 5), 3, 5)
    with pytest.raises(RamError, match="no image file"):
        prepare(["/nonexistent/x.png"], 3, 5)
    with pytest.raises(RamError, match="at least one"):
        prepare([], 3, 5)


def test_grayscale_tree_with_a_broken_file_still_trains_and_predicts(tmp_path):
    root = _tree(tmp_path / "images", rgb=False, n=6)
    (root / "bee" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="skipped unreadable image .*broken.png"):
        trainer = _train(root, tmp_path)
    assert trainer.config.channels == 1 and trainer.data.train_x.shape[1:] == (1, SIZE, SIZE)
    model = from_checkpoint(trainer.path("latest"))
    pred = predict(model, torch.from_numpy(_image(0, 0, rgb=False)))  # one (H, W) image
    assert pred.probs.shape == (1, 3) and pred.classes[0] in CLASSES
    with pytest.raises(RamError, match="broken.png is not a readable image"):
        predict(model, [root / "bee" / "broken.png"])


def test_an_empty_class_is_refused_with_a_clear_error(tmp_path):
    root = _tree(tmp_path / "images", rgb=False, n=2)
    (root / "dog").mkdir()
    with pytest.raises(RamError, match="class folder .*dog holds no png/jpg/jpeg/bmp images"):
        _train(root, tmp_path)


def test_predict_command_prints_one_line_per_image_and_draws(rgb_run, tmp_path, capsys):
    root, ckpt, _ = rgb_run
    files = [str(root / "ant" / "0.png"), str(root / "cat" / "1.png")]
    predict_main(files + ["--model_path", str(ckpt), "--device", "cpu", "--plot_dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    expected = predict(from_checkpoint(ckpt), files)
    assert lines == [f"{f}: {c} (probability {p:.2f})"
                     for f, c, p in zip(files, expected.classes, expected.probabilities.tolist())]
    assert Image.open(tmp_path / "predictions.png").size[0] > 100
    with pytest.raises(SystemExit) as exit_:
        predict_main(["/nonexistent.png", "--model_path", str(ckpt)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no image file at /nonexistent.png") and "Traceback" not in err
    with pytest.raises(SystemExit):
        predict_main(files + ["--model_path", str(tmp_path / "missing.pth")])
    assert capsys.readouterr().err.startswith("error: no checkpoint at")


def test_a_whole_image_baseline_predicts_without_glimpses(tmp_path, capsys):
    from ram import checkpoint
    from ram.model import build_model
    config = Config(dataset="folder", model="fc64", image_size=SIZE, channels=1, num_classes=3)
    model = build_model(config).eval()
    path = checkpoint.save(tmp_path / "fc64.pth", {"model_state_dict": model.state_dict(),
                                                   "config": config.to_dict(), "epoch": 1,
                                                   "class_names": CLASSES})
    Image.fromarray(_image(1, 0, rgb=False)).save(tmp_path / "x.png")
    pred = predict(from_checkpoint(path), [tmp_path / "x.png"])
    assert pred.locations.shape == (1, 0, 2)
    x = torch.from_numpy(_image(1, 0, rgb=False)).float().div(255)[None, None]
    assert torch.allclose(pred.probs, torch.softmax(model(x).logits, 1))
    predict_main([str(tmp_path / "x.png"), "--model_path", str(path), "--plot_dir", str(tmp_path)])
    out = capsys.readouterr()
    assert out.out.startswith(f"{tmp_path / 'x.png'}: {pred.classes[0]} (probability")
    assert "whole image" in out.err and not (tmp_path / "predictions.png").exists()
