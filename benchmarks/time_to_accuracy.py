"""Time to accuracy: train one recipe with several seeds and measure how many training
seconds (and images) each seed needs before its validation error first reaches a target,
and the test error of the checkpoint that validation chooses. Writes JSON (``--out``)
and prints it to stdout without the per-epoch curves and histories; logs go to stderr.

    python benchmarks/time_to_accuracy.py --seeds 1 2 3 --target 1.2 --name mnist_default \\
        --out benchmarks/measurements/tta/mnist_default.json --plot benchmarks/measurements/tta/mnist_default.png \\
        --note "machine otherwise idle" -- --dataset mnist --num_epochs 60 --split_seed 1
    python benchmarks/time_to_accuracy.py --seeds 1 2 3 --target 1.2 --name mnist_fast \\
        --plot benchmarks/measurements/tta/fast_vs_default.png \\
        --compare benchmarks/measurements/tta/mnist_default.json -- --dataset mnist --num_epochs 60 --precision bf16
    python benchmarks/time_to_accuracy.py --plot_only --plot fast_vs_default.png \\
        --compare benchmarks/measurements/tta/mnist_fast.json benchmarks/measurements/tta/mnist_default.json

Everything after ``--`` is ordinary ``ram-train`` flags (the recipe). Each seed trains in
this process with ``ram.training.Trainer``; its ``--seed`` is set from ``--seeds`` and its
files go to ``--runs_dir``/seed<N> (default ``runs/tta/<name>/seed<N>``).

What is measured, per seed:

* ``seconds_to_target``: the sum of the trainer's per-epoch ``epoch_seconds`` (time in
  training steps only: data, forward, backward, optimizer; evaluation, checkpoints and
  plots excluded) up to and including the first epoch whose validation error is at most
  ``--target`` percent; null if no epoch reaches it. ``images_to_target``: the images
  trained on by then (epochs x steps_per_epoch x batch_size x world_size).
* ``test_error_percent``: the test error of the checkpoint chosen on validation, i.e. of
  the epoch with the best validation accuracy (the first such epoch: the trainer keeps a
  checkpoint only on a strict improvement, and measures the test set exactly there and at
  the last epoch); with ``best_epoch`` and its ``valid_error_percent``.
* the curve: validation error after every epoch, against cumulative training seconds and
  images seen.

The validation error is measured on the trainer's validation split. So that every seed is
judged on the same images, ``--split_seed`` is fixed across seeds: when the recipe does not
set it (or sets -1, "follow --seed") this script sets it to 1 and records that.

How to read the numbers: one seed says little, since runs that differ only in the seed
differ both in error and in the epoch that first reaches the target. A change of recipe
counts only when it holds over at least 3 seeds on one fixed validation split, reported as
mean and spread (min, max) -- both ``summary`` fields below -- and timed on one machine,
otherwise idle (say so with ``--note``), against a baseline run there (``--compare``).

JSON (``--out``, default ``benchmarks/measurements/tta/<name>.json``, rewritten after each
seed with ``"complete": false`` until the last one):

    {name, note, command, recipe_flags, target_valid_error_percent, seeds, split_seed,
     split_seed_set_by_tool, config (Config.to_dict() of the first seed, paths removed),
     git_commit, machine {platform, python, cpu, cpu_count, torch, torch_threads, device,
     device_name}, date, complete,
     runs: [{seed, seconds_to_target, images_to_target, epochs_to_target, test_error_percent,
             best_epoch, valid_error_percent, last_test_error_percent, train_seconds,
             wall_seconds, epochs, images_per_epoch, split_seed, valid_split_id, valid_images,
             device, run_dir,
             curve: [{epoch, train_seconds, images_seen, valid_error_percent}], history}],
     summary: {seeds, reached_target, test_error_percent {mean, min, max},
               valid_error_percent {...}, train_seconds {...},
               seconds_to_target {mean, min, max}, images_to_target {...}}}

In ``summary``, ``seconds_to_target`` and ``images_to_target`` have a mean and a max only
when every seed reached the target (a seed that never did has no finite time); ``min`` is
over the seeds that did, and ``reached_target`` counts them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shlex
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # reproduce.py, also when imported by the tests

from reproduce import PATH_KEYS, cpu_name, git_commit, machine, relative, write_json  # noqa: E402
from ram.commands.train import train_parser, config_from_args  # noqa: E402
from ram.errors import RamError, friendly  # noqa: E402

# The new recipe's seeds take these; recipes overlaid from --compare take the muted ones.
SEED_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:cyan", "tab:pink")
COMPARE_COLOURS = ("0.45", "tab:brown", "tab:olive", "0.7", "tab:gray")


# ----------------------------------------------------------------------------- arguments
def tool_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="time_to_accuracy.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [options] -- RAM-TRAIN FLAGS   |   %(prog)s --plot_only --plot PNG --compare JSON [JSON ...]")
    a = p.add_argument
    a("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one training run per seed (at least 3 to conclude)")
    a("--target", type=float, default=None, help="validation error to reach, in percent (e.g. 1.2)")
    a("--name", default=None, help="the recipe's name in the JSON and on plots (default: the dataset)")
    a("--out", default=None, help="JSON file to write (default: benchmarks/measurements/tta/<name>.json)")
    a("--runs_dir", default=None, help="checkpoints, logs and plots of the runs (default: runs/tta/<name>); "
                                       "each seed in <runs_dir>/seed<N>")
    a("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    a("--note", default="", help="recorded as is, e.g. 'machine otherwise idle'")
    a("--plot", default=None, help="PNG: validation error against training seconds and images seen")
    a("--compare", nargs="+", default=[], metavar="JSON",
      help="earlier outputs of this script to draw on the same axes (e.g. today's recipe)")
    a("--plot_only", action="store_true", help="train nothing: draw --compare files into --plot (files of one "
                                              "recipe's seeds, NAME_seedN from one commit and machine, as one recipe)")
    return p


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """This script's flags, and the recipe's (the ram-train flags after the first ``--``)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def recipe_args(recipe: list[str]) -> tuple[argparse.Namespace, bool]:
    """The recipe's ram-train flags, parsed; and whether the split seed was left to follow
    --seed, in which case it is fixed here to 1 so that all seeds share one validation set."""
    args = train_parser().parse_args(recipe)
    set_by_tool = args.split_seed < 0
    if set_by_tool:
        args.split_seed = 1
    return args, set_by_tool


