"""Reproduce the paper's result tables, one row (one trained model) at a time.

    python benchmarks/reproduce.py --table translated --device cuda
    python benchmarks/reproduce.py --table mnist --rows fc256 conv --epochs 5
    python benchmarks/reproduce.py --table cluttered60 --dry_run
    python benchmarks/reproduce.py --table translated --rows ram6 --set reward=probability
    python benchmarks/reproduce.py --table_only

Every row of a table is a model of Mnih et al. (2014), Tables 1 and 2, defined by its file
``configs/<table>/<row>.toml``: the settings that make the model (``ram-train --config``
reads the same file), the epochs of a full run, and in its ``[paper]`` table the paper's
label and test error. For each row this trains with ``ram.train.Trainer`` (checkpoints and logs
in ``runs/repro/<table>/<row>/``), takes the checkpoint chosen on the validation split
(``*_best.pth``), measures its validation and test error (deterministic policy), and
writes ``results/<table>/<row>.json`` with the config file, config, seed, commit, machine,
epochs and wall time. Then the markdown comparison table is rebuilt from every JSON file in
``results/`` and written into docs/experiments.md between the markers
``<!-- results:start -->`` and ``<!-- results:end -->``.

Runs shorter than the table's full length are labelled "shortened run" in the table:
their numbers show the code works, not that the paper's figure is reached.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ram.config import PAPER_TABLE, Config, load_config_file  # noqa: E402
from ram.errors import RamError  # noqa: E402

CONFIGS = ROOT / "configs"  # one file per row: configs/<table>/<row>.toml
START, END = "<!-- results:start -->", "<!-- results:end -->"
PATH_KEYS = ("data_dir", "save_dir", "log_dir", "plot_dir")
# What reproduce.py sets itself, per row or per call; --set may change any other Config field.
RUN_KEYS = (*PATH_KEYS, "dataset", "model", "num_glimpses", "num_epochs", "seed", "device", "config_file")
SEED = 1  # every row trains this seed unless told --seed; the table names any other
REQUIRED = ("test_error_percent", "paper_error_percent", "epochs")  # what the table needs


# --- provenance -------------------------------------------------------------------

def git_commit(root: Path = ROOT) -> str:
    """HEAD's hash, with "-dirty" when tracked files differ from it; "unknown" outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def cpu_name() -> str:
    try:  # Linux names the model here; platform.processor() often says only "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def machine(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(device), "device_name": name}


def relative(path) -> str:
    """A path inside the repository, written relative to it, so results read the same anywhere."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def portable(config: dict) -> dict:
    return {k: relative(v) if k in PATH_KEYS else v for k, v in config.items()}


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# --- the tables --------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    name: str                # file name of the result: results/<table>/<name>.json
    label: str               # the paper's wording
    paper_error: float | None  # test error in percent, as the paper reports it (None: not in it)
    overrides: dict = field(default_factory=dict)  # Config fields that make this model
    epochs: int = 200        # the length of a full run; fewer epochs are marked "shortened"
    config_file: str = ""    # where the row is defined, relative to the repository


@dataclass(frozen=True)
class Table:
    dataset: str
    title: str
    source: str
    rows: tuple[Row, ...]


def load_row(table: str, dataset: str, name: str, configs: Path = CONFIGS) -> Row:
    """The row defined by ``configs/<table>/<name>.toml``: its settings but the data set and
    the epochs become the row's overrides; its [paper] table gives the label and error."""
    path = Path(configs) / table / f"{name}.toml"
    where = relative(path)
    settings = load_config_file(path)  # refuses a missing file, bad TOML and unknown keys
    paper = tomllib.loads(path.read_text()).get(PAPER_TABLE, {})
    if settings.pop("dataset", None) != dataset:
        raise RamError(f"{where} must say dataset = \"{dataset}\", the data set of table {table}")
    epochs = settings.pop("num_epochs", None)
    if epochs is None:
        raise RamError(f"{where} must give num_epochs, the length of the table's full run")
    label, error = paper.get("label"), paper.get("error_percent")
    unknown = set(paper) - {"label", "error_percent"}
    if not isinstance(label, str) or unknown or not (error is None or isinstance(error, (int, float))):
        raise RamError(f"{where}: [{PAPER_TABLE}] holds label (the paper's wording) and error_percent "
                       "(its test error; left out for a row not in the paper), nothing else")
    return Row(name, label, None if error is None else float(error), settings, epochs, where)


