"""Training the Catch agent by REINFORCE on batches of fresh games."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from .. import checkpoint
from ..config import Config
from ..envs.catch import BatchedCatch, CatchRules
from ..errors import RamError
from ..training.loop import Run, pick_device, rng_state, setup_logging
from ..training.optim import build_optimizer
from .agent import ACTION_NAMES, LOG_EVERY, TEST_GAMES, TEST_SEED, CatchAgent, catch_loss
from .play import all_starts, catch_rate, seeded_env, start_env


class CatchTrainer(Run):
    """REINFORCE on batches of fresh games; evaluate, log and checkpoint every epoch.

    An epoch is ``updates_per_epoch`` updates of ``batch_size`` games each. Reproducible:
    the games come from a generator seeded with ``seed``, actions and locations from the
    global torch RNG seeded likewise, and both states are saved in every checkpoint.
    """

    name = "catch"

    def __init__(self, config: Config, resume: bool = False, progress: bool = True):
        self.config = config.validate()
        c = config
        c.check_glimpse_fits(CatchRules.SIZE)
        if c.updates_per_epoch < 1:
            raise RamError("--updates_per_epoch must be at least 1")
        if c.entropy_weight < 0:
            raise RamError("--entropy_weight must be 0 or positive")
        self.device = pick_device(c.device)
        torch.manual_seed(c.seed)
        self.agent = CatchAgent(c).to(self.device)
        # The location network sits in its own group at policy_lr_scale * lr (train.param_groups).
        self.optimizer, self.scheduler = build_optimizer(c, self.agent)
        self.env = BatchedCatch(c.batch_size, self.device, seed=c.seed)
        self.valid_starts = all_starts(self.device)
        self.progress = progress
        self.log = setup_logging(Path(c.log_dir), self.name)
        self.history: list[dict] = []
        self.epoch = 0
        self.best_valid = -1.0
        self.test_games = TEST_GAMES
        if ckpt := self._start(resume):
            self.env.generator.set_state(ckpt["rng_state"]["env"])

    @property
    def model(self) -> nn.Module:  # what Run saves and restores
        return self.agent

    def _payload(self, valid: float, test: float, interrupted: bool = False) -> dict:
        rng = rng_state(self.device)
        rng["env"] = self.env.generator.get_state()
        return {
            "model_state_dict": self.agent.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict(),
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "valid_accuracy": valid,  # deterministic catch rate over all 1104 starts
            "test_accuracy": test,    # over the 1,000 seeded test games, at the end of training
            "best_valid_accuracy": self.best_valid,
            "class_names": list(ACTION_NAMES),
            "history": self.history,
            "rng_state": rng,
            "interrupted": interrupted,
        }

    def update(self) -> torch.Tensor:
        """One REINFORCE update on a fresh batch of games; the terms stay on the device."""
        self.env.reset()
        total, terms = catch_loss(self.agent(self.env), self.config.entropy_weight)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return torch.stack([terms[k] for k in ("loss", "reinforce", "baseline", "entropy", "catch")])

    def train_epoch(self) -> dict:
        c = self.config
        self.agent.train()
        sums = torch.zeros(5, device=self.device)
        bar = tqdm(range(1, c.updates_per_epoch + 1), leave=False, disable=not self.progress,
                   desc=f"epoch {self.epoch + 1}/{c.num_epochs}")
        start = time.perf_counter()
        for step in bar:
            sums += self.update()
            if step % LOG_EVERY == 0 or step == c.updates_per_epoch:
                s = (sums / step).tolist()
                bar.set_postfix(catch=f"{s[4]:.3f}", loss=f"{s[0]:.3f}",
                                games_s=f"{step * c.batch_size / (time.perf_counter() - start):.0f}")
        seconds = time.perf_counter() - start
        s = (sums / c.updates_per_epoch).tolist()
        return {"train_loss": s[0], "reinforce": s[1], "baseline": s[2], "entropy": s[3],
                "train_acc": s[4], "games_per_s": c.updates_per_epoch * c.batch_size / seconds,
                "epoch_seconds": seconds}

    def fit(self) -> dict:
        c = self.config
        self.log.info(f"training {self.name} on {self.device}: {c.num_epochs} epochs x "
                      f"{c.updates_per_epoch} updates x {c.batch_size} games; "
                      f"config {json.dumps(c.to_dict())}")
        self._train_epochs()
        return self._final_test()

    def _epoch_row(self, lr: float, row: dict) -> dict:
        valid = catch_rate(self.agent, start_env(self.valid_starts))
        return {"epoch": self.epoch, "updates": self.epoch * self.config.updates_per_epoch, "lr": lr, **row,
                "valid_acc": valid}

    def _end_epoch(self, row: dict) -> None:
        improved = row["valid_acc"] > self.best_valid
        if improved:
            self.best_valid = row["valid_acc"]
        self._record(row, self._payload(row["valid_acc"], float("nan")), improved)
        self.log.info(
            f"epoch {row['epoch']}/{self.config.num_epochs} ({row['updates']} updates) "
            f"train catch {row['train_acc']:.3f} (sampled) valid catch {row['valid_acc']:.4f} "
            f"(deterministic, all 1104 starts) loss {row['train_loss']:.3f} entropy {row['entropy']:.3f} "
            f"{row['games_per_s']:.0f} games/s{' *best*' if improved else ''}")

    def _final_test(self) -> dict:
        """Catch rate over the 1,000 seeded test games for the latest and the best weights."""
        if not self.history:
            return {}
        test_env = lambda: seeded_env(self.test_games, TEST_SEED, self.device)  # noqa: E731
        result = {"test_acc": catch_rate(self.agent, test_env())}
        latest = self.path("latest")
        ckpt = checkpoint.load(latest, map_location=self.device)
        checkpoint.save(latest, {**ckpt, "test_accuracy": result["test_acc"]})
        best_path = self.path("best")
        if best_path.is_file():
            ckpt = checkpoint.load(best_path, map_location=self.device)
            best = CatchAgent(self.config).to(self.device)
            checkpoint.load_weights(best, ckpt["model_state_dict"], best_path)
            result["best_test_acc"] = catch_rate(best, test_env())
            result["best_epoch"] = ckpt["epoch"]
            checkpoint.save(best_path, {**ckpt, "test_accuracy": result["best_test_acc"]})
        self.log.info(f"test catch rate over {self.test_games} seeded games (deterministic policy): "
                      f"latest {result['test_acc']:.4f}, best (epoch {result.get('best_epoch')}, "
                      f"valid {self.best_valid:.4f}) {result.get('best_test_acc', float('nan')):.4f}")
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"epoch": self.epoch, **result}) + "\n")
        return result
