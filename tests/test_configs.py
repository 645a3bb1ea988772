"""configs/: one TOML file per row of the paper's tables, read by ram-train --config and by
benchmarks/reproduce.py."""
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from ram.commands.train import config_from_args, main, train_parser
from ram.config import DATASET_PRESETS, Config, load_config_file
from ram.errors import RamError
from ram.training.loop import Run

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((ROOT / "configs").glob("**/*.toml"))
IMAGE_SIDE = {"mnist": 28, "fashion-mnist": 28, "translated": 60, "cluttered60": 60, "cluttered100": 100}


def load_reproduce():
    if "reproduce" in sys.modules:  # one module, as test_baselines loads it: dataclasses look it up there
        return sys.modules["reproduce"]
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reproduce = load_reproduce()


def config(*argv) -> Config:
    return config_from_args(train_parser().parse_args(list(argv)))


def write(tmp_path, text: str, name: str = "c.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_there_are_config_files():
    assert len(CONFIG_FILES) == sum(len(t.rows) for t in reproduce.TABLES.values()) == 28


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_file_builds_a_valid_config_for_its_data_set(path):
    settings = load_config_file(path)
    dataset = settings["dataset"]
    assert dataset == path.parent.name and dataset in DATASET_PRESETS
    assert settings["num_epochs"] >= 1 and "model" in settings
    c = config("--config", str(path))
    c.validate().check_glimpse_fits(IMAGE_SIDE[dataset])
    assert c.config_file == str(path) and c.dataset == dataset
    for key, value in settings.items():
        assert getattr(c, key) == value, key
    # what the file leaves out is the data set's preset
    for key, value in DATASET_PRESETS[dataset].items():
        if key not in settings:
            assert getattr(c, key) == value, key
    label = reproduce.load_row(dataset, dataset, path.stem).label
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and label in first
    # the row's name and the paper's label say what the file trains
    if c.model == "ram":
        g, k = c.glimpse_size, c.num_scales
        assert path.stem == f"ram{c.num_glimpses}"
        assert label == f"RAM, {c.num_glimpses} glimpses, {g}x{g}, {k} scale{'s' * (k > 1)}"
    elif c.model == "random":
        assert (path.stem, label) == (f"random{c.num_glimpses}", f"RAM, {c.num_glimpses} random glimpses")
    else:
        assert path.stem == c.model


def test_rows_and_config_files_match_one_to_one():
    rows = {f"configs/{name}/{row.name}.toml" for name, table in reproduce.TABLES.items() for row in table.rows}
    files = {str(p.relative_to(ROOT)) for p in CONFIG_FILES}
    assert rows - files == set(), "rows without a config file"
    assert files - rows == set(), "config files without a row in reproduce.py's TABLES"
    for name, table in reproduce.TABLES.items():
        for row in table.rows:
            assert row.config_file == f"configs/{name}/{row.name}.toml"
            assert row.epochs >= 1


def test_rows_take_their_settings_label_and_paper_error_from_the_file():
    table = reproduce.TABLES["cluttered60"]
    row = next(r for r in table.rows if r.name == "ram8")
    assert (row.label, row.paper_error, row.epochs) == ("RAM, 8 glimpses, 12x12, 3 scales", 4.04, 200)
    assert row.overrides == {"model": "ram", "num_glimpses": 8}
    assert reproduce.TABLES["fashion-mnist"].rows[0].paper_error is None  # not in the paper
    c = reproduce.row_config(table, row, 3, 1, "cpu", "data", Path("/tmp/run"), {"reward": "probability"})
    assert (c.num_glimpses, c.num_epochs, c.reward, c.config_file) == (8, 3, "probability",
                                                                       "configs/cluttered60/ram8.toml")
    # the same file through ram-train gives the same model
    same = config("--config", str(ROOT / row.config_file), "--reward", "probability", "--num_epochs", "3")
    assert {k: v for k, v in same.to_dict().items() if k in ("model", "num_glimpses", "glimpse_size",
            "num_scales", "std", "reinforce_core", "reinforce_weight", "reward")} == \
        {k: getattr(c, k) for k in ("model", "num_glimpses", "glimpse_size", "num_scales", "std",
                                    "reinforce_core", "reinforce_weight", "reward")}


def test_a_row_file_for_another_data_set_or_without_epochs_is_refused(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "a.toml").write_text('dataset = "translated"\nnum_epochs = 3\n[paper]\nlabel = "A"\n')
    with pytest.raises(RamError, match='must say dataset = "mnist"'):
        reproduce.load_row("mnist", "mnist", "a", tmp_path)
    (tmp_path / "mnist" / "b.toml").write_text('dataset = "mnist"\n[paper]\nlabel = "B"\n')
    with pytest.raises(RamError, match="must give num_epochs"):
        reproduce.load_row("mnist", "mnist", "b", tmp_path)
    (tmp_path / "mnist" / "c.toml").write_text('dataset = "mnist"\nnum_epochs = 3\n[paper]\nerror = 1.0\n')
    with pytest.raises(RamError, match=r"\[paper\] holds label"):
        reproduce.load_row("mnist", "mnist", "c", tmp_path)


def test_the_file_overrides_the_preset_and_a_given_flag_overrides_the_file(tmp_path):
    path = write(tmp_path, 'dataset = "cluttered60"\nnum_glimpses = 8\nstd = 0.1\nnum_epochs = 7\n'
                           'use_lstm = true\nlr = 1\n\n[paper]\nlabel = "ignored by training"\n')
    c = config("--config", path)
    assert (c.dataset, c.num_glimpses, c.std, c.num_epochs, c.use_lstm, c.lr) == ("cluttered60", 8, 0.1, 7, True, 1.0)
    assert (c.glimpse_size, c.num_scales, c.reinforce_core) == (12, 3, True)  # the preset, where the file is silent
    assert c.config_file == path
    c = config("--config", path, "--num_glimpses", "4", "--std", "0.3", "--dataset", "translated")
    assert (c.dataset, c.num_glimpses, c.std, c.num_epochs) == ("translated", 4, 0.3, 7)
    # a flag given at its default value still overrides the file; one not given does not
    assert config("--config", path, "--num_glimpses", "6").num_glimpses == 6
    assert config("--num_glimpses", "6", "--config", path).num_glimpses == 6
    # a program that sets a value on the parsed arguments overrides the file too
    args = train_parser().parse_args(["--config", path])
    args.num_epochs, args.seed = 2, 5
    c = config_from_args(args)
    assert (c.num_epochs, c.seed, c.num_glimpses) == (2, 5, 8)
    # without --config nothing changes: the flags over the preset
    c = config("--dataset", "cluttered60")
    assert (c.num_glimpses, c.std, c.config_file) == (6, 0.2, "")


def test_a_file_can_choose_the_recipe_and_the_preset_follows_the_files_data_set(tmp_path):
    c = config("--config", write(tmp_path, 'dataset = "mnist"\nrecipe = "paper"\n'))
    assert (c.recipe, c.reward, c.ema, c.max_shift) == ("paper", "correct", 0.0, 2)
    assert c.first_location == "centre"  # the paper's first glimpse, where MNIST's preset learns it


@pytest.mark.parametrize("text, message", [
    ('colour = "red"\n', "unknown key 'colour'"),
    ('config_file = "x.toml"\n', "unknown key 'config_file'"),
    ("[glimpse]\nsize = 8\n", "unknown key 'glimpse'"),  # settings are flat, not in tables
    ("[model]\nnum_glimpses = 8\n", "model = {'num_glimpses': 8} is not a string"),
    ("num_glimpses = 8.5\n", "num_glimpses = 8.5 is not an integer"),
    ('use_lstm = "yes"\n', "use_lstm = 'yes' is not true or false; write it like the default, use_lstm = false"),
    ("num_glimpses = \n", "is not valid TOML"),
    ("paper = 3\n", "paper must be a table"),
])
def test_bad_files_are_refused_in_one_line_naming_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RamError, match="^config file .*c.toml") as e:
        load_config_file(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_missing_file_or_a_folder_is_refused(tmp_path):
    with pytest.raises(RamError, match="does not exist; pass the path of a TOML file"):
        load_config_file(tmp_path / "nope.toml")
    with pytest.raises(RamError, match="cannot be read"):
        load_config_file(tmp_path)


def test_ram_train_reports_a_bad_file_in_one_error_line_before_any_work(tmp_path, capsys):
    path = write(tmp_path, 'dataset = "mnist"\nglimpses = 8\n')
    with pytest.raises(SystemExit) as stop:
        main(["--config", path, "--save_dir", str(tmp_path / "ckpt"), "--device", "cpu", "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "unknown key 'glimpses'" in err[0], err
    assert not (tmp_path / "ckpt").exists()


def test_old_checkpoints_without_config_file_load_and_resume_ignores_it():
    old = {k: v for k, v in Config().to_dict().items() if k != "config_file"}
    assert Config.from_dict(old).config_file == ""
    assert "config_file" in Run.RESUMABLE  # the same settings, given as flags instead, still resume


def test_results_name_the_config_file(tmp_path, monkeypatch):
    """run_row writes the row's config file into its JSON (a stand-in trainer: nothing is trained)."""
    import torch
    import ram.model
    import ram.training

    class FakeTrainer:
        def __init__(self, config, resume=False, progress=False):
            self.config, self.device, self.epoch = config, torch.device("cpu"), 2
            self.history = [{"epoch_seconds": 0.5}] * 2
            empty = torch.zeros(0)
            self.data = types.SimpleNamespace(valid_x=empty, valid_y=empty, test_x=empty, test_y=empty)

        def fit(self):
            return {}

        def path(self, which):
            return tmp_path / f"{which}.pth"

    monkeypatch.setattr(ram.training, "Trainer", FakeTrainer)
    monkeypatch.setattr(ram.training, "evaluate", lambda model, x, y: 0.9)
    monkeypatch.setattr(ram.model, "load_model", lambda path, device: (None, None, {"epoch": 1}))
    table = reproduce.TABLES["translated"]
    row = next(r for r in table.rows if r.name == "ram6")
    c = reproduce.row_config(table, row, 2, 1, "cpu", "data", tmp_path / "run")
    r = reproduce.run_row("translated", row, c, "abc", tmp_path / "results")
    saved = json.loads((tmp_path / "results" / "translated" / "ram6.json").read_text())
    assert saved["config_file"] == r["config_file"] == "configs/translated/ram6.toml"
    assert saved["config"]["config_file"] == "configs/translated/ram6.toml"
    assert (saved["label"], saved["paper_error_percent"], saved["full_epochs"]) == \
        ("RAM, 6 glimpses, 12x12, 3 scales", 1.22, 200)
    # the config file is the row's own: the table's note does not list it as a changed setting
    assert reproduce._note({**saved, "machine": {}}) == "shortened run (2 of 200 epochs)"


def test_a_row_of_several_seeds_is_their_mean_with_the_spread_beside_it(tmp_path):
    runs = [{"seed": s, "test_error_percent": e, "valid_error_percent": 1.0, "best_epoch": 9, "train_seconds": 60.0}
            for s, e in ((1, 1.10), (2, 1.30), (3, 0.90))]
    tta = {"complete": True, "runs": runs, "split_seed": 1, "git_commit": "abc", "command": "python ...",
           "config": Config.for_dataset("mnist", num_glimpses=6).to_dict()}
    (tmp_path / "tta.json").write_text(json.dumps(tta))
    argv = ["--table", "mnist", "--rows", "ram6", "--from_tta", str(tmp_path / "tta.json"),
            "--results_dir", str(tmp_path / "results"), "--readme", str(tmp_path / "none.md")]
    assert reproduce.main(argv) == 0
    saved = json.loads((tmp_path / "results" / "mnist" / "ram6.json").read_text())
    assert (saved["test_error_percent"], saved["test_error_min"], saved["test_error_max"]) == (1.1, 0.9, 1.3)
    table = reproduce.render_markdown(reproduce.load_results(tmp_path / "results"))
    assert "| 1.10% | -0.02 |" in table and "mean of 3 seeds (1, 2, 3): 0.90 to 1.30%" in table
    # an unfinished run, or one of another row, is refused rather than recorded
    (tmp_path / "tta.json").write_text(json.dumps({**tta, "complete": False}))
    assert reproduce.main(argv) == 2
    (tmp_path / "tta.json").write_text(json.dumps({**tta, "config": {**tta["config"], "num_glimpses": 4}}))
    assert reproduce.main(argv) == 2
    # seeds that ran side by side, one file each, make one row; a seed twice does not
    for i, run in enumerate(runs):
        (tmp_path / f"seed{i}.json").write_text(json.dumps({**tta, "runs": [run], "config": {**tta["config"], "seed": i}}))
    argv[argv.index("--from_tta") + 1] = str(tmp_path / "seed0.json")
    argv[argv.index("--from_tta") + 2:argv.index("--from_tta") + 2] = [str(tmp_path / "seed1.json"), str(tmp_path / "seed2.json")]
    assert reproduce.main(argv) == 0
    assert json.loads((tmp_path / "results" / "mnist" / "ram6.json").read_text())["test_error_percent"] == 1.1
    assert reproduce.main(argv + ["--from_tta", str(tmp_path / "seed0.json"), str(tmp_path / "seed0.json")]) == 2
    # a seed run before a setting existed trained it at Config's default: it joins seeds that
    # name that default, and not seeds that changed it
    old = {k: v for k, v in tta["config"].items() if k != "first_location"}
    (tmp_path / "seed0.json").write_text(json.dumps({**tta, "runs": [runs[0]], "config": {**old, "seed": 0}}))
    for first, code in (("centre", 0), ("learned", 2)):
        (tmp_path / "seed1.json").write_text(json.dumps({**tta, "runs": [runs[1]],
                                                           "config": {**tta["config"], "seed": 1, "first_location": first}}))
        (tmp_path / "seed2.json").write_text(json.dumps({**tta, "runs": [runs[2]],
                                                           "config": {**tta["config"], "seed": 2, "first_location": first}}))
        assert reproduce.main(argv) == code


# What a results file may differ in from its config file without the row needing a flag:
# the seed and the split, the machine's paths and device, and the arithmetic it chose.
BOOKKEEPING = {*reproduce.PATH_KEYS, "seed", "split_seed", "device", "config_file", "precision", "recipe"}


@pytest.mark.parametrize("table", list(reproduce.TABLES))
def test_the_recipe_rows_trained_exactly_what_their_config_file_trains(table):
    """The RAM rows of every table need no flag list: each recorded run trained the settings
    `ram-train --config configs/TABLE/ROW.toml` trains today."""
    for path in sorted((ROOT / "results" / table).glob("ram*.json")):
        recorded = json.loads(path.read_text())["config"]
        now = config("--config", str(ROOT / "configs" / table / path.name.replace(".json", ".toml"))).to_dict()
        differ = {k: (recorded.get(k), v) for k, v in now.items() if k not in BOOKKEEPING and recorded.get(k, v) != v}
        assert not differ, f"{path.relative_to(ROOT)} trained other settings than its file (recorded, file): {differ}"
