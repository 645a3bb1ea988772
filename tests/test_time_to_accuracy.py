"""benchmarks/time_to_accuracy.py: time to a validation-error target, over seeds.

One tiny MNIST recipe (2 seeds, 2 epochs, 1280 training images) is trained once for the
module; the tests check what the numbers mean against the trainer's own history and
checkpoints, and the pure summary on hand-written histories."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402
from ram import checkpoint  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (3, 4)
BATCH = 64
TRAIN = 1280


@pytest.fixture(scope="module")
def measured(tmp_path_factory, data_dir):
    """The script run end to end, with an impossible target (0% validation error)."""
    tmp = tmp_path_factory.mktemp("tta")
    out, png = tmp / "tiny.json", tmp / "tiny.png"
    argv = ["--seeds", *map(str, SEEDS), "--target", "0", "--name", "tiny", "--out", str(out),
            "--runs_dir", str(tmp / "runs"), "--plot", str(png), "--note", "test",
            "--", "--dataset", "mnist", "--num_epochs", "2", "--train_size", str(TRAIN),
            "--batch_size", str(BATCH), "--valid_size", "0.02", "--device", "cpu", "--data_dir", str(data_dir)]
    result = tta.main(argv)
    return result, out, png, tmp


def test_curve_is_cumulative_training_time_and_images(measured):
    result, *_ = measured
    images_per_epoch = (TRAIN // BATCH) * BATCH  # steps_per_epoch x batch_size x world_size (1)
    for run in result["runs"]:
        curve, history = run["curve"], run["history"]
        assert [c["epoch"] for c in curve] == [1, 2] == [h["epoch"] for h in history]
        seconds = [c["train_seconds"] for c in curve]
        assert all(b > a >= 0 for a, b in zip([0.0] + seconds, seconds))  # increasing from zero
        assert seconds == pytest.approx([history[0]["epoch_seconds"],
                                         history[0]["epoch_seconds"] + history[1]["epoch_seconds"]])
        assert run["train_seconds"] == pytest.approx(seconds[-1])
        assert run["wall_seconds"] > run["train_seconds"]  # evaluation and set-up are not counted
        assert run["images_per_epoch"] == images_per_epoch
        assert [c["images_seen"] for c in curve] == [images_per_epoch, 2 * images_per_epoch]
        assert [c["valid_error_percent"] for c in curve] == pytest.approx(
            [100 * (1 - h["valid_acc"]) for h in history])


def test_impossible_target_is_null(measured):
    result, *_ = measured
    for run in result["runs"]:
        assert min(c["valid_error_percent"] for c in run["curve"]) > 0  # so 0% was never reached
        assert run["seconds_to_target"] is None and run["images_to_target"] is None
    summary = result["summary"]
    assert summary["reached_target"] == 0
    assert summary["seconds_to_target"] == {"mean": None, "min": None, "max": None}


def test_seconds_to_target_is_the_first_epoch_at_or_below_it(measured):
    result, *_ = measured
    for run in result["runs"]:
        curve, history = run["curve"], run["history"]
        errors = [c["valid_error_percent"] for c in curve]
        # The worst error on the curve: epoch 1 already is at or below it.
        top = tta.summarize_seed(history, max(errors), run["images_per_epoch"])
        assert top["epochs_to_target"] == 1
        assert top["seconds_to_target"] == curve[0]["train_seconds"]
        assert top["images_to_target"] == run["images_per_epoch"]
        for target in errors:  # every observed error as the target: the first epoch that reaches it
            first = next(i for i, e in enumerate(errors) if e <= target)
            got = tta.summarize_seed(history, target, run["images_per_epoch"])
            assert got["seconds_to_target"] == curve[first]["train_seconds"]
            assert got["epochs_to_target"] == first + 1
        assert tta.summarize_seed(history, min(errors) - 1e-6, run["images_per_epoch"])["seconds_to_target"] is None


def test_test_error_is_the_checkpoint_validation_chose(measured):
    result, _, _, tmp = measured
    for run in result["runs"]:
        history = run["history"]
        best = max(history, key=lambda h: h["valid_acc"])
        assert run["best_epoch"] == best["epoch"]
        assert run["valid_error_percent"] == pytest.approx(100 * (1 - best["valid_acc"]))
        assert run["test_error_percent"] == pytest.approx(100 * (1 - best["test_acc"]))
        # ... and it is the checkpoint the trainer saved as best.
        saved = checkpoint.load(tmp / "runs" / f"seed{run['seed']}" / "mnist_best.pth")
        assert saved["epoch"] == run["best_epoch"]
        assert run["test_error_percent"] == pytest.approx(100 * (1 - saved["test_accuracy"]))
        assert run["last_test_error_percent"] == pytest.approx(100 * (1 - history[-1]["test_acc"]))


def test_seeds_share_one_validation_split(measured):
    result, *_ = measured
    assert [r["seed"] for r in result["runs"]] == list(SEEDS)
    assert result["split_seed"] == 1 and result["split_seed_set_by_tool"]  # the recipe did not set it
    assert {r["split_seed"] for r in result["runs"]} == {1}
    assert len({r["valid_split_id"] for r in result["runs"]}) == 1
    assert result["runs"][0]["valid_images"] == 1200  # 2% of MNIST's 60000 training images
    config = result["config"]
    assert config["seed"] == SEEDS[0] and config["split_seed"] == 1 and config["batch_size"] == BATCH
    assert not set(config) & {"data_dir", "save_dir", "log_dir", "plot_dir"}


def test_json_and_png_are_written(measured):
    result, out, png, tmp = measured
    saved = json.loads(out.read_text())
    assert saved["complete"] and saved["name"] == "tiny" and saved["note"] == "test"
    assert saved["target_valid_error_percent"] == 0
    assert saved["command"].startswith("python benchmarks/time_to_accuracy.py --seeds 3 4 ")
    assert saved["command"].split(" -- ")[1].startswith("--dataset mnist --num_epochs 2")
    assert saved["git_commit"] and {"platform", "cpu", "torch", "torch_threads", "device"} <= set(saved["machine"])
    assert [r["seed"] for r in saved["runs"]] == list(SEEDS)
    assert saved["summary"] == json.loads(json.dumps(tta.summarize_recipe(saved["runs"])))
    tests = [r["test_error_percent"] for r in saved["runs"]]
    assert saved["summary"]["test_error_percent"] == pytest.approx(
        {"mean": sum(tests) / 2, "min": min(tests), "max": max(tests)})
    assert png.read_bytes()[:8] == PNG_MAGIC
    # Drawing from saved files alone, with the recipe overlaid on another one, trains nothing.
    other = dict(saved, name="other")
    (tmp / "other.json").write_text(json.dumps(other))
    again = tmp / "compare.png"
    assert tta.main(["--plot_only", "--plot", str(again), "--compare", str(out), str(tmp / "other.json")]) is None
    assert again.read_bytes()[:8] == PNG_MAGIC


def row(epoch, seconds, valid_acc, test_acc):
    return {"epoch": epoch, "epoch_seconds": seconds, "valid_acc": valid_acc, "test_acc": test_acc}


def test_summary_of_a_hand_written_history():
    history = [row(1, 2.0, 0.90, 0.89), row(2, 3.0, 0.95, 0.94), row(3, 1.0, 0.95, None), row(4, 4.0, 0.93, 0.92)]
    s = tta.summarize_seed(history, 5.0, 100)  # 5% error: first reached at epoch 2 (exactly 5%)
    assert [c["train_seconds"] for c in s["curve"]] == [2.0, 5.0, 6.0, 10.0]
    assert (s["seconds_to_target"], s["images_to_target"], s["epochs_to_target"]) == (5.0, 200, 2)
    assert s["best_epoch"] == 2  # the first of a tie, as the trainer keeps *_best.pth
    assert s["test_error_percent"] == pytest.approx(6.0)
    assert s["last_test_error_percent"] == pytest.approx(8.0)
    assert tta.summarize_seed(history, 4.0, 100)["seconds_to_target"] is None
    # An error equal to the target reaches it, whatever floating point makes of 1 - 0.988.
    assert tta.summarize_seed([row(1, 1.0, 0.988, 0.98)], 1.2, 100)["epochs_to_target"] == 1
    assert tta.spread([1.0, 3.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0}
    assert tta.spread([1.0, None]) == {"mean": None, "min": 1.0, "max": None}  # a seed never got there


@pytest.mark.parametrize("recipe, message", [
    (["--seed", "5"], "--seeds"),
    (["--valid_size", "0"], "no validation split"),
    (["--resume"], "from scratch"),
])
def test_refuses_recipes_it_cannot_measure(recipe, message, capsys):
    with pytest.raises(SystemExit) as e:
        tta.main(["--target", "1", "--", *recipe])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_seed_files_of_one_recipe_are_drawn_as_one():
    def result(name, seed, commit, test):
        return {"name": name, "git_commit": commit, "machine": {"cpu": "x"}, "note": "idle",
                "runs": [{"seed": seed, "test_error_percent": test}], "summary": {"stale": True}}
    merged = tta.seeds_as_recipes([result("c_seed1", 1, "a", 4.0), result("c_seed2", 2, "a", 5.0),
                                   result("c_seed3", 3, "b", 6.0), result("d", 1, "a", 7.0)])
    assert [(r["name"], [run["seed"] for run in r["runs"]]) for r in merged] == [("c", [1, 2]), ("c", [3]), ("d", [1])]
    assert merged[0]["summary"] is None  # recomputed from the merged runs when drawn
