"""The networks of the Recurrent Attention Model (paper, section 4 and appendix).

f_g  glimpse network    what and where of one glimpse -> g_t
f_h  core network       h_t = f_h(h_{t-1}, g_t), a plain ReLU RNN or an LSTM
f_l  location network   Gaussian policy over the next location, mean tanh(Linear(h_t))
f_a  action network     class logits (or game actions) from h_t
b    baseline network   expected reward from h_t, to reduce REINFORCE's variance

Design choice: by default the location and baseline networks read a *detached* h_t.
REINFORCE then trains only f_l and the baseline's MSE only the baseline, while the
supervised cross-entropy alone shapes what the glimpse and core networks represent; on
MNIST, where the digit is always in the middle, that trains as well as anything tried.
``--reinforce_core`` lets REINFORCE reach the core and glimpse networks too (the baseline
stays detached), as the paper trains all parameters jointly. On the translated and
cluttered canvases the policy must read from h_t where the digit is, which cross-entropy
alone does not teach the core, so their presets turn it on (docs/experiments.md, "Letting REINFORCE
shape the core").
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .retina import Retina


class GlimpseNetwork(nn.Module):
    """f_g: h_g = ReLU(Linear(rho)), h_l = ReLU(Linear(l)), g = ReLU(Linear(h_g) + Linear(h_l)).

    Linear(h_g) + Linear(h_l) is computed as one Linear over the concatenation
    [h_g, h_l]: the same function, one matrix multiply instead of two.
    """

    def __init__(self, glimpse_size: int, num_scales: int, channels: int, glimpse_hidden: int,
                 hidden_size: int):
        super().__init__()
        self.glimpse_size, self.num_scales = glimpse_size, num_scales
        self.fc_rho = nn.Linear(num_scales * channels * glimpse_size**2, glimpse_hidden)
        self.fc_l = nn.Linear(2, glimpse_hidden)
        self.fc_g = nn.Linear(2 * glimpse_hidden, hidden_size)

    def forward(self, retina: Retina, l: torch.Tensor) -> torch.Tensor:
        h_g = F.relu(self.fc_rho(retina.glimpse(l)))
        h_l = F.relu(self.fc_l(l))
        return F.relu(self.fc_g(torch.cat([h_g, h_l], dim=1)))


class CoreNetwork(nn.Module):
    """f_h: h_t = ReLU(Linear(h_{t-1}) + Linear(g_t)), or an LSTM cell (``use_lstm``).

    The state is a tuple so both kinds share one interface: (h,) or (h, c).
    """

    def __init__(self, hidden_size: int, use_lstm: bool = False):
        super().__init__()
        self.hidden_size, self.use_lstm = hidden_size, use_lstm
        if use_lstm:
            self.cell = nn.LSTMCell(hidden_size, hidden_size)
        else:
            self.fc_h = nn.Linear(2 * hidden_size, hidden_size)  # [h_{t-1}, g_t] in one multiply

    def initial_state(self, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        h = torch.zeros(batch_size, self.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if self.use_lstm else (h,)

    def forward(self, g: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ...]:
        """One step; ``state=None`` is the zero initial state, whose product is skipped."""
        if self.use_lstm:
            return self.cell(g, state)
        if state is None:  # h_0 = 0: Linear(h_0) is only its bias
            return (F.relu(F.linear(g, self.fc_h.weight[:, self.hidden_size:], self.fc_h.bias)),)
        return (F.relu(self.fc_h(torch.cat([state[0], g], dim=1))),)


class LocationNetwork(nn.Module):
    """f_l: the location policy pi(l | h) = N(tanh(f(h)), std^2 I).

    f is Linear(h), as in the paper, or with ``hidden > 0`` a small MLP
    Linear-ReLU-Linear. The input h_t is detached unless ``detach=False``; then
    REINFORCE also reaches the core and glimpse networks, as in the paper's joint
    training of all parameters (``--reinforce_core``).

    Returns the location to look at next (sampled, or the mean when ``deterministic``)
    and its log-probability under the policy. The sample is detached: it is an action,
    and no gradient may flow through it into the next glimpse.
    """

    def __init__(self, hidden_size: int, std: float, hidden: int = 0, detach: bool = True,
                 learn_first: bool = False):
        super().__init__()
        self.std = std  # training may narrow it epoch by epoch (Config.policy_std)
        self.detach = detach
        if hidden:
            self.fc = nn.Sequential(nn.Linear(hidden_size, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        else:
            self.fc = nn.Linear(hidden_size, 2)
        # --first_location learned: l_0 is drawn from the policy too, N(tanh(first), std^2 I).
        # Nothing has been seen before it, so it is one mean for every image, learned by
        # REINFORCE like the others; starting at 0, the centre. None: l_0 is the centre.
        self.first = nn.Parameter(torch.zeros(2)) if learn_first else None

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        """The policy's mean location tanh(f(h)), from a detached h unless ``detach=False``."""
        return torch.tanh(self.fc(h.detach() if self.detach else h))

    def first_mean(self, rows: int) -> torch.Tensor:
        """The mean of the learned l_0, tanh(first), for ``rows`` images (rows, 2)."""
        return torch.tanh(self.first).expand(rows, 2)

    def sample(self, mu: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """A draw from N(mu, std^2 I), or mu itself when ``deterministic``; never differentiated."""
        mu = mu.detach()
        return mu if deterministic else mu + self.std * torch.randn_like(mu)

    def log_prob(self, l: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """log N(l; mu, std^2 I), summed over the two coordinates (the last dimension)."""
        log_norm = math.log(self.std) + 0.5 * math.log(2 * math.pi)  # of each 1-D Gaussian
        return (l - mu).pow(2).sum(-1) / (-2 * self.std**2) - 2 * log_norm

    def forward(self, h: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mean(h)
        l = self.sample(mu, deterministic)
        # Clamp after scoring: the retina sees the image's own square; the score is that
        # of the Gaussian sample the policy actually drew.
        return l.clamp(-1, 1), self.log_prob(l, mu)


class ActionNetwork(nn.Module):
    """f_a: logits over classes (or game actions) from h_t."""

    def __init__(self, hidden_size: int, num_actions: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, num_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


class BaselineNetwork(nn.Module):
    """b_t: the expected reward given h_t (detached), trained by MSE to the reward."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h.detach()).squeeze(-1)
