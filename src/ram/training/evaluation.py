"""Accuracy of a classifier on a tensor data set, with the deterministic policy or averaged
over sampled glimpse paths."""
from __future__ import annotations

import torch

from ..data import to_float


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000,
             mc_samples: int = 0) -> float:
    """Accuracy with the deterministic policy (mc_samples=0) or averaged over sampled paths."""
    if len(labels) == 0:
        return float("nan")
    return count_correct(model, images, labels, batch_size, mc_samples).item() / len(labels)


@torch.no_grad()
def count_correct(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000,
                  mc_samples: int = 0) -> torch.Tensor:
    """How many images the model classifies right, as a tensor on the device: the batches
    queue up on a GPU without waiting for each other."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=labels.device)
    for i in range(0, len(labels), batch_size):
        probs, _ = model.predict_proba(to_float(images[i:i + batch_size]), mc_samples)
        correct += (probs.argmax(1) == labels[i:i + batch_size]).sum()
    model.train(was_training)
    return correct