def check_recipe(recipe: list[str], args: argparse.Namespace) -> None:
    given = {t.split("=", 1)[0] for t in recipe if t.startswith("--")}
    if "--seed" in given:
        raise RamError("the recipe sets --seed: give the seeds to this script with --seeds, not after --")
    if args.resume:
        raise RamError("--resume in the recipe: every seed here trains from scratch (its time would be wrong)")
    if args.valid_size <= 0:
        raise RamError("--valid_size 0 leaves no validation split to measure time to accuracy on: "
                       "drop it, or give a fraction such as 0.1")


# ----------------------------------------------------------------------------- measuring
def error_percent(acc: float | None) -> float | None:
    """Rounded to 1e-9 so that an error equal to the target counts as reaching it: in
    floating point 100 * (1 - 0.988) is 1.2000000000000028, not 1.2."""
    return None if acc is None or not math.isfinite(acc) else round(100.0 * (1.0 - acc), 9)


def spread(values: list[float | None]) -> dict:
    """Mean, min and max of values; mean and max are null when any value is (a seed that
    never reached the target has no finite time), min is over the values present."""
    present = [v for v in values if v is not None]
    complete = bool(values) and len(present) == len(values)
    return {"mean": sum(present) / len(present) if complete else None,
            "min": min(present) if present else None,
            "max": max(present) if complete else None}


def summarize_seed(history: list[dict], target: float, images_per_epoch: int) -> dict:
    """Time to target, the checkpoint validation chooses, and the curve, from the trainer's
    history rows (epoch, epoch_seconds, valid_acc, test_acc, ...). ``images_per_epoch`` is
    steps_per_epoch x batch_size x world_size."""
    if not history:
        raise RamError("no epochs were trained: nothing to measure")
    curve, seconds = [], 0.0
    for row in history:
        seconds += row["epoch_seconds"]
        curve.append({"epoch": row["epoch"], "train_seconds": seconds,
                      "images_seen": row["epoch"] * images_per_epoch,
                      "valid_error_percent": error_percent(row["valid_acc"])})
    hit = next((c for c in curve if c["valid_error_percent"] is not None
                and c["valid_error_percent"] <= target), None)
    # The first epoch with the best validation accuracy: the trainer saves *_best.pth on a
    # strict improvement only, and measures the test set there.
    best = max(range(len(history)), key=lambda i: (history[i]["valid_acc"], -i))
    if history[best]["test_acc"] is None:
        raise RamError(f"epoch {history[best]['epoch']} has the best validation accuracy but no test "
                       "accuracy: this history was not written by the trainer in one uninterrupted run")
    return {"seconds_to_target": hit["train_seconds"] if hit else None,
            "images_to_target": hit["images_seen"] if hit else None,
            "epochs_to_target": hit["epoch"] if hit else None,
            "test_error_percent": error_percent(history[best]["test_acc"]),
            "best_epoch": history[best]["epoch"],
            "valid_error_percent": curve[best]["valid_error_percent"],
            "last_test_error_percent": error_percent(history[-1]["test_acc"]),
            "train_seconds": seconds,
            "epochs": len(history),
            "images_per_epoch": images_per_epoch,
            "curve": curve}


