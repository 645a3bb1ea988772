"""A Recurrent Attention Model that learns to play Catch from the final reward alone.

This is the paper's dynamic environment (section 4.2): the agent never sees the whole
screen, only glimpses of it, and nobody tells it what to do. At every step t of a game

    g_t = f_g(rho(screen_t, l_{t-1}), l_{t-1})     glimpse the current screen
    h_t = LSTM(g_t, h_{t-1})                        fold it into the memory
    a_t ~ softmax(f_a(h_t))                         left / stay / right
    l_t ~ N(tanh(f_l(h_t)), std^2)                  where to look on the next screen

and the game advances one step. The first glimpse is taken at the centre, l_{-1} = (0, 0),
where the coarsest scale (4 g wide) already sees the whole 24x24 screen at low resolution.
A game lasts 23 steps and pays R = 1 (caught) or 0 (missed) only at its end.

Learning is REINFORCE alone. Without discounting, the return of every step is R, so
both policies follow  sum_t grad log pi(a_t, l_t | h_t) (R - b_t),  where the baseline
b_t = b(h_t) is regressed onto R by MSE. Which parameters each term trains:

* action REINFORCE: action, core and glimpse networks. Unlike the classifier (where
  cross-entropy shapes the representation), here the action policy reads h_t
  *not* detached: the reward is the only signal that can teach the core what to remember.
* location REINFORCE: the location network only (it reads a detached h_t, modules.py),
  at ``policy_lr_scale`` times the learning rate (0.1 here): at the full rate its noisy
  gradient random-walked the glimpse into a corner of the screen, where half the game
  was out of sight, and learning stalled near a 26% catch rate.
* baseline MSE: the baseline network only (detached h_t as well).
* optional entropy bonus (``entropy_weight``) on the action distribution, which keeps
  the policy from collapsing onto one action before it has seen the reward.

What has to be learned: the ball always lands on column 23 - x_0, the mirror of the column
it starts from (it crosses the screen once and bounces), while chasing the ball where it
is now catches almost nothing. The agent must therefore read the start column from its
first glimpses, keep it in the LSTM for 23 steps, and steer the 2-pixel paddle there.

The inputs are rescaled for a nearly empty screen (``CatchRetina``) and the glimpse
network gets He initialisation; without both, the ball moves the action logits by ~1e-4
and REINFORCE finds nothing to reinforce.

Validation needs no held-out data: the game has only 24 x 2 x 23 = 1104 distinct starts
(ball column, direction, paddle column), all equally likely, so the deterministic policy's
catch rate over every start is its exact expected catch rate. That number selects the best
checkpoint; the headline test figure is the catch rate over 1,000 seeded games (game i
starts like ``CatchEnv().reset(seed=seed + i)``), as a player of the gymnasium version would
measure it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint
from .cli import friendly
from .config import Config
from .envs.catch import BatchedCatch, CatchRules, CatchState, render_rgb, render_screens
from .errors import RamError
from .modules import ActionNetwork, BaselineNetwork, CoreNetwork, GlimpseNetwork, LocationNetwork
from .retina import Retina
from .train import Run, build_optimizer, pick_device, rng_state, setup_logging

STEPS = CatchRules.STEPS
ACTION_NAMES = ("left", "stay", "right")
TEST_GAMES = 1000
TEST_SEED = 0  # game i of the test starts like CatchEnv().reset(seed=TEST_SEED + i)
LOG_EVERY = 10  # updates between reads of the running metrics back to the host


def catch_config(**overrides) -> Config:
    """The Catch settings (6x6 glimpses at 3 scales, LSTM core, 3 actions), then ``overrides``."""
    defaults = dict(dataset="catch", use_lstm=True, glimpse_size=6, num_scales=3, num_classes=3,
                    image_size=CatchRules.SIZE, channels=1, num_glimpses=STEPS, valid_size=0.0,
                    batch_size=128, num_epochs=60, updates_per_epoch=25, lr=3e-3, std=0.15,
                    lr_schedule="cosine", policy_lr_scale=0.1, entropy_weight=0.01, glimpse_gain=8.0)
    return Config(**{**defaults, **overrides})


class CatchRetina(Retina):
    """The retina with its scales sum-pooled and amplified, for a nearly empty screen.

    A Catch screen has 3 lit pixels out of 576. Averaged over a 4g-wide patch a lit pixel
    reads 1/16, and with the default initialisation the ball moves the logits by ~1e-4:
    REINFORCE then has nothing to grip. Scale i is therefore multiplied by 4**i (so a lit
    pixel counts 1 at every scale, i.e. sum pooling) and the whole glimpse by
    ``glimpse_gain`` (about 1 / the pixels' standard deviation), which makes the glimpse
    features of order 1, as standardised inputs would be.
    """

    def __init__(self, images: torch.Tensor, glimpse_size: int, num_scales: int, gain: torch.Tensor):
        super().__init__(images, glimpse_size, num_scales)
        self.gain = gain

    def glimpse(self, l: torch.Tensor) -> torch.Tensor:
        return super().glimpse(l) * self.gain


class Rollout(NamedTuple):
    """One batch of N games of T = 23 steps, as the agent played them."""
    reward: torch.Tensor     # (N,) the final reward R: 1 caught, else the env's miss reward
    log_pi_a: torch.Tensor   # (N, T) log-probability of each action a_t
    log_pi_l: torch.Tensor   # (N, T-1) log-probability of each chosen location l_0..l_{T-2}
    baselines: torch.Tensor  # (N, T) b_t, the expected reward given h_t
    entropy: torch.Tensor    # (N, T) entropy of the action distribution at each step
    actions: torch.Tensor    # (N, T) int64, 0 left, 1 stay, 2 right
    locations: torch.Tensor  # (N, T, 2) where glimpse t looked, (0, 0) for the first
    states: torch.Tensor | None  # (N, T+1, 4) int64 (ball_x, ball_y, ball_dx, paddle_x) if recorded


def _stack_state(s: CatchState) -> torch.Tensor:
    return torch.stack([s.ball_x, s.ball_y, s.ball_dx, s.paddle_x], dim=1)


class CatchAgent(nn.Module):
    """The RAM of the paper's Catch experiment: glimpse, LSTM core, action, location, baseline."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        if c.num_classes != CatchRules.NUM_ACTIONS:
            raise RamError(f"a Catch agent has {CatchRules.NUM_ACTIONS} actions, the config says "
                           f"num_classes={c.num_classes}; build the config with ram.catch.catch_config()")
        self.config = c
        self.glimpse_net = GlimpseNetwork(c.glimpse_size, c.num_scales, c.channels, c.glimpse_hidden,
                                          c.hidden_size)
        self.core = CoreNetwork(c.hidden_size, c.use_lstm)
        self.actor = ActionNetwork(c.hidden_size, CatchRules.NUM_ACTIONS)  # reads h_t, not detached
        self.locator = LocationNetwork(c.hidden_size, c.std)
        self.baseline = BaselineNetwork(c.hidden_size)
        # Per-value gain of the glimpse vector (scale-major): glimpse_gain * 4**i for scale i.
        gain = c.glimpse_gain * 4.0 ** torch.arange(c.num_scales, dtype=torch.float32)
        self.register_buffer("gain", gain.repeat_interleave(c.channels * c.glimpse_size**2), persistent=False)
        # He initialisation, zero biases: the glimpse code keeps its scale through the ReLU
        # layers and is a function of what is seen alone (the default init shrinks it ~2x per
        # layer and buries it under the biases, which leaves the action policy blind at first).
        for m in (self.glimpse_net.fc_rho, self.glimpse_net.fc_l, self.glimpse_net.fc_g):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, env: BatchedCatch, deterministic: bool = False, record: bool = False) -> Rollout:
        """Play the games of a freshly reset ``env`` to their end.

        ``deterministic``: the most likely action and the mean location (evaluation);
        otherwise both are sampled from the policies (training). ``record`` keeps the
        game states for drawing.
        """
        if env.state is None or env.t != 0:
            raise RamError("CatchAgent plays whole games: call env.reset() before handing it the env")
        c = self.config
        screen = render_screens(env.state)
        n = screen.shape[0]
        state = self.core.initial_state(n, screen.device)
        l = screen.new_zeros(n, 2)
        locations, log_pi_a, log_pi_l, baselines, entropy, actions = [l], [], [], [], [], []
        states = [_stack_state(env.state)] if record else None
        reward = screen.new_zeros(n)
        for t in range(STEPS):
            retina = CatchRetina(screen, c.glimpse_size, c.num_scales, self.gain)
            state = self.core(self.glimpse_net(retina, l), state)
            h = state[0]
            log_p = F.log_softmax(self.actor(h), dim=1)
            if deterministic:
                a = log_p.argmax(1)
            else:
                a = torch.multinomial(log_p.detach().exp(), 1).squeeze(1)
            log_pi_a.append(log_p.gather(1, a[:, None]).squeeze(1))
            entropy.append(-(log_p.exp() * log_p).sum(1))
            baselines.append(self.baseline(h))
            actions.append(a)
            if t < STEPS - 1:  # the location chosen at the last step would never be looked at
                l, lp = self.locator(h, deterministic)
                locations.append(l)
                log_pi_l.append(lp)
            screen, r, _ = env.step(a)
            reward = reward + r  # zero until the last step
            if record:
                states.append(_stack_state(env.state))
        return Rollout(reward, torch.stack(log_pi_a, 1), torch.stack(log_pi_l, 1), torch.stack(baselines, 1),
                       torch.stack(entropy, 1), torch.stack(actions, 1), torch.stack(locations, 1),
                       torch.stack(states, 1) if record else None)


