"""The hybrid loss: supervised cross-entropy + REINFORCE for the locations + baseline MSE.

The classifier gets an exact gradient from cross-entropy on the last step. Where to
look is not differentiable, so the location policy is trained by REINFORCE with reward
R = 1 for a correct final prediction (else 0), using the advantage R - b_t so that the
gradient's variance is reduced; the baseline b_t learns E[R | h_t] by regression.

Which parameters each term changes (the location and baseline networks read a detached
h_t, see modules.py):
- cross-entropy: glimpse, core and action networks;
- REINFORCE: the location network only;
- baseline MSE: the baseline network only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import Output


def hybrid_loss(out: Output, labels: torch.Tensor, reinforce_weight: float = 1.0):
    """Returns (total loss, dict of detached per-term tensors for logging)."""
    ce = F.cross_entropy(out.logits, labels)
    correct = (out.logits.detach().argmax(1) == labels).float()
    reward = correct[:, None].expand_as(out.baselines)
    if out.baselines.shape[1]:
        advantage = reward - out.baselines.detach()
        reinforce = -(out.log_pi * advantage).sum(1).mean()
        baseline = F.mse_loss(out.baselines, reward)
    else:  # one glimpse, or a model that never chooses where to look
        reinforce = baseline = ce.new_zeros(())
    total = ce + reinforce_weight * reinforce + baseline
    terms = {"loss": total.detach(), "ce": ce.detach(), "reinforce": reinforce.detach(),
             "baseline": baseline.detach(), "acc": correct.mean()}
    return total, terms