def summarize_recipe(runs: list[dict]) -> dict:
    return {"seeds": len(runs),
            "reached_target": sum(r["seconds_to_target"] is not None for r in runs),
            **{k: spread([r[k] for r in runs]) for k in
               ("test_error_percent", "valid_error_percent", "train_seconds", "seconds_to_target", "images_to_target")}}


def split_id(data) -> str:
    """A fingerprint of the validation images and labels: equal on runs judged on one split."""
    h = hashlib.sha1()
    for t in (data.valid_x, data.valid_y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_seed(args: argparse.Namespace, seed: int, run_dir: Path, target: float) -> tuple[dict, object]:
    """Train one seed of the recipe; returns its measurements and its config."""
    from ram.training import Trainer  # imported here so that --plot_only needs no training stack

    args = argparse.Namespace(**vars(args))
    args.seed = seed
    args.save_dir = args.log_dir = args.plot_dir = str(run_dir)
    start = time.perf_counter()
    trainer = Trainer(config_from_args(args), progress=False)
    trainer.fit()
    wall = time.perf_counter() - start
    c = trainer.config
    world = trainer.dist.world_size
    result = summarize_seed(trainer.history, target, trainer.data.steps_per_epoch(c.batch_size, world) * c.batch_size * world)
    return {"seed": seed, **result, "wall_seconds": wall, "split_seed": c.valid_split_seed(),
            "valid_split_id": split_id(trainer.data), "valid_images": len(trainer.data.valid_y),
            "device": str(trainer.device), "run_dir": relative(run_dir), "history": trainer.history}, trainer


# ----------------------------------------------------------------------------- plotting
def load_result(path) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RamError(f"--compare {path}: cannot read it as JSON ({e})")
    if not isinstance(result, dict) or not isinstance(result.get("runs"), list) \
            or not all("curve" in r for r in result["runs"]):
        raise RamError(f"--compare {path}: not an output of time_to_accuracy.py (no runs with curves)")
    result.setdefault("name", Path(path).stem)
    return result


def seeds_as_recipes(results: list[dict]) -> list[dict]:
    """Files of one recipe's seeds, written by separate runs (``--name NAME_seedN``), as one
    recipe NAME with all their runs, so that a plot draws them as one: only files that
    agree on commit, machine and note merge, so that what the plot says of them stays true."""
    merged: dict[tuple, dict] = {}
    for result in results:
        name = re.sub(r"_seed\d+$", "", result["name"])
        key = (name, result.get("git_commit"), json.dumps(result.get("machine"), sort_keys=True), result.get("note"))
        if key in merged:
            merged[key]["runs"] += result["runs"]
        else:
            merged[key] = {**result, "name": name, "runs": list(result["runs"]), "summary": None}
    return list(merged.values())


def machine_line(result: dict) -> str:
    m = result.get("machine", {})
    where = m.get("device_name") or m.get("cpu") or "?"
    threads = f", {m['torch_threads']} threads" if m.get("device", "cpu").startswith("cpu") and "torch_threads" in m else ""
    commit = str(result.get("git_commit", "?"))[:12]
    note = f"; {result['note']}" if result.get("note") else ""
    seeds = " ".join(str(r["seed"]) for r in result["runs"])
    line = f"{result['name']}: seeds {seeds}, {m.get('device', '?')} ({where}{threads}), commit {commit}{note}"
    return "\n".join(textwrap.wrap(line, 170))  # a long note wraps instead of running off the figure


def plot_curves(results: list[dict], path, extra_target: float | None = None) -> Path:
    """Validation error against training seconds (left) and images seen (right), log y.
    results[0] is the new recipe, one colour per seed; the others are overlaid, one muted
    colour per recipe. A dashed line marks each recipe's target; a dot marks where a seed
    first reached it."""
    from ram.viz import plt  # Agg backend, set up by ram.viz
    from matplotlib.ticker import EngFormatter, FuncFormatter, LogFormatter

    if not results:
        raise RamError("nothing to plot: train a recipe or give --compare files")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharey=True)
    targets = {r["target_valid_error_percent"] for r in results if r.get("target_valid_error_percent") is not None}
    if extra_target is not None:
        targets.add(extra_target)
    lowest = []
    for i, result in enumerate(results):
        for j, run in enumerate(result["runs"]):
            pts = [c for c in run["curve"] if c["valid_error_percent"] is not None]
            ys = [c["valid_error_percent"] for c in pts]
            lowest += [y for y in ys if y > 0]
            if i == 0:
                reached = "never" if run.get("seconds_to_target") is None else f"at {run['seconds_to_target']:.3g} s"
                style = dict(color=SEED_COLOURS[j % len(SEED_COLOURS)], lw=1.6, marker=".", ms=4,
                             label=f"{result['name']} seed {run['seed']}: target {reached}, "
                                   f"test {run['test_error_percent']:.2f}% (epoch {run['best_epoch']})")
            else:
                mean = (result.get("summary") or summarize_recipe(result["runs"]))["test_error_percent"]["mean"]
                n = len(result["runs"])
                label = f"{result['name']}, {n} seed{'s' if n > 1 else ''}" + (
                    f" (mean test {mean:.2f}%)" if mean is not None else "")
                style = dict(color=COMPARE_COLOURS[(i - 1) % len(COMPARE_COLOURS)], lw=1.1, alpha=0.85,
                             ls="--" if i % 2 == 0 else "-", label=label if j == 0 else None)
            for ax, key in zip(axes, ("train_seconds", "images_seen")):
                ax.plot([c[key] for c in pts], ys, **style)
                if run.get("seconds_to_target") is not None:
                    hit = next(c for c in pts if c["epoch"] == run["epochs_to_target"])
                    ax.plot(hit[key], hit["valid_error_percent"], "o", color=style["color"], ms=6,
                            mfc="none" if i else style["color"])
    for ax, xlabel in zip(axes, ("training seconds (steps only, evaluation excluded)", "images seen")):
        for t in sorted(targets):
            ax.axhline(t, color="black", ls="--", lw=1, label=f"target {t:g}% valid error")
        if lowest:
            ax.set_yscale("log", nonpositive="mask")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel(xlabel)
        ax.set_xlim(left=0)
    axes[1].xaxis.set_major_formatter(EngFormatter())
    axes[0].set_ylabel("validation error (%)")
    axes[0].set_title("validation error vs training time")
    axes[1].set_title("validation error vs images seen")
    axes[0].legend(fontsize=8, loc="best")
    names = " vs ".join(r["name"] for r in results)
    target = ", ".join(f"{t:g}%" for t in sorted(targets)) or "none"
    fig.suptitle(f"Time to accuracy: {names} (target {target})\n" + "\n".join(machine_line(r) for r in results),
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main
@friendly
def main(argv=None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", relative(__file__), *argv])
    own, recipe = split_argv(argv)
    parser = tool_parser()
    opts = parser.parse_args(own)
    compare = [load_result(p) for p in opts.compare]
    if opts.plot_only:
        if recipe or not opts.compare or not opts.plot:
            parser.error("--plot_only draws --compare files into --plot, and trains nothing: "
                         "give both, and no recipe flags after --")
        print(f"wrote {plot_curves(seeds_as_recipes(compare), opts.plot, opts.target)}")
        return None
    if opts.target is None:
        parser.error("--target (validation error in percent) is required unless --plot_only")
    if not 0 <= opts.target <= 100:
        parser.error("--target is a validation error in percent, between 0 and 100")
    if len(set(opts.seeds)) != len(opts.seeds):
        parser.error("--seeds repeats a seed")
    args, split_set = recipe_args(recipe)
    check_recipe(recipe, args)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    name = opts.name or args.dataset
    out = Path(opts.out or ROOT / "benchmarks" / "measurements" / "tta" / f"{name}.json")
    runs_dir = Path(opts.runs_dir or ROOT / "runs" / "tta" / name)

    result = {"name": name, "note": opts.note, "command": command, "recipe_flags": recipe,
              "target_valid_error_percent": opts.target, "seeds": opts.seeds, "split_seed": args.split_seed,
              "split_seed_set_by_tool": split_set, "config": None, "git_commit": git_commit(),
              "machine": None, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "complete": False, "runs": [], "summary": None}
    for seed in opts.seeds:
        run, trainer = train_seed(args, seed, runs_dir / f"seed{seed}", opts.target)
        if not trainer.dist.is_main:  # under torchrun only rank 0 reports
            continue
        if result["config"] is None:
            result["config"] = {k: v for k, v in trainer.config.to_dict().items() if k not in PATH_KEYS}
            result["machine"] = {**machine(trainer.device), "cpu": cpu_name()}
        result["runs"].append(run)
        result["summary"] = summarize_recipe(result["runs"])
        result["complete"] = len(result["runs"]) == len(opts.seeds)
        write_json(out, result)
        reached = "never" if run["seconds_to_target"] is None else \
            f"{run['seconds_to_target']:.1f} s (epoch {run['epochs_to_target']})"
        print(f"seed {seed}: target {opts.target:g}% reached {reached}; best epoch {run['best_epoch']} "
              f"valid {run['valid_error_percent']:.2f}% test {run['test_error_percent']:.2f}%", file=sys.stderr)
    if not result["runs"]:
        return None
    if opts.plot:
        print(f"wrote {plot_curves([result, *compare], opts.plot)}", file=sys.stderr)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"} | {
        "runs": [{k: v for k, v in r.items() if k not in ("history", "curve")} for r in result["runs"]]}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
