"""Training: the epoch loop, evaluation on validation and test, checkpoints, logs and plots.

Reproducibility: every epoch shuffles (and, for generated data, draws images) with a
generator seeded by (seed, epoch), and the global RNG that samples glimpse locations is
saved in every checkpoint, so a run resumed from ``{dataset}_latest.pth`` ends with the
same metrics as an uninterrupted one (exactly on CPU).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint, distributed
from .config import Config, cosine
from .data import Data, build_data, to_float
from .errors import RamError
from .losses import hybrid_loss

LOG_EVERY = 50  # steps between reads of the metrics back to the host


def pick_device(name: str = "") -> torch.device:
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RamError(f"--device {name} asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def run_name(config: Config) -> str:
    """Stem of a run's files: the dataset, plus the model when it is not the RAM."""
    return config.dataset if config.model == "ram" else f"{config.dataset}_{config.model}"


def build_model(config: Config) -> torch.nn.Module:
    if config.model in ("ram", "random"):
        from .model import RecurrentAttention
        return RecurrentAttention(config)
    from .baselines import build_baseline
    return build_baseline(config)


def param_groups(config: Config, model: torch.nn.Module) -> list[dict]:
    """The location policy learns at ``policy_lr_scale`` times the rate of the rest.

    Its only gradient is REINFORCE's. Once most answers are right the advantage is near
    zero and that gradient is mostly noise, which Adam rescales to full-size steps: with a
    narrow policy (std 0.05) and unshifted MNIST it random-walked into the saturated
    corners of tanh and stayed there, which a tenth of the rate prevented. With std 0.2
    and shifted images the full rate no longer does that and learns faster (MNIST's
    preset; docs/experiments.md, the MNIST runs). The group exists at every scale, so that checkpoints of
    any scale resume alike.
    """
    policy = [p for n, p in model.named_parameters() if n.startswith("locator.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("locator.")]
    groups = [{"params": rest, "lr": config.lr}]
    if policy:
        groups.append({"params": policy, "lr": config.lr * config.policy_lr_scale})
    return groups


def set_policy_std(model: torch.nn.Module, config: Config, epoch: int) -> None:
    """Give the location policy its std for ``epoch`` (Config.policy_std); the whole-image
    baselines have no policy."""
    if hasattr(model, "locator"):
        model.locator.std = config.policy_std(epoch)


def build_optimizer(config: Config, model: torch.nn.Module):
    groups = param_groups(config, model)
    if config.optimizer == "adam":
        # The fused kernel updates every parameter in one pass (CPU and CUDA, torch >= 2.4).
        try:
            opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
    if config.lr_schedule == "cosine":
        factor = lambda epoch: cosine(epoch, config.num_epochs)
    else:
        factor = lambda epoch: 1.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return opt, sched


class WeightAverage:
    """Polyak averaging: an exponential moving average of the weights (--ema DECAY).

    Noisy gradients (REINFORCE, sampled glimpses, shifted images) leave the weights of any
    one step jittering around where the loss is low; their running average sits nearer
    the middle. The average is what gets evaluated and saved as the model; the raw
    weights, which keep training, are saved beside it for --resume. At step n the decay
    is min(decay, (1 + n) / (10 + n)), so that the first steps, far from any minimum,
    are soon forgotten.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self._src, self._dst = list(model.parameters()), list(self.model.parameters())
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self._dst, self._src, 1 - decay)


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000,
             mc_samples: int = 0) -> float:
    """Accuracy with the deterministic policy (mc_samples=0) or averaged over sampled paths."""
    if len(labels) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=labels.device)
    for i in range(0, len(labels), batch_size):
        probs, _ = model.predict_proba(to_float(images[i:i + batch_size]), mc_samples)
        correct += (probs.argmax(1) == labels[i:i + batch_size]).sum()
    model.train(was_training)
    return correct.item() / len(labels)


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


class Run:
    """What every training run shares: its files, resuming, and the end-of-epoch record.

    A subclass sets config, device, name, model (the module whose weights are saved),
    optimizer, scheduler, log, history, epoch and best_valid, and defines ``_payload``,
    ``train_epoch``, ``_epoch_row`` and ``_end_epoch``; ``_train_epochs`` runs them.
    """

    # Where files go and how long to train may change on --resume; nothing else may.
    RESUMABLE = ("num_epochs", "device", "save_dir", "log_dir", "plot_dir", "data_dir", "mc_samples")

    @property
    def save_dir(self) -> Path:
        return Path(self.config.save_dir)

    @property
    def metrics_path(self) -> Path:
        return Path(self.config.log_dir) / f"{self.name}_metrics.jsonl"

    def path(self, which: str) -> Path:
        return self.save_dir / f"{self.name}_{which}.pth"

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
                           f"not {getattr(self.config, k)!r}; drop the flag or use another --save_dir")
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
        from .viz import plot_training_curves
        plot_training_curves(self.history, Path(self.config.plot_dir) / f"{self.name}_curves.png")

    writes = True  # whether this process writes checkpoints (under torchrun only rank 0)
    average = None  # a WeightAverage, evaluated and saved in place of the raw weights (--ema)

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
        self.log.info(f"interrupted: saved {self.path('latest')}; continue with --resume")


class Trainer(Run):
    def __init__(self, config: Config, resume: bool = False, progress: bool = True):
        self.config = config.validate()
        device = pick_device(config.device)
        self.dist = distributed.init_from_env(device.type)  # single process unless under torchrun
        self.device = distributed.local_device(device, self.dist)
        torch.manual_seed(config.seed)
        with distributed.local_main_first(self.dist):  # one download per machine
            self.data: Data = build_data(config, self.device)
        self.model = build_model(config).to(self.device)
        self.optimizer, self.scheduler = build_optimizer(config, self.model)
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        self.progress = progress and self.dist.is_main
        self.name = run_name(config)
        self.log = setup_logging(Path(config.log_dir), self.name, enabled=self.dist.is_main)
        self.history: list[dict] = []
        self.epoch = 0
        self.best_valid = -1.0
        if resume:
            self._restore()  # every rank loads the same checkpoint
        elif self.dist.is_main:  # a fresh run starts a fresh metrics file; a resumed one appends to it
            self.metrics_path.unlink(missing_ok=True)
        if self.average:  # the schedule of the decay counts steps
            self.average.steps = self.epoch * self.data.steps_per_epoch(config.batch_size, self.dist.world_size)
        # The module the training step calls: DDP under torchrun, else the model itself.
        # Evaluation and checkpoints use self.model, which shares its parameters.
        self.net = distributed.wrap(self.model, self.dist)

    # --- checkpoints -------------------------------------------------------------
    @property
    def evaluated(self) -> torch.nn.Module:
        """The model that is measured and saved: the weight average with --ema."""
        return self.average.model if self.average else self.model

    def _payload(self, valid_acc: float, test_acc: float, interrupted: bool = False) -> dict:
        extra = {"train_state_dict": self.model.state_dict()} if self.average else {}
        return {
            **extra,
            "model_state_dict": self.evaluated.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict(),
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "valid_accuracy": valid_acc,
            "test_accuracy": test_acc,
            "best_valid_accuracy": self.best_valid,
            "class_names": list(self.data.class_names),
            "history": self.history,
            "rng_state": rng_state(self.device),
            "interrupted": interrupted,
        }

    # --- the loop ----------------------------------------------------------------
    def train_epoch(self) -> dict:
        c, model, world = self.config, self.net, self.dist.world_size
        model.train()
        set_policy_std(self.model, c, self.epoch)
        distributed.seed_epoch(c.seed, self.epoch, self.dist)  # own exploration noise per rank
        gen = epoch_generator(c, self.epoch, self.device)  # same on all ranks: disjoint shards
        steps = self.data.steps_per_epoch(c.batch_size, world)
        sums = torch.zeros(5, device=self.device)  # loss, ce, reinforce, baseline, acc
        bar = tqdm(self.data.train_batches(c.batch_size, gen, self.dist.rank, world), total=steps, leave=False,
                   desc=f"epoch {self.epoch + 1}/{c.num_epochs}", disable=not self.progress)
        start = time.perf_counter()
        for step, (x, y) in enumerate(bar, 1):
            greedy = None
            if c.reinforce_baseline == "greedy":
                # The mean path draws no noise, so the RNG stream is untouched. It runs on the
                # unwrapped model: DDP allows one forward per backward, and autograd sums both
                # paths' gradients before DDP's hooks see them.
                with torch.set_grad_enabled(c.mean_path_ce > 0):
                    greedy = self.model(x, deterministic=True).logits
            loss, terms = hybrid_loss(model(x), y, c.reinforce_weight, c.reward, greedy, c.mean_path_ce)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.average:
                self.average.update()
            sums += torch.stack([terms[k] for k in ("loss", "ce", "reinforce", "baseline", "acc")])
            if step % LOG_EVERY == 0 or step == steps:
                s = (sums / step).tolist()
                bar.set_postfix(loss=f"{s[0]:.3f}", acc=f"{s[4]:.3f}",
                                img_s=f"{step * c.batch_size * world / (time.perf_counter() - start):.0f}")
        seconds = time.perf_counter() - start
        sums = distributed.all_reduce_mean(sums, self.dist)  # metrics of the global batch
        s = (sums / max(steps, 1)).tolist()
        return {"train_loss": s[0], "ce": s[1], "reinforce": s[2], "baseline": s[3], "train_acc": s[4],
                "images_per_s": steps * c.batch_size * world / seconds, "epoch_seconds": seconds,
                "world_size": world}

    def fit(self) -> dict:
        c = self.config
        self.log.info(f"training {self.name} on {self.device}: {len(self.data.train_y)} train, "
                      f"{len(self.data.valid_y)} valid, {len(self.data.test_y)} test images; "
                      f"config {json.dumps(c.to_dict())}")
        try:
            self._train_epochs()
        finally:
            distributed.cleanup(self.dist)
        return self.history[-1] if self.history else {}

    @property
    def writes(self) -> bool:
        return self.dist.is_main

    def _epoch_row(self, lr: float, row: dict) -> dict:
        """Validation every epoch; the test set only for a checkpoint that validation
        chooses, and for the last epoch. The test set reports, it never chooses, and on
        100x100 images measuring it every epoch is about a sixth of a run's time (README,
        Usage). Epochs without it record test_acc None. Without a validation split
        (``--valid_size 0``, the final fit on every training image) nothing is chosen, so
        the test set is measured once, at the end of the schedule."""
        set_policy_std(self.evaluated, self.config, self.epoch - 1)
        valid_acc = evaluate(self.evaluated, self.data.valid_x, self.data.valid_y)
        chosen = valid_acc > self.best_valid or self.epoch == self.config.num_epochs  # NaN compares False
        test_acc = evaluate(self.evaluated, self.data.test_x, self.data.test_y) if chosen else None
        return {"epoch": self.epoch, "lr": lr, **row, "valid_acc": valid_acc, "test_acc": test_acc}

    def _end_epoch(self, row: dict) -> None:
        # Model selection on validation only; without a validation split the latest is
        # the model (the schedule, fixed in advance, decides when training ends).
        no_valid = math.isnan(row["valid_acc"])
        improved = no_valid or row["valid_acc"] > self.best_valid
        if improved and not no_valid:
            self.best_valid = row["valid_acc"]
        if not self.writes:  # every rank keeps the same history; rank 0 writes it
            return
        measured = row["test_acc"] is not None
        self._record(row, self._payload(row["valid_acc"], row["test_acc"] if measured else float("nan")), improved)
        test = f"{100 * (1 - row['test_acc']):.2f}%" if measured else "-"
        valid = "-" if no_valid else f"{100 * (1 - row['valid_acc']):.2f}%"
        self.log.info(
            f"epoch {row['epoch']}/{self.config.num_epochs} loss {row['train_loss']:.4f} "
            f"train acc {row['train_acc']:.4f} valid err {valid} "
            f"test err {test} lr {row['lr']:.2e} "
            f"{row['images_per_s']:.0f} img/s{' *best*' if improved else ''}")
