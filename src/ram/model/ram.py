"""RecurrentAttention: the unrolled glimpse loop of the paper, batched.

At step t the glimpse network looks at the image around l_{t-1}, the core network folds
that into h_t, and the location network chooses l_t (unroll.py runs that loop). After the
last glimpse the action network classifies from h_T. The first glimpse is taken at the
image centre, or with ``--first_location learned`` where a learned policy mean says.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from .networks import ActionNetwork, BaselineNetwork, CoreNetwork, GlimpseNetwork, LocationNetwork
from .unroll import unroll, uses_bf16


class Output(NamedTuple):
    logits: torch.Tensor     # (B, classes) from the last step
    log_pi: torch.Tensor     # (B, T-1) log-probability of each chosen location l_1..l_{T-1} (l_0 too when learned: (B, T))
    baselines: torch.Tensor  # (B, T-1) b_t, the expected reward at the step that chose l_t (likewise)
    locations: torch.Tensor  # (B, T, 2) where each glimpse looked, l_0..l_{T-1}


class RecurrentAttention(nn.Module):
    """The RAM classifier: T glimpses chosen by a Gaussian location policy, then a class.

    ``model(x)`` takes images (B, C, H, W) as floats in [0, 1] and returns an ``Output``:
    the last step's logits, the log-probabilities and baselines of the chosen locations,
    and where every glimpse looked. Pass ``deterministic=True`` to follow the policy's mean
    (evaluation) instead of sampling (training), or ``greedy_rows=n`` to follow it for the
    first n images only. ``copies=k`` looks at every image k times, as at the batch
    repeated k times (row j * B + i is image i), building the retina's table once.
    ``hybrid_loss`` turns an Output into the paper's training loss.
    """

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.config = c
        self.num_glimpses = c.num_glimpses
        self.random_glimpses = c.model == "random"
        self.glimpse_net = GlimpseNetwork(c.glimpse_size, c.num_scales, c.channels,
                                          c.glimpse_hidden, c.hidden_size)
        self.core = CoreNetwork(c.hidden_size, c.use_lstm)
        self.locator = LocationNetwork(c.hidden_size, c.std, c.location_hidden, detach=not c.reinforce_core,
                                       learn_first=c.first_location == "learned" and c.model == "ram")
        self.classifier = ActionNetwork(c.hidden_size, c.num_classes)
        self.baseline = BaselineNetwork(c.hidden_size)

    def forward(self, x: torch.Tensor, deterministic: bool = False, greedy_rows: int = 0,
                copies: int = 1) -> Output:
        h, samples, locations = self._glimpses(x, deterministic, greedy_rows, copies)
        # The policy's score and the baseline of every step that chose a location, all at
        # once from h_t: they need nothing else from inside the loop.
        h_chose = h[:-1]
        if self.random_glimpses:
            log_pi = x.new_zeros(h_chose.shape[:2])
        else:
            mu = self.locator.mean(h_chose)
            if self.locator.first is not None:  # l_0 was chosen too, from h_{-1} = 0
                mu = torch.cat([self.locator.first_mean(h.shape[1])[None], mu])
                h_chose = torch.cat([h.new_zeros(1, *h.shape[1:]), h_chose])
            log_pi = self.locator.log_prob(samples, mu)
        return Output(
            logits=self.classifier(h[-1]),
            log_pi=log_pi.t(),
            baselines=self.baseline(h_chose).t(),
            locations=locations.transpose(0, 1),
        )

    def _glimpses(self, x: torch.Tensor, deterministic: bool, greedy_rows: int = 0, copies: int = 1,
                  last_only: bool = False):
        """The glimpse loop: h (T, B, hidden), or only h_{T-1}, the policy's raw samples
        (of l_1..l_{T-1}, and first of l_0 when it is learned) and the locations."""
        if self.random_glimpses:
            choose, first = self._random_location, None
        else:
            choose, draw = self._policy(deterministic, greedy_rows)
            first = draw(self.locator.first_mean(x.shape[0] * copies)) if self.locator.first is not None else None
        h, samples, locations = unroll(x, self.glimpse_net, self.core, choose, self.num_glimpses,
                                       bf16=uses_bf16(self.config.precision, x.device), copies=copies,
                                       last_only=last_only, first=None if first is None else first[0])
        return h, samples if first is None else torch.cat([first[1][None], samples]), locations

    def _policy(self, deterministic: bool, greedy_rows: int = 0):
        """l_t ~ N(tanh(f_l(h_t)), std^2 I) (or its mean: every row when ``deterministic``,
        else the first ``greedy_rows``), clamped to the image's square after drawing; the
        unclamped draw is what gets scored. The sampled rows draw the same noise as a batch
        of those rows alone would. Returns ``choose(h)`` and ``draw(mu)``, the draw around
        given means (the learned l_0's), each giving (location, raw sample)."""
        def draw(mu):
            if greedy_rows and not deterministic:
                sample = torch.cat([mu[:greedy_rows].detach(), self.locator.sample(mu[greedy_rows:])])
            else:
                sample = self.locator.sample(mu, deterministic)
            return sample.clamp(-1, 1), sample
        return (lambda h: draw(self.locator.mean(h))), draw

    @staticmethod
    def _random_location(h):
        """The paper's ablation: where to look is drawn uniformly, not learned."""
        l = torch.rand(h.shape[0], 2, dtype=h.dtype, device=h.device) * 2 - 1
        return l, l

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, mc_samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities and glimpse locations.

        ``mc_samples == 0`` follows the deterministic policy (the mean location), the
        headline setting. ``mc_samples = N`` averages the softmax over N sampled glimpse
        paths (a later trick, reported separately); the locations are those of the first.
        """
        # Only the last h_t and the locations are needed: the policy's scores and the
        # baselines, which forward() computes for training, would be wasted work here.
        paths = [self._glimpses(x, deterministic=mc_samples <= 0, last_only=True) for _ in range(max(mc_samples, 1))]
        probs = torch.stack([F.softmax(self.classifier(h[-1]), dim=1) for h, _, _ in paths]).mean(0)
        return probs, paths[0][2].transpose(0, 1)

    @classmethod
    def from_checkpoint(cls, path, device="cpu") -> "RecurrentAttention":
        """The trained model of a checkpoint, in eval mode, with ``.config`` and
        ``.class_names`` set (``ram.load_model`` also loads the whole-image baselines)."""
        from .. import checkpoint
        model, _ = checkpoint.restore(cls, path, device)
        return model

    @classmethod
    def from_pretrained(cls, name: str, device="cpu") -> "RecurrentAttention":
        """A model that ships with the package (``ram.pretrained.names()``), offline."""
        from .. import pretrained
        return cls.from_checkpoint(pretrained.path(name), device)

    def predict(self, images, mc_samples: int = 0):
        """Classes, probabilities and glimpse locations for tensors or image file paths."""
        from .predict import predict
        return predict(self, images, mc_samples=mc_samples)