def _table(name: str, title: str, source: str, rows: tuple[str, ...]) -> Table:
    """A table named after its data set, its rows in the paper's order."""
    return Table(name, title, source, tuple(load_row(name, name, row) for row in rows))


# The rows in the paper's order; what each is, and the paper's test error (NIPS 2014
# proceedings; 100x100 RAM rows from the arXiv v1 text), are in its file under configs/.
TABLES: dict[str, Table] = {
    "mnist": _table("mnist", "28x28 MNIST", "Table 1a", (
        "fc256", "conv", "ram2", "ram3", "ram4", "ram5", "ram6", "ram7")),
    "translated": _table("translated", "60x60 translated MNIST", "Table 1b", (
        "fc64", "fc256", "conv", "ram4", "ram6", "ram8")),
    "cluttered60": _table("cluttered60", "60x60 cluttered translated MNIST (4 pieces of clutter)",
                          "Table 2a", ("fc64", "fc256", "conv", "ram4", "ram6", "ram8", "random8")),
    # Not in the paper: RAM against the same baselines on a harder 28x28 data set.
    "fashion-mnist": _table("fashion-mnist", "28x28 Fashion-MNIST", "not in the paper", (
        "fc256", "conv", "ram6")),
    "cluttered100": _table("cluttered100", "100x100 cluttered translated MNIST (8 pieces of clutter)",
                           "Table 2b; RAM rows from arXiv v1", ("conv", "ram4", "ram6", "ram8")),
}


# --- one row -----------------------------------------------------------------------

def row_config(table: Table, row: Row, epochs: int, seed: int, device: str, data_dir: str,
               run_dir: Path, settings: dict | None = None) -> Config:
    """The row's file over the data set's preset, --set over the file, then this run's own."""
    run = {"num_epochs": epochs, "seed": seed, "device": device, "data_dir": data_dir,
           "save_dir": str(run_dir), "log_dir": str(run_dir), "plot_dir": str(run_dir),
           "config_file": row.config_file}
    return Config.for_dataset(table.dataset, **{**row.overrides, **(settings or {}), **run}).validate()


def run_row(table_name: str, row: Row, config: Config, commit: str, results_dir: Path,
            resume: bool = False) -> dict:
    """Train one row, test the checkpoint chosen on validation, write its JSON; returns it."""
    from ram.model import load_model
    from ram.training import Trainer, evaluate, run_name

    start = time.perf_counter()
    resume = resume and (Path(config.save_dir) / f"{run_name(config)}_latest.pth").is_file()
    trainer = Trainer(config, resume=resume, progress=sys.stderr.isatty())
    trainer.fit()
    best = trainer.path("best")
    model, _, ckpt = load_model(best, trainer.device)
    data = trainer.data
    valid_acc = evaluate(model, data.valid_x, data.valid_y)
    test_acc = evaluate(model, data.test_x, data.test_y)
    result = {
        "table": table_name,
        "row": row.name,
        "label": row.label,
        "config_file": row.config_file,
        "paper_error_percent": row.paper_error,
        "valid_error_percent": round(100 * (1 - valid_acc), 4),
        "test_error_percent": round(100 * (1 - test_acc), 4),
        "best_epoch": ckpt["epoch"],
        "epochs": trainer.epoch,
        "full_epochs": row.epochs,
        "resumed": resume,
        "wall_seconds": round(time.perf_counter() - start, 3),  # to the ms: a tiny run is not 0 s
        "train_seconds": round(sum(h["epoch_seconds"] for h in trainer.history), 3),
        "seed": config.seed,
        "commit": commit,
        "machine": machine(trainer.device),
        "checkpoint": relative(best),
        "config": portable(config.to_dict()),
    }
    write_json(results_dir / table_name / f"{row.name}.json", result)
    return result


