"""Catch over several seeds: train ``train_catch`` once per seed (or read runs already
trained), then write one JSON with each seed's figures and their mean and spread, and
draw the validation curves against training seconds.

    python benchmarks/catch_seeds.py --seeds 1 2 3 --name catch_recipe \\
        --out benchmarks/measurements/catch/catch_recipe.json --plot docs/catch_seeds.png \\
        --note "machine otherwise idle" -- [train_catch flags]
    python benchmarks/catch_seeds.py --read runs/catch/seed1 runs/catch/seed2 --name catch_recipe ...

Everything after ``--`` is ordinary ``train_catch`` flags; each seed's files go to
``--runs_dir``/seed<N>. ``--read DIR...`` trains nothing and summarises the runs in those
folders (each holds a finished run's ``catch_metrics.jsonl`` and ``catch_best.pth``).

Per seed: ``test_catch_percent``, the 1,000 seeded test games caught by the checkpoint
that validation chose (the deterministic catch rate over all 1,104 starts);
``seconds_to_target``, the training seconds (the epochs' own, evaluation excluded) until
validation first reached ``--target`` percent; ``train_seconds`` in all; and the curve.
A recipe counts when it holds over at least 3 seeds: read ``summary``, not one seed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reproduce import git_commit, machine, portable, write_json  # noqa: E402
from time_to_accuracy import split_argv, spread  # noqa: E402
from ram import checkpoint  # noqa: E402
from ram.commands.train_catch import main as train_catch  # noqa: E402
from ram.errors import RamError, friendly  # noqa: E402


def summarize_run(run_dir: Path, target: float) -> dict:
    """One finished run's figures, from its metrics lines and its best checkpoint."""
    metrics = run_dir / "catch_metrics.jsonl"
    if not metrics.is_file():
        raise RamError(f"{run_dir} holds no catch_metrics.jsonl: pass the folder of a finished train_catch run")
    lines = [json.loads(s) for s in metrics.read_text().splitlines() if s.strip()]
    epochs = [r for r in lines if "valid_acc" in r]
    if not epochs or "best_test_acc" not in lines[-1]:
        raise RamError(f"{metrics} has no finished run (no test line at the end): let it finish, or --resume it")
    final = lines[-1]
    if [r["epoch"] for r in epochs] != list(range(1, len(epochs) + 1)):
        raise RamError(f"{metrics} holds more than one run's epochs: train each seed into a folder of its own")
    config = checkpoint.config_of(checkpoint.load(run_dir / "catch_best.pth"), run_dir / "catch_best.pth")
    seconds, curve, reached = 0.0, [], None
    for r in epochs:
        seconds += r["epoch_seconds"]
        curve.append({"epoch": r["epoch"], "train_seconds": round(seconds, 3),
                      "games_seen": r["updates"] * config.batch_size,
                      "valid_catch_percent": round(100 * r["valid_acc"], 2)})
        if reached is None and 100 * r["valid_acc"] >= target - 1e-9:
            reached = curve[-1]
    best = max(epochs, key=lambda r: r["valid_acc"])  # the first best epoch, as the trainer keeps it
    return {"seed": config.seed, "run_dir": str(run_dir),
            "test_catch_percent": round(100 * final["best_test_acc"], 2),
            "best_epoch": final["best_epoch"], "valid_catch_percent": round(100 * best["valid_acc"], 2),
            "last_test_catch_percent": round(100 * final["test_acc"], 2), "epochs": len(epochs),
            "train_seconds": round(seconds, 3), "seconds_to_target": reached and reached["train_seconds"],
            "epochs_to_target": reached and reached["epoch"], "config": portable(config.to_dict()), "curve": curve}


def plot(result: dict, path: Path, compare: list[dict]) -> Path:
    """Validation catch rate against training seconds: one line per seed, the compared runs muted."""
    from ram.viz import plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, recipe in enumerate([result, *compare]):
        for j, run in enumerate(recipe["runs"]):
            who = f"{recipe['name']} seed {run['seed']}" if i == 0 else recipe["name"]
            label = f"{who}: test {run['test_catch_percent']:.1f}%"
            style = dict(lw=1.4) if i == 0 else dict(color="0.55", lw=1.0, ls="--")
            ax.plot([c["train_seconds"] / 60 for c in run["curve"]], [c["valid_catch_percent"] for c in run["curve"]],
                    label=label if i == 0 or j == 0 else None, **style)
    ax.axhline(result["target_valid_catch_percent"], color="black", lw=0.8, ls=":",
               label=f"target {result['target_valid_catch_percent']:g}%")
    ax.set(xlabel="training minutes (steps only, evaluation excluded)", ylim=(0, 100),
           ylabel="validation: % of all 1,104 starts caught (deterministic)")
    m = result["machine"]
    ax.set_title(f"Catch, {result['name']}: {m['device_name']}, commit {result['git_commit'][:8]}\n"
                 f"{result['note']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@friendly
def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, flags = split_argv(argv)
    p = argparse.ArgumentParser(prog="catch_seeds.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--read", nargs="+", type=Path, metavar="DIR", help="summarise these finished runs; train nothing")
    p.add_argument("--name", default="catch")
    p.add_argument("--target", type=float, default=95.0, help="validation catch rate to reach, in percent")
    p.add_argument("--runs_dir", type=Path, default=None, help="default: runs/catch/<name>")
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/measurements/catch/<name>.json")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--compare", nargs="+", type=Path, default=[], metavar="JSON", help="earlier outputs, drawn muted")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    p.add_argument("--note", default="", help="recorded as is, e.g. 'machine otherwise idle'")
    p.add_argument("--commit", default=None, help="with --read: the commit that trained those runs "
                   "(default: this checkout's)")
    a = p.parse_args(own)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.read:
        dirs = a.read
    else:
        runs_dir = a.runs_dir or ROOT / "runs" / "catch" / a.name
        dirs = [runs_dir / f"seed{s}" for s in a.seeds]
        for seed, d in zip(a.seeds, dirs):
            train_catch([*flags, "--seed", str(seed), "--save_dir", str(d), "--log_dir", str(d),
                         "--plot_dir", str(d), "--no_progress"])
    runs = [summarize_run(d, a.target) for d in dirs]
    result = {"name": a.name, "note": a.note, "command": "python benchmarks/catch_seeds.py " + shlex.join(argv),
              "target_valid_catch_percent": a.target, "git_commit": a.commit or git_commit(),
              "machine": machine(torch.device("cpu")),  # with --read: where they were summarised
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs,
              "summary": {"seeds": [r["seed"] for r in runs],
                          **{k: spread([r[k] for r in runs]) for k in
                             ("test_catch_percent", "valid_catch_percent", "train_seconds", "seconds_to_target")}}}
    if a.read:  # this process trained nothing: its thread count says nothing of the runs
        del result["machine"]["torch_threads"]
    out = a.out or ROOT / "benchmarks" / "measurements" / "catch" / f"{a.name}.json"
    write_json(out, result)
    if a.plot:
        plot(result, a.plot, [json.loads(c.read_text()) for c in a.compare])
    s = result["summary"]["test_catch_percent"]
    print(f"{a.name}: {s['mean']:.2f}% of the 1,000 test games caught, mean of {len(runs)} seeds "
          f"({s['min']:.2f} to {s['max']:.2f}); {out}")
    return result


if __name__ == "__main__":
    main()
