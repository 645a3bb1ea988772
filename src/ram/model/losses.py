"""The hybrid loss: supervised cross-entropy + REINFORCE for the locations + baseline MSE.

The classifier gets an exact gradient from cross-entropy on the last step. Where to
look is not differentiable, so the location policy is trained by REINFORCE with reward
R = 1 for a correct final prediction (else 0), using the advantage R - b_t so that the
gradient's variance is reduced; the baseline b_t learns E[R | h_t] by regression.
``reward="probability"`` (``--reward probability``) replaces the paper's 0/1 reward by
the probability the classifier gives the true class: it still rewards looking where the
answer becomes right, and it keeps rewarding glimpses that make a right answer surer,
when the 0/1 reward of a well-trained model is nearly always 1 and says little.

Which parameters each term changes (the location and baseline networks read a detached
h_t, see modules.py):
- cross-entropy: glimpse, core and action networks;
- REINFORCE: the location network only (with ``--reinforce_core`` also the glimpse and
  core networks);
- baseline MSE: the baseline network only;
- with ``mean_path_ce``, cross-entropy on the mean path: as the first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .ram import Output


def rewards(logits: torch.Tensor, labels: torch.Tensor, reward: str = "correct") -> torch.Tensor:
    """R per image: "correct" (1 for a right prediction, else 0, the paper's) or
    "probability" (the softmax probability of the true class)."""
    logits = logits.detach()
    if reward == "correct":
        return (logits.argmax(1) == labels).float()
    return logits.softmax(1).gather(1, labels[:, None]).squeeze(1)


def hybrid_loss(out: Output, labels: torch.Tensor, reinforce_weight: float = 1.0,
                reward: str = "correct", greedy_logits: torch.Tensor | None = None,
                mean_path_ce: float = 0.0, paths: int = 1):
    """Returns (total loss, dict of detached per-term tensors for logging).

    ``paths``: K > 1 when ``out`` holds K sampled glimpse paths of each image, path-major
    (row k * B + i is path k of image i; ``labels`` repeated alike). REINFORCE's baseline
    for each path is then the mean reward of the image's other K - 1 paths (leave-one-out:
    Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free"), unbiased
    because those paths were drawn independently of it.

    ``greedy_logits``: the deterministic policy's logits for the same images; when given,
    their reward is the baseline in REINFORCE's advantage instead of b_t.
    ``mean_path_ce``: weight of a cross-entropy on ``greedy_logits`` too. Evaluation
    classifies from the mean path, which the sampled paths only scatter around (std 0.2
    is 6 pixels on a 60x60 canvas); this trains the classifier on that path as well."""
    ce = F.cross_entropy(out.logits, labels)
    correct = rewards(out.logits, labels)
    R = correct if reward == "correct" else rewards(out.logits, labels, reward)
    reward_t = R[:, None].expand_as(out.baselines)
    if out.baselines.shape[1]:
        if paths > 1:
            per_image = R.view(paths, -1)
            b = ((per_image.sum(0) - per_image) / (paths - 1)).reshape(-1, 1)
        elif greedy_logits is not None:
            b = rewards(greedy_logits, labels, reward)[:, None]
        else:
            b = out.baselines.detach()
        advantage = reward_t - b
        reinforce = -(out.log_pi * advantage).sum(1).mean()
        baseline = F.mse_loss(out.baselines, reward_t)
    else:  # one glimpse, or a model that never chooses where to look
        reinforce = baseline = ce.new_zeros(())
    total = ce + reinforce_weight * reinforce + baseline
    if mean_path_ce:
        total = total + mean_path_ce * F.cross_entropy(greedy_logits, labels)
    terms = {"loss": total.detach(), "ce": ce.detach(), "reinforce": reinforce.detach(),
             "baseline": baseline.detach(), "acc": correct.mean()}
    return total, terms