def record_seeds(table_name: str, row: Row, tta_jsons: list[Path], results_dir: Path) -> dict:
    """A row from ``time_to_accuracy.py`` runs of several seeds on one validation split (one
    file, or one per seed when seeds ran side by side): its headline is the mean test error
    of the checkpoints validation chose, one per seed, with every seed's figures beside it.
    Nothing is trained."""
    files = [json.loads(Path(f).read_text()) for f in tta_jsons]
    for f, tta in zip(tta_jsons, files):
        if not tta.get("complete") or not tta.get("runs"):
            raise RamError(f"{f} is not a finished time_to_accuracy.py run; let it finish or pass another")
    def recipe(tta: dict) -> dict:
        return {k: v for k, v in as_loaded(tta["config"]).items() if k != "seed"}

    if any(recipe(t) != recipe(files[0]) or t.get("split_seed") != files[0].get("split_seed") for t in files[1:]):
        raise RamError("the --from_tta files trained different recipes or validation splits; "
                       "a row's seeds must differ only in --seed")
    tta, runs = files[0], [r for t in files for r in t["runs"]]
    if len({r["seed"] for r in runs}) < len(runs):
        raise RamError("the --from_tta files repeat a seed; pass each seed's run once")
    config = tta["config"]
    if config.get("dataset") != TABLES[table_name].dataset or config.get("num_glimpses") != row.overrides.get(
            "num_glimpses", config.get("num_glimpses")):
        raise RamError(f"{tta_jsons[0]} trained {config.get('dataset')} with {config.get('num_glimpses')} glimpses, "
                       f"not the row {table_name}/{row.name}; pass the run of that row")
    errors = [r["test_error_percent"] for r in runs]
    result = {
        "table": table_name, "row": row.name, "label": row.label, "config_file": row.config_file,
        "paper_error_percent": row.paper_error,
        "test_error_percent": round(sum(errors) / len(errors), 4),
        "valid_error_percent": round(sum(r["valid_error_percent"] for r in runs) / len(runs), 4),
        "test_error_min": min(errors), "test_error_max": max(errors),
        "seeds": [{k: r[k] for k in ("seed", "test_error_percent", "valid_error_percent", "best_epoch",
                                     "train_seconds")} for r in runs],
        "split_seed": tta.get("split_seed"), "epochs": config["num_epochs"], "full_epochs": row.epochs,
        "seed": runs[0]["seed"], "commit": tta.get("git_commit"), "machine": tta.get("machine", {}),
        "recorded_from": [relative(f) for f in tta_jsons], "commands": [t.get("command") for t in files],
        "notes": [t.get("note") for t in files], "config": config,
    }
    write_json(results_dir / table_name / f"{row.name}.json", result)
    return result


# --- the markdown table ------------------------------------------------------------

