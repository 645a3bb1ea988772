"""RecurrentAttention: the unrolled glimpse loop of the paper, batched.

At step t the glimpse network looks at the image around l_{t-1}, the core network folds
that into h_t, and the location network chooses l_t. After the last glimpse the action
network classifies from h_T. The first glimpse is taken at the image centre, l_0 = (0, 0).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .modules import ActionNetwork, BaselineNetwork, CoreNetwork, GlimpseNetwork, LocationNetwork
from .retina import Retina


class Output(NamedTuple):
    logits: torch.Tensor     # (B, classes) from the last step
    log_pi: torch.Tensor     # (B, T-1) log-probability of each chosen location l_1..l_{T-1}
    baselines: torch.Tensor  # (B, T-1) b_t, the expected reward at the step that chose l_t
    locations: torch.Tensor  # (B, T, 2) where each glimpse looked, l_0..l_{T-1}


class RecurrentAttention(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.config = c
        self.num_glimpses = c.num_glimpses
        self.random_glimpses = c.model == "random"
        self.glimpse_net = GlimpseNetwork(c.glimpse_size, c.num_scales, c.channels,
                                          c.glimpse_hidden, c.hidden_size)
        self.core = CoreNetwork(c.hidden_size, c.use_lstm)
        self.locator = LocationNetwork(c.hidden_size, c.std)
        self.classifier = ActionNetwork(c.hidden_size, c.num_classes)
        self.baseline = BaselineNetwork(c.hidden_size)

    def forward(self, x: torch.Tensor, deterministic: bool = False) -> Output:
        B = x.shape[0]
        retina = Retina(x, self.config.glimpse_size, self.config.num_scales)
        state = None  # h_0 = 0
        l = x.new_zeros(B, 2)
        locations, log_pis, baselines = [l], [], []
        for t in range(self.num_glimpses):
            state = self.core(self.glimpse_net(retina, l), state)
            h = state[0]
            if t == self.num_glimpses - 1:
                break  # the last location would never be looked at
            if self.random_glimpses:  # the paper's ablation: where to look is not learned
                l = torch.rand_like(l) * 2 - 1
                log_pi = x.new_zeros(B)
            else:
                l, log_pi = self.locator(h, deterministic)
            locations.append(l)
            log_pis.append(log_pi)
            baselines.append(self.baseline(h))
        empty = x.new_zeros(B, 0)
        return Output(
            logits=self.classifier(h),
            log_pi=torch.stack(log_pis, 1) if log_pis else empty,
            baselines=torch.stack(baselines, 1) if baselines else empty,
            locations=torch.stack(locations, 1),
        )

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, mc_samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities and glimpse locations.

        ``mc_samples == 0`` follows the deterministic policy (the mean location), the
        headline setting. ``mc_samples = N`` averages the softmax over N sampled glimpse
        paths (a later trick, reported separately); the locations are those of the first.
        """
        if mc_samples <= 0:
            out = self(x, deterministic=True)
            return F.softmax(out.logits, dim=1), out.locations
        outs = [self(x, deterministic=False) for _ in range(mc_samples)]
        probs = torch.stack([F.softmax(o.logits, dim=1) for o in outs]).mean(0)
        return probs, outs[0].locations

    @classmethod
    def from_checkpoint(cls, path, device="cpu") -> "RecurrentAttention":
        """The trained model of a checkpoint, with ``.config`` and ``.class_names`` set."""
        from .predict import from_checkpoint
        return from_checkpoint(path, device)

    def predict(self, images, mc_samples: int = 0):
        """Classes, probabilities and glimpse locations for tensors or image file paths."""
        from .predict import predict
        return predict(self, images, mc_samples=mc_samples)
