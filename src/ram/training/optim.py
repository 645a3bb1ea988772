"""The optimiser, its learning-rate schedule, the policy's std schedule, and the weight average."""
from __future__ import annotations

import copy

import torch

from ..config import Config, cosine


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
