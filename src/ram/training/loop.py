"""What both trainers (classification and Catch) share: the device, the per-epoch
generator, logging, the RNG state, and ``Run``, the epoch loop with its checkpoints.

Reproducibility: every epoch shuffles (and, for generated data, draws images) with a
generator seeded by (seed, epoch), and the global RNG that samples glimpse locations is
saved in every checkpoint, so a run resumed from ``{name}_latest.pth`` ends with the
same metrics as an uninterrupted one (exactly on CPU).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch

from .. import checkpoint
from ..config import Config
from ..errors import RamError


def pick_device(name: str = "") -> torch.device:
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RamError(f"--device {name} asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def epoch_generator(config: Config, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(config.seed * 100_003 + epoch)
    return g


def setup_logging(log_dir: Path, name: str, enabled: bool = True) -> logging.Logger:
    logger = logging.getLogger(f"ram.{name}")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not enabled:  # another process (rank 0) writes the log
        logger.addHandler(logging.NullHandler())
        return logger
    log_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(log_dir / f"{name}_train.log"), logging.StreamHandler()):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


PLOT_SECONDS = 30.0  # the training curves are redrawn at most this often (and at the last epoch)


class Run:
    """What every training run shares: its files, resuming, and the end-of-epoch record.

    A subclass sets config, device, name, model (the module whose weights are saved),
    optimizer, scheduler, log, history, epoch and best_valid, and defines ``_payload``,
    ``train_epoch``, ``_epoch_row`` and ``_end_epoch``; ``_train_epochs`` runs them.
    """

    # Where files go (and the settings came from) and how long to train may change on --resume;
    # nothing else may: the same settings given as flags instead of a --config file still resume.
    RESUMABLE = ("num_epochs", "device", "save_dir", "log_dir", "plot_dir", "data_dir", "mc_samples", "compile", "precision",
                 "config_file")

    @property
    def save_dir(self) -> Path:
        return Path(self.config.save_dir)

    @property
    def metrics_path(self) -> Path:
        return Path(self.config.log_dir) / f"{self.name}_metrics.jsonl"

    def path(self, which: str) -> Path:
        return self.save_dir / f"{self.name}_{which}.pth"

    def _start(self, resume: bool) -> dict | None:
        """Resume from latest (returns its checkpoint), or start afresh: a fresh run starts a
        fresh metrics file, a resumed one appends to it."""
        if resume:
            return self._restore()
        if self.writes:
            self.metrics_path.unlink(missing_ok=True)
        return None

    def _restore(self) -> dict:
        """Load latest into the model, optimizer, schedule and RNG; returns the checkpoint."""
        path = self.path("latest")
        ckpt = checkpoint.load(path, map_location=self.device)
        saved = checkpoint.config_of(ckpt, path)
        mismatch = [k for k, v in saved.to_dict().items()
                    if k not in self.RESUMABLE and v != getattr(self.config, k)]
        if mismatch:
            k = mismatch[0]
            raise RamError(f"--resume: {path} was trained with {k}={getattr(saved, k)!r}, "
                           f"not {getattr(self.config, k)!r}; give --{k} the saved value (a preset may have changed "
                           "since) or use another --save_dir")
        checkpoint.load_weights(self.model, ckpt.get("train_state_dict", ckpt["model_state_dict"]), path)
        if self.average:
            checkpoint.load_weights(self.average.model, ckpt["model_state_dict"], path)
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
        # The schedule is a function of the epoch: recompute the rate in case --num_epochs changed.
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(self.scheduler.last_epoch)
        set_rng_state(ckpt["rng_state"], self.device)
        self.epoch, self.best_valid = ckpt["epoch"], ckpt["best_valid_accuracy"]
        self.history = list(ckpt["history"])
        self.log.info(f"resumed from {path} at epoch {self.epoch}")
        return ckpt

    def _record(self, row: dict, payload: dict, improved: bool) -> None:
        """Save latest (and best), append the metrics line, redraw the curves."""
        checkpoint.save(self.path("latest"), payload)
        if improved:
            checkpoint.save(self.path("best"), payload)
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        # Drawing costs about half a second, a tenth of a short epoch: the curves are
        # redrawn at the first epoch, then at most every PLOT_SECONDS, and at the last.
        if self.epoch >= self.config.num_epochs or time.monotonic() - self._plotted_at >= PLOT_SECONDS:
            self._plot()

    def _plot(self) -> None:
        from ..viz import plot_training_curves
        plot_training_curves(self.history, Path(self.config.plot_dir) / f"{self.name}_curves.png")
        self._plotted_at = time.monotonic()

    writes = True  # whether this process writes checkpoints (under torchrun only rank 0)
    average = None  # a WeightAverage, evaluated and saved in place of the raw weights (--ema)
    _plotted_at = -math.inf  # when the curves were last drawn (time.monotonic); never yet

    def _train_epochs(self) -> None:
        """Train until --num_epochs: each epoch trains, steps the schedule, then is measured
        (``_epoch_row``) and recorded (``_end_epoch``). Ctrl-C saves latest, exits with 130."""
        try:
            while self.epoch < self.config.num_epochs:
                lr = self.optimizer.param_groups[0]["lr"]
                row = self.train_epoch()
                self.scheduler.step()
                self.epoch += 1
                row = self._epoch_row(lr, row)
                self.history.append(row)
                self._end_epoch(row)
        except KeyboardInterrupt:
            if self.writes:
                self._save_interrupted()
            raise SystemExit(130)

    def _save_interrupted(self) -> None:
        """Keep the work on Ctrl-C: the weights so far, marked; --resume redoes the broken epoch."""
        checkpoint.save(self.path("latest"), self._payload(float("nan"), float("nan"), True))
        if self.history:
            self._plot()  # the curves up to the interruption
        self.log.info(f"interrupted: saved {self.path('latest')}; continue with --resume")