def loss_terms(ro: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(REINFORCE, baseline MSE, mean summed entropy) of a rollout, each still differentiable.

    The return of every step is the final reward R (no discounting, no other reward), so
    the advantage of step t is R - b_t, with b_t held fixed. Each game's terms are summed
    over its steps and the games averaged.
    """
    R = ro.reward[:, None]
    advantage = R - ro.baselines.detach()
    log_pi = ro.log_pi_a + F.pad(ro.log_pi_l, (0, 1))  # the last step chose no location
    reinforce = -(log_pi * advantage).sum(1).mean()
    baseline = F.mse_loss(ro.baselines, R.expand_as(ro.baselines))
    entropy = ro.entropy.sum(1).mean()
    return reinforce, baseline, entropy


def catch_loss(ro: Rollout, entropy_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """REINFORCE + baseline MSE - entropy_weight * entropy; and the detached terms for logging."""
    reinforce, baseline, entropy = loss_terms(ro)
    total = reinforce + baseline - entropy_weight * entropy
    terms = {"loss": total.detach(), "reinforce": reinforce.detach(), "baseline": baseline.detach(),
             "entropy": entropy.detach() / STEPS, "catch": ro.reward.mean()}
    return total, terms


# ----------------------------------------------------------------------------- evaluation games
def all_starts(device="cpu") -> CatchState:
    """Every distinct start of the game (1104), each exactly once."""
    bx, dx, px = torch.meshgrid(torch.arange(CatchRules.SIZE), torch.tensor([-1, 1]),
                                torch.arange(CatchRules.MAX_PADDLE_X + 1), indexing="ij")
    bx, dx, px = (v.reshape(-1).to(device) for v in (bx, dx, px))
    return CatchState(bx, torch.zeros_like(bx), dx, px)


def start_env(starts: CatchState) -> BatchedCatch:
    """A BatchedCatch whose games begin at the given starts (already reset)."""
    env = BatchedCatch(len(starts.ball_x), starts.ball_x.device, seed=0)
    env.state, env.t = starts, 0
    return env


def seeded_env(num_games: int = TEST_GAMES, seed: int = TEST_SEED, device="cpu") -> BatchedCatch:
    """Game i starts like ``CatchEnv().reset(seed=seed + i)``: comparable with the gymnasium version."""
    if num_games < 1:
        raise RamError(f"need at least one game to evaluate, got num_games={num_games}")
    env = BatchedCatch(num_games, device, seed=0)
    env.reset(seeds=range(seed, seed + num_games))
    return env


@torch.no_grad()
def play(agent: CatchAgent, env: BatchedCatch, record: bool = False) -> Rollout:
    """The deterministic policy (most likely action, mean location) on a reset env."""
    was_training = agent.training
    agent.eval()
    ro = agent(env, deterministic=True, record=record)
    agent.train(was_training)
    return ro


def catch_rate(agent: CatchAgent, env: BatchedCatch) -> float:
    """Fraction of the env's games the deterministic policy catches."""
    return (play(agent, env).reward == 1).float().mean().item()


# ----------------------------------------------------------------------------- training
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
        if resume:
            self._resume()

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

    def _resume(self) -> None:
        ckpt = self._restore()
        self.env.generator.set_state(ckpt["rng_state"]["env"])

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


# ----------------------------------------------------------------------------- evaluation
def load_agent(path, device="cpu") -> tuple[CatchAgent, Config, dict]:
    """The agent described by the checkpoint's own config, with its weights, in eval mode."""
    ckpt = checkpoint.load(path, map_location=device)
    config = checkpoint.config_of(ckpt, path)
    if config.dataset != "catch":
        raise RamError(f"{path} was trained on --dataset {config.dataset}, not catch; "
                       "pass a checkpoint written by train_catch")
    agent = CatchAgent(config).to(device)
    checkpoint.load_weights(agent, ckpt["model_state_dict"], path)
    return agent.eval(), config, ckpt


def evaluate_catch(model_path, device="", plot_dir="./plots", num_games: int = TEST_GAMES,
                   seed: int = TEST_SEED, num_shown: int = 4) -> dict:
    """Catch rate of the deterministic policy over ``num_games`` seeded games, and a GIF.

    Game i starts like ``CatchEnv().reset(seed=seed + i)``. The GIF shows the first
    ``num_shown`` games side by side with the glimpse boxes on each screen.
    """
    device = pick_device(device)
    agent, config, ckpt = load_agent(model_path, device)
    ro = play(agent, seeded_env(num_games, seed, device), record=True)
    caught = ro.reward == 1
    rate = caught.float().mean().item()
    every = catch_rate(agent, start_env(all_starts(device)))
    print(f"catch rate {100 * rate:.2f}% ({int(caught.sum())}/{num_games} seeded games, seeds "
          f"{seed}..{seed + num_games - 1}, deterministic policy); {100 * every:.2f}% over all 1104 starts; "
          f"epoch {ckpt['epoch']}, {model_path}")
    k = max(1, min(num_shown, num_games))
    gif = animate_games(ro.states[:k], ro.locations[:k], config.glimpse_size, config.num_scales,
                        Path(plot_dir) / "catch_games.gif")
    print(f"pictures: {gif}")
    return {"catch_rate": rate, "all_starts_catch_rate": every, "num_games": num_games, "seed": seed,
            "gif": str(gif)}


def animate_games(states: torch.Tensor, locations: torch.Tensor, glimpse_size: int, num_scales: int,
                  path, scale: int = 8, fps: float = 6) -> Path:
    """An animated GIF of games side by side; frame t shows screen t and the boxes of glimpse t.

    ``states`` (B, T+1, 4) as recorded by a rollout, ``locations`` (B, T, 2). The last frame
    shows where each ball landed and whether it was caught.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .viz import animate_frames, glimpse_box

    st = states.detach().cpu().numpy()
    locs = locations.detach().cpu().numpy()
    b, frames_n = st.shape[0], st.shape[1]
    size = CatchRules.SIZE
    tile = size * scale
    pad, header = 6, 18
    font = ImageFont.load_default()
    box_colours = [(120, 255, 120), (255, 230, 90), (255, 90, 200)]  # one per scale, finest first
    frames = []
    for t in range(frames_n):
        canvas = Image.new("RGB", (pad + b * (tile + pad), header + tile + pad), (30, 30, 30))
        draw = ImageDraw.Draw(canvas)
        last = t == frames_n - 1
        draw.text((pad, 3), f"step {min(t + 1, frames_n - 1)} / {frames_n - 1}" + ("  (end)" if last else ""),
                  fill=(255, 255, 255), font=font)
        for i in range(b):
            bx, by, _, px = (int(v) for v in st[i, t])
            screen = Image.fromarray(render_rgb(bx, by, px, scale))
            d = ImageDraw.Draw(screen)
            if last:
                caught = px <= bx < px + CatchRules.PADDLE_WIDTH
                d.text((4, 4), "caught" if caught else "missed",
                       fill=(120, 255, 120) if caught else (255, 90, 90), font=font)
            else:
                for k in reversed(range(num_scales)):
                    x0, y0, x1, y1 = glimpse_box(locs[i, t], (size, size), glimpse_size * 2 ** k)
                    d.rectangle((x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1),
                                outline=box_colours[k % len(box_colours)], width=2 if k == 0 else 1)
            x0 = pad + i * (tile + pad)
            canvas.paste(screen, (x0, header))
            # the screen's edge, so that empty screens side by side stay apart
            draw.rectangle((x0 - 1, header - 1, x0 + tile, header + tile), outline=(110, 110, 120))
        frames.append(np.asarray(canvas))
    return animate_frames(frames, path, fps=fps, hold_last=6)


# ----------------------------------------------------------------------------- command line
def train_catch_parser() -> argparse.ArgumentParser:
    d = catch_config()
    p = argparse.ArgumentParser(prog="train_catch", description="Train a RAM to play Catch by REINFORCE.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--glimpse_size", type=int, default=d.glimpse_size, help="side g of the smallest patch")
    a("--num_scales", type=int, default=d.num_scales, help="number of patches, each twice as wide")
    a("--hidden_size", type=int, default=d.hidden_size, help="units of g_t and of the LSTM state h_t")
    a("--std", type=float, default=d.std, help="standard deviation of the Gaussian location policy")
    a("--lr", type=float, default=d.lr)
    a("--lr_schedule", default=d.lr_schedule, choices=["cosine", "constant"])
    a("--policy_lr_scale", type=float, default=d.policy_lr_scale,
      help="the location network's learning rate relative to --lr")
    a("--batch_size", type=int, default=d.batch_size, help="games per update")
    a("--num_epochs", type=int, default=d.num_epochs)
    a("--updates_per_epoch", type=int, default=d.updates_per_epoch)
    a("--entropy_weight", type=float, default=d.entropy_weight, help="bonus on the action entropy")
    a("--glimpse_gain", type=float, default=d.glimpse_gain,
      help="glimpses are sum-pooled and multiplied by this")
    a("--seed", type=int, default=d.seed)
    a("--device", default=d.device, help="cuda or cpu (default: cuda when available)")
    a("--save_dir", default=d.save_dir)
    a("--log_dir", default=d.log_dir)
    a("--plot_dir", default=d.plot_dir)
    a("--resume", action="store_true", help="continue from {save_dir}/catch_latest.pth")
    a("--no_progress", action="store_true", help="hide the progress bars (logs still go to --log_dir)")
    return p


@friendly
def train_catch_main(argv=None) -> dict:
    """python scripts/train_catch.py [flags]: train, checkpoint, then test on the seeded games."""
    args = vars(train_catch_parser().parse_args(argv))
    resume, progress = args.pop("resume"), not args.pop("no_progress")
    trainer = CatchTrainer(catch_config(**args), resume=resume, progress=progress)
    result = trainer.fit()
    if result:
        print(f"best valid catch rate {trainer.best_valid:.4f} (all 1104 starts); test catch rate "
              f"{result.get('best_test_acc', result['test_acc']):.4f} over {trainer.test_games} seeded games "
              f"(best checkpoint); checkpoints in {trainer.save_dir}")
    return result
