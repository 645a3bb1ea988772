"""benchmarks/catch_seeds.py: Catch trained over seeds, summarised from each run's own records.

Two tiny agents (2 epochs of 2 updates of 16 games) are trained once for the module; the
tests hold the summary to the runs' metrics lines and checkpoints."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import catch_seeds  # noqa: E402
from ram import checkpoint  # noqa: E402
from ram.errors import RamError  # noqa: E402

SEEDS = (5, 6)


TINY = ["--hidden_size", "24", "--batch_size", "16", "--num_epochs", "2", "--updates_per_epoch", "2",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("catch_seeds")
    before = torch.get_num_threads()
    argv = ["--seeds", *map(str, SEEDS), "--name", "tiny", "--target", "0", "--runs_dir", str(tmp / "runs"),
            "--out", str(tmp / "tiny.json"), "--plot", str(tmp / "tiny.png"), "--note", "test", "--threads", "1",
            "--", *TINY]
    yield catch_seeds.main(argv), tmp
    torch.set_num_threads(before)


def test_each_seed_is_summarised_from_its_own_run(measured):
    result, tmp = measured
    assert [r["seed"] for r in result["runs"]] == list(SEEDS)
    for run in result["runs"]:
        lines = [json.loads(s) for s in (Path(run["run_dir"]) / "catch_metrics.jsonl").read_text().splitlines()]
        epochs, final = lines[:-1], lines[-1]
        assert [c["epoch"] for c in run["curve"]] == [1, 2]
        assert run["train_seconds"] == pytest.approx(sum(e["epoch_seconds"] for e in epochs), abs=1e-3)
        assert [c["games_seen"] for c in run["curve"]] == [2 * 16, 4 * 16]
        best = checkpoint.load(Path(run["run_dir"]) / "catch_best.pth")
        assert run["best_epoch"] == best["epoch"] == final["best_epoch"]
        assert run["test_catch_percent"] == pytest.approx(100 * best["test_accuracy"], abs=0.01)
        assert run["valid_catch_percent"] == pytest.approx(100 * best["valid_accuracy"], abs=0.01)
        # a 0% target is reached at the first epoch, after that epoch's training seconds
        assert run["epochs_to_target"] == 1 and run["seconds_to_target"] == run["curve"][0]["train_seconds"]


def test_summary_is_the_mean_and_spread_of_the_seeds(measured):
    result, tmp = measured
    rates = [r["test_catch_percent"] for r in result["runs"]]
    s = result["summary"]["test_catch_percent"]
    assert (s["mean"], s["min"], s["max"]) == pytest.approx((sum(rates) / 2, min(rates), max(rates)))
    assert json.loads((tmp / "tiny.json").read_text())["summary"] == result["summary"]
    assert (tmp / "tiny.png").read_bytes().startswith(b"\x89PNG")


def test_reading_the_runs_again_gives_the_same_figures(measured):
    result, tmp = measured
    again = catch_seeds.main(["--read", *(r["run_dir"] for r in result["runs"]), "--target", "0",
                              "--out", str(tmp / "again.json")])
    assert again["runs"] == result["runs"] and again["summary"] == result["summary"]


def test_a_target_never_reached_has_no_time(measured):
    result, tmp = measured
    never = catch_seeds.main(["--read", *(r["run_dir"] for r in result["runs"]), "--target", "101",
                              "--out", str(tmp / "never.json")])
    assert all(r["seconds_to_target"] is None and r["epochs_to_target"] is None for r in never["runs"])
    assert never["summary"]["seconds_to_target"] == {"mean": None, "min": None, "max": None}


def test_a_fresh_run_in_the_same_folder_starts_a_fresh_record(tmp_path):
    argv = ["--seeds", "7", "--runs_dir", str(tmp_path), "--target", "0", "--out", str(tmp_path / "a.json"),
            "--threads", "1", "--", *TINY]
    catch_seeds.main(argv)
    again = catch_seeds.main(argv)  # the same seed into the same folder, from scratch
    assert [c["epoch"] for c in again["runs"][0]["curve"]] == [1, 2]


def test_missing_unfinished_or_mixed_runs_are_refused(tmp_path):
    with pytest.raises(RamError, match="no catch_metrics.jsonl"):
        catch_seeds.summarize_run(tmp_path, 95.0)
    epoch = {"updates": 2, "epoch_seconds": 1.0, "valid_acc": 0.5}
    metrics = tmp_path / "catch_metrics.jsonl"
    metrics.write_text("".join(json.dumps({"epoch": e, **epoch}) + "\n" for e in (1, 2)))
    with pytest.raises(RamError, match="no finished run"):
        catch_seeds.summarize_run(tmp_path, 95.0)
    done = json.dumps({"epoch": 2, "test_acc": 0.5, "best_test_acc": 0.5, "best_epoch": 1}) + "\n"
    metrics.write_text(metrics.read_text() + json.dumps({"epoch": 1, **epoch}) + "\n" + done)
    with pytest.raises(RamError, match="more than one run"):
        catch_seeds.summarize_run(tmp_path, 95.0)
