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

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..envs.catch import BatchedCatch, CatchRules, CatchState, render_screens
from ..errors import RamError
from ..model.networks import ActionNetwork, BaselineNetwork, CoreNetwork, GlimpseNetwork, LocationNetwork
from ..model.retina import Retina

STEPS = CatchRules.STEPS
ACTION_NAMES = ("left", "stay", "right")
TEST_GAMES = 1000
TEST_SEED = 0  # game i of the test starts like CatchEnv().reset(seed=TEST_SEED + i)
LOG_EVERY = 10  # updates between reads of the running metrics back to the host


def catch_config(**overrides) -> Config:
    """The Catch settings (6x6 glimpses at 3 scales, LSTM core, 3 actions), then ``overrides``.

    The recipe (docs/experiments.md, "Catch"): 512 games per update and a 128-unit core,
    130 epochs of 25 updates on one cosine schedule. Against 128 games and 256 units, each
    update's gradient averages four times the games and the step costs half as much per
    game: one 15-minute command caught 88.8% of the test games before, 99.9% now (mean of
    3 seeds).
    """
    defaults = dict(dataset="catch", use_lstm=True, glimpse_size=6, num_scales=3, num_classes=3,
                    image_size=CatchRules.SIZE, channels=1, num_glimpses=STEPS, valid_size=0.0,
                    hidden_size=128, batch_size=512, num_epochs=130, updates_per_epoch=25, lr=3e-3,
                    std=0.15, lr_schedule="cosine", policy_lr_scale=0.1, entropy_weight=0.01,
                    glimpse_gain=8.0, precision="fp32")  # the agent computes in float32 throughout
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
