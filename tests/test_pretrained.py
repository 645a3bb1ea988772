"""The models that ship with the package: each reproduces the test figure its file records,
loads offline through every entry point, and a wrong name gets one line listing the right ones."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ram import RecurrentAttention, checkpoint, pretrained
from ram.commands.evaluate import main as evaluate_main
from ram.commands.evaluate import measure
from ram.commands.predict import main as predict_main
from ram.data.mnist import load_dataset
from ram.errors import RamError

SHIPPED = ("mnist", "translated", "cluttered60", "cluttered100", "catch", "fashion-mnist")  # what the README promises

# A shipped figure is measured in float32 on one CPU; another CPU's matrix kernels may round
# differently and flip an image whose two best classes tie to the last bit, so a file is
# reproduced when its count of errors (or catches) is within this many of the recorded one.
ROUNDING_SLACK = 2


def test_every_model_the_readme_promises_ships():
    assert set(SHIPPED) <= set(pretrained.names())


def test_the_readme_names_each_shipped_models_seed_and_recorded_figure():
    """The quick start's table: one row per shipped model, with the seed and the test figure
    its file records (what ``ram-evaluate --pretrained NAME`` prints)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    readme = readme[readme.index("## Quick start"):readme.index("## Results")]
    rows = {cells[0].strip("`"): cells for line in readme.splitlines() if line.startswith("| `")
            for cells in [[c.strip() for c in line.strip("| ").split("|")]]}
    assert set(rows) == set(SHIPPED)
    for name in SHIPPED:
        ckpt = torch.load(pretrained.path(name), map_location="cpu", weights_only=True)
        test = ckpt["test"]
        figure = (f"{test['value']:.2f}% error" if test["metric"] == "test_error_percent"
                  else f"{test['value']:.1f}% of {test['of']:,} games caught")
        assert rows[name][2:] == [str(ckpt["seed"]), figure], name


def missing_data(dataset: str, data_dir) -> str | None:
    """Why a shipped model's data set cannot be read here, if it cannot. MNIST ships in data/;
    Fashion-MNIST is looked for there and in Debian's dataset-fashion-mnist, never downloaded."""
    if dataset != "fashion-mnist":
        return None
    try:
        for train in (True, False):
            load_dataset(dataset, data_dir, train=train, download=False)
    except RamError as e:
        return str(e)
    return None


@pytest.mark.parametrize("name", pretrained.names())
def test_a_shipped_model_reproduces_its_recorded_test_figure(name, data_dir, monkeypatch):
    shipped = checkpoint.load(pretrained.path(name))
    assert "optimizer_state_dict" not in shipped, "ship weights and config only"
    assert shipped["config"]["precision"] == "fp32"
    assert shipped["made_by"] and shipped["seed"] >= 1
    if why := missing_data(shipped["config"]["dataset"], data_dir):
        pytest.skip(f"cannot check {name!r}'s test figure on this machine: {why}")
    monkeypatch.chdir(data_dir.parent)  # the config names ./data, as from the repository's root
    again = measure(pretrained.path(name))
    assert again["metric"] == shipped["test"]["metric"] and again["of"] == shipped["test"]["of"]
    assert abs(again["count"] - shipped["test"]["count"]) <= ROUNDING_SLACK, (again, shipped["test"])


def test_shipped_files_load_with_weights_only():
    for name in pretrained.names():
        ckpt = torch.load(pretrained.path(name), weights_only=True)
        assert ckpt["format"] == checkpoint.FORMAT


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(RamError, match="no pretrained model 'mnist7'.*" + ", ".join(pretrained.names())):
        pretrained.path("mnist7")
    with pytest.raises(RamError, match="shipped"):
        pretrained.path("../checkpoint")


def test_evaluate_wants_exactly_one_model(capsys):
    with pytest.raises(SystemExit):
        evaluate_main([])
    assert "--model_path PATH or a shipped model with --pretrained NAME" in capsys.readouterr().err


def test_mnist_from_pretrained_and_predict_on_a_file(data_dir, tmp_path, capsys):
    model = RecurrentAttention.from_pretrained("mnist")
    x, y = load_dataset("mnist", data_dir, train=False)
    Image.fromarray(x[0].numpy()).save(tmp_path / "digit.png")
    pred = model.predict([str(tmp_path / "digit.png")])
    assert pred.classes == [str(int(y[0]))]
    predict_main([str(tmp_path / "digit.png"), "--pretrained", "mnist", "--plot_dir", str(tmp_path)])
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'digit.png'}: {int(y[0])} (probability")
    assert (tmp_path / "predictions.png").is_file()