def load_results(results_dir: Path) -> list[dict]:
    results = []
    for path in sorted(Path(results_dir).glob("*/*.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"warning: skipping {path}: unreadable ({type(e).__name__})", file=sys.stderr)
            continue
        missing = [k for k in REQUIRED if k not in r] if isinstance(r, dict) else list(REQUIRED)
        if missing:
            print(f"warning: skipping {path}: not a result file (no {missing[0]!r})", file=sys.stderr)
            continue
        r.setdefault("table", path.parent.name)
        r.setdefault("row", path.stem)
        results.append(r)
    return results


def _note(r: dict) -> str:
    notes = []
    full = r.get("full_epochs")
    if full and r["epochs"] < full:
        notes.append(f"shortened run ({r['epochs']} of {full} epochs)")
    settings = _settings(r.get("config") or {}, _row_overrides(r.get("table"), r.get("row")))
    if settings:
        notes.append(f"with {settings}")
    if r.get("seeds"):
        seeds = r["seeds"]
        notes.append(f"mean of {len(seeds)} seeds ({', '.join(str(x['seed']) for x in seeds)}): "
                     f"{r['test_error_min']:.2f} to {r['test_error_max']:.2f}%")
    elif r.get("seed", SEED) != SEED:
        notes.append(f"seed {r['seed']}")
    device = r.get("machine", {}).get("device_name")
    if device:
        notes.append(device)
    return "; ".join(notes)


def _row_overrides(table: str | None, row: str | None) -> dict:
    known = {r.name: r for r in TABLES[table].rows} if table in TABLES else {}
    return known[row].overrides if row in known else {}


def as_loaded(config: dict) -> dict:
    """A run's recorded config with every setting newer than the run at Config's default:
    what it trained, as its checkpoint loads."""
    return {**Config().to_dict(), **config}


def _settings(config: dict, overrides: dict | None = None) -> str:
    """The settings in which a RAM row's config differs from what its table's command trains
    now (the row's config file over the data set's preset over Config's defaults), e.g.
    "reward probability": a row trained with --set, or kept from an older preset, says so."""
    if config.get("model") != "ram" or "dataset" not in config:
        return ""
    now = Config.for_dataset(config["dataset"], **(overrides or {})).to_dict()
    config = as_loaded(config)
    return ", ".join(f"{k} {config[k]}" for k, v in now.items()
                     if k not in RUN_KEYS and config[k] != v)


def pct(error: float | None) -> str:
    return "n/a" if error is None else f"{error:.2f}%"


def render_markdown(results: list[dict]) -> str:
    """One table per data set that has results; rows the paper has but not run yet show "-"."""
    by_table: dict[str, dict[str, dict]] = {}
    for r in results:
        by_table.setdefault(r["table"], {})[r["row"]] = r
    names = [t for t in TABLES if t in by_table] + sorted(t for t in by_table if t not in TABLES)
    out = ["Test error in percent: deterministic policy (mean glimpse locations), checkpoint chosen "
           "on the validation split. Generated by `python benchmarks/reproduce.py --table_only` "
           "from `results/`; do not edit by hand.", ""]
    if not names:
        out.append("No results yet: run `python benchmarks/reproduce.py --table mnist` (or another table).")
    for name in names:
        got, table = by_table[name], TABLES.get(name)
        known = [row.name for row in table.rows] if table else []
        order = known + sorted(r for r in got if r not in known)
        title = f"{table.title} (paper: {table.source})" if table else name
        out += [f"**{title}**: `python benchmarks/reproduce.py --table {name}`", "",
                "| Model | Paper | Ours | Difference (points) | Epochs | Note |",
                "| --- | ---: | ---: | ---: | ---: | --- |"]
        for row_name in order:
            r = got.get(row_name)
            if r is None:
                row = next(x for x in table.rows if x.name == row_name)
                out.append(f"| {row.label} | {pct(row.paper_error)} | - | - | - | not run yet |")
                continue
            paper, ours = r["paper_error_percent"], r["test_error_percent"]
            label = r.get("label", row_name)
            diff = "n/a" if paper is None else f"{ours - paper:+.2f}"
            out.append(f"| {label} | {pct(paper)} | {ours:.2f}% | {diff} | "
                       f"{r['epochs']} | {_note(r)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def replace_between_markers(path: Path, text: str) -> bool:
    """Put ``text`` between the results markers of ``path``; False (file untouched) if absent."""
    path = Path(path)
    if not path.is_file():
        return False
    doc = path.read_text()
    i, j = doc.find(START), doc.find(END)
    if i < 0 or j < i:
        return False
    new = doc[:i + len(START)] + "\n" + text + doc[j:]
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    return True


def update_readme(results_dir: Path, readme: Path) -> str:
    text = render_markdown(load_results(results_dir))
    if replace_between_markers(readme, text):
        print(f"results table written into {readme}")
    else:
        print(text)
        print(f"note: {readme} has no '{START}' ... '{END}' markers; the table above was not written")
    return text


# --- command line ------------------------------------------------------------------

def parse_setting(text: str) -> tuple[str, object]:
    """"reward=probability" -> ("reward", "probability"), typed like Config's field."""
    key, sep, value = text.partition("=")
    if not sep or key not in {f.name for f in dataclasses.fields(Config)}:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with KEY a training flag "
                                         "(e.g. reward=probability; see train_mnist.py --help)")
    if key in RUN_KEYS:
        raise argparse.ArgumentTypeError(f"{key} is set by reproduce.py itself (its table, row, "
                                         "--epochs, --seed, --device or --data_dir), not by --set")
    kind = type(getattr(Config, key))
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return key, value.lower() in ("true", "1")
        return key, kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a {kind.__name__}") from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", choices=list(TABLES), help="which of the paper's tables to reproduce")
    p.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows (default: all of the table)")
    p.add_argument("--epochs", type=int, help="epochs per row (default: the num_epochs of the row's file in "
                   "configs/, the table's full length)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--set", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                   dest="settings", help="train with this flag changed, e.g. --set reward=probability "
                   "(repeatable); the table names every such setting")
    p.add_argument("--device", default="", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--data_dir", default=str(ROOT / "data"), help="where MNIST/raw lies")
    p.add_argument("--resume", action="store_true", help="continue each row from its latest checkpoint, if any")
    p.add_argument("--dry_run", action="store_true", help="print each row's config and paths; train nothing")
    p.add_argument("--table_only", action="store_true", help="only rebuild the markdown table from results/")
    p.add_argument("--from_tta", nargs="+", metavar="JSON", help="record the one row of --rows from these "
                   "finished benchmarks/time_to_accuracy.py runs: the mean and spread of their seeds; "
                   "trains nothing")
    p.add_argument("--results_dir", default=str(ROOT / "results"))
    p.add_argument("--runs_dir", default=str(ROOT / "runs" / "repro"))
    p.add_argument("--readme", default=str(ROOT / "docs" / "experiments.md"),
                   help="the page whose results markers receive the full table")
    args = p.parse_args(argv)
    if not args.table_only and not args.table:
        p.error("pass --table (one of " + ", ".join(TABLES) + ") or --table_only")
    if args.table and args.rows:
        known = [r.name for r in TABLES[args.table].rows]
        unknown = [r for r in args.rows if r not in known]
        if unknown:
            p.error(f"table {args.table} has no row {unknown[0]!r}; its rows are {', '.join(known)}")
    if args.from_tta and not (args.table and args.rows and len(args.rows) == 1):
        p.error("--from_tta records one row: pass --table T --rows ROW")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results_dir, readme = Path(args.results_dir), Path(args.readme)
    try:
        if not args.table_only:
            table = TABLES[args.table]
            rows = [r for r in table.rows if not args.rows or r.name in args.rows]
            commit = git_commit()  # before any result is written, which would dirty the tree
            if args.from_tta:
                r = record_seeds(args.table, rows[0], [Path(f) for f in args.from_tta], results_dir)
                print(f"{args.table}/{rows[0].name}: mean test error {r['test_error_percent']:.2f}% over "
                      f"{len(r['seeds'])} seeds ({r['test_error_min']:.2f} to {r['test_error_max']:.2f}%)")
                rows = []
            for row in rows:
                run_dir = Path(args.runs_dir) / args.table / row.name
                epochs = args.epochs or row.epochs
                config = row_config(table, row, epochs, args.seed, args.device, args.data_dir, run_dir,
                                    dict(args.settings))
                out = results_dir / args.table / f"{row.name}.json"
                if args.dry_run:
                    print(f"{args.table}/{row.name}: {row.label} (paper {pct(row.paper_error)}), "
                          f"{epochs} epochs, {row.config_file} -> {relative(out)}\n"
                          f"  {json.dumps(portable(config.to_dict()))}")
                    continue
                r = run_row(args.table, row, config, commit, results_dir, args.resume)
                print(f"{args.table}/{row.name}: test error {r['test_error_percent']:.2f}% "
                      f"(paper {pct(row.paper_error)}), valid error {r['valid_error_percent']:.2f}%, "
                      f"{r['epochs']} epochs, {r['wall_seconds'] / 60:.1f} min -> {relative(out)}", flush=True)
            if args.dry_run:
                return 0
        update_readme(results_dir, readme)
    except RamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
