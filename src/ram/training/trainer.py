"""The classification trainer: the epoch loop over a data set, validation and test, the
weight average, checkpoints, logs and plots (``ram-train``)."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import distributed
from ..config import Config
from ..data import Data, build_data
from ..model import build_model, hybrid_loss
from ..model.ram import Output
from ..model.unroll import uses_bf16
from .evaluation import evaluate
from .loop import Run, epoch_generator, pick_device, rng_state, setup_logging
from .optim import WeightAverage, build_optimizer, set_policy_std

LOG_EVERY = 50  # steps between reads of the metrics back to the host
TERMS = ("loss", "ce", "reinforce", "baseline", "acc")


def run_name(config: Config) -> str:
    """Stem of a run's files: the dataset, plus the model when it is not the RAM."""
    return config.dataset if config.model == "ram" else f"{config.dataset}_{config.model}"


def compile_step(loss_fn, device: torch.device):
    """--compile: the forward pass and the loss as one graph, whose backward the compiler
    derives; on CUDA also captured as a CUDA graph, since at batch 128 the step is bound by
    the launches of its many small kernels, not by arithmetic."""
    return torch.compile(loss_fn, fullgraph=True, mode="reduce-overhead" if device.type == "cuda" else None)


def step_loss(c: Config, model: torch.nn.Module, net: torch.nn.Module, x: torch.Tensor,
              y: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The hybrid loss of one batch as config ``c`` trains it. ``net`` is the module the
    step calls (DDP under torchrun), ``model`` the module itself.

    With the greedy baseline, the mean path of each image is run too. When it is trained
    as well (``mean_path_ce``), both paths go through one unroll of 2B rows, the first B
    on the mean: the products are twice as wide, which runs faster per row than two
    unrolls of B (docs/speed.md), the retina's table is built once for both, and DDP
    sees one forward per backward. Without
    ``mean_path_ce`` the mean path only gives the baseline, so it runs without gradient.
    """
    greedy = None
    if c.reinforce_baseline == "greedy" and c.mean_path_ce > 0:
        B = x.shape[0]
        both = net(x, greedy_rows=B, copies=2)
        greedy, out = both.logits[:B], Output(*(field[B:] for field in both))
        return hybrid_loss(out, y, c.reinforce_weight, c.reward, greedy, c.mean_path_ce)
    if c.reinforce_baseline == "greedy":
        # The mean path draws no noise, so the RNG stream is untouched.
        with torch.no_grad():
            greedy = model(x, deterministic=True).logits
    # K sampled paths per image, path-major: row k * B + i is path k of image i
    return hybrid_loss(net(x, copies=c.paths), y.repeat(c.paths), c.reinforce_weight, c.reward, greedy,
                       c.mean_path_ce, c.paths)


class Trainer(Run):
    def __init__(self, config: Config, resume: bool = False, progress: bool = True):
        self.config = config.validate()
        device = pick_device(config.device)
        if config.precision == "auto":  # the checkpoint records what ran
            config.precision = "bf16" if uses_bf16("auto", device) else "fp32"
        self.dist = distributed.init_from_env(device.type)  # single process unless under torchrun
        self.device = distributed.local_device(device, self.dist)
        torch.manual_seed(config.seed)
        with distributed.local_main_first(self.dist):  # one download per machine
            self.data: Data = build_data(config, self.device)
        config.check_glimpse_fits(self.data.test_x.shape[-1])
        self.model = build_model(config).to(self.device)
        self.optimizer, self.scheduler = build_optimizer(config, self.model)
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        self.progress = progress and self.dist.is_main
        self.name = run_name(config)
        self.log = setup_logging(Path(config.log_dir), self.name, enabled=self.dist.is_main)
        self.history: list[dict] = []
        self.epoch = 0
        self.best_valid = -1.0
        self._start(resume)  # every rank loads the same checkpoint
        if self.average:  # the schedule of the decay counts steps
            self.average.steps = self.epoch * self.data.steps_per_epoch(config.batch_size, self.dist.world_size)
        # The module the training step calls: DDP under torchrun, else the model itself.
        # Evaluation and checkpoints use self.model, which shares its parameters.
        self.net = distributed.wrap(self.model, self.dist)
        self.loss = compile_step(self._loss, self.device) if config.compile else self._loss

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
    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The hybrid loss of one batch (what --compile compiles)."""
        return step_loss(self.config, self.model, self.net, x, y)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update on a batch; returns the logged terms (TERMS) without reading them back."""
        loss, terms = self.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.average:
            self.average.update()
        return torch.stack([terms[k] for k in TERMS])

    def train_epoch(self) -> dict:
        c, model, world = self.config, self.net, self.dist.world_size
        model.train()
        set_policy_std(self.model, c, self.epoch)
        distributed.seed_epoch(c.seed, self.epoch, self.dist)  # own exploration noise per rank
        gen = epoch_generator(c, self.epoch, self.device)  # same on all ranks: disjoint shards
        steps = self.data.steps_per_epoch(c.batch_size, world)
        sums = torch.zeros(len(TERMS), device=self.device)
        bar = tqdm(self.data.train_batches(c.batch_size, gen, self.dist.rank, world), total=steps, leave=False,
                   desc=f"epoch {self.epoch + 1}/{c.num_epochs}", disable=not self.progress)
        start = time.perf_counter()
        for step, (x, y) in enumerate(bar, 1):
            sums += self.train_step(x, y)
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
        100x100 images measuring it every epoch is about a sixth of a run's time (docs/usage.md).
        Epochs without it record test_acc None. Without a validation split
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
