"""The paper's comparison models: networks that see the whole image at once.

Mnih et al. (2014) compare RAM with feed-forward networks trained on the full image
(Tables 1 and 2):

- ``fc64`` / ``fc256``: "FC, 2 layers (64 / 256 hiddens each)": the flattened image,
  two fully connected hidden layers of 64 (or 256) ReLU units, then a linear softmax
  classifier.
- ``conv``: "Convolutional, 2 layers": as the paper's text describes its convolutional
  baseline, one layer of 8 filters of 10x10 with stride 5 (no padding), then a fully
  connected layer of 256 units, with ReLU after each layer, then a linear softmax
  classifier. The two "layers" are the convolutional and the fully connected one. The
  tables give no other architecture, so the same one serves every image size.

Training is the RAM loop's (optimizer, schedule, epochs from the config); the paper
does not say how its baselines were regularized, and nothing is added here.

Parameter counts (1 channel, 10 classes):

| input   | fc64    | fc256     | conv    |
| ------- | ------- | --------- | ------- |
| 28x28   | 55,050  | 269,322   | 36,402  |
| 60x60   | 235,274 | 990,218   | 251,442 |
| 100x100 | 644,874 | 2,628,618 | 742,962 |

(fc: (S*S + 1) * h + (h + 1) * h + (h + 1) * 10; conv: 8 * (100 + 1) +
(8 * n * n + 1) * 256 + 257 * 10 with n = (S - 10) // 5 + 1 = 4, 11, 19.)

Unlike RAM, whose size does not depend on the image, these models are built for one
image size, read from the config: ``--image_size`` when given, else the data set's own
(28 for MNIST, 60 for translated and cluttered60, 100 for cluttered100).

They plug into the RAM training loop unchanged: ``forward`` returns a
:class:`ram.model.Output` with no location decisions (empty ``log_pi`` and
``baselines``, no ``locations``), so the hybrid loss reduces to plain cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..errors import RamError
from .ram import Output

BASELINES = ("fc64", "fc256", "conv")

# The convolutional baseline's one convolutional layer.
CONV_FILTERS, CONV_KERNEL, CONV_STRIDE = 8, 10, 5
CONV_HIDDEN = 256


def image_size_of(config: Config) -> int:
    """The side of the square images the model will see, known from the config alone."""
    if config.image_size > 0:
        return config.image_size
    if config.dataset == "folder":
        raise RamError("the fc64/fc256/conv baselines need the image size in advance; "
                       "pass --image_size for --dataset folder")
    from ..data import resolve_variant
    variant = resolve_variant(config)
    return 28 if variant is None else variant.image_size


class WholeImageClassifier(nn.Module):
    """A feed-forward network on the whole image, speaking the RAM model's interface."""

    def __init__(self, net: nn.Module, channels: int, image_size: int):
        super().__init__()
        self.net = net
        self.input_shape = (channels, image_size, image_size)

    def forward(self, x: torch.Tensor, deterministic: bool = False, greedy_rows: int = 0,
                copies: int = 1) -> Output:
        # ``deterministic`` and ``greedy_rows`` are accepted for the common interface; these
        # models never sample.
        x = x.repeat(copies, 1, 1, 1) if copies > 1 else x
        if tuple(x.shape[1:]) != self.input_shape:
            c, s, _ = self.input_shape
            raise RamError(f"this baseline was built for {c}x{s}x{s} images, got "
                           f"{'x'.join(map(str, x.shape[1:]))}; pass the matching --image_size/--channels")
        B = x.shape[0]
        empty = x.new_zeros(B, 0)
        return Output(logits=self.net(x), log_pi=empty, baselines=empty, locations=x.new_zeros(B, 0, 2))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, mc_samples: int = 0) -> tuple[torch.Tensor, None]:
        """Class probabilities; there are no glimpses, and nothing to average over."""
        return F.softmax(self(x).logits, dim=1), None


def fully_connected(in_features: int, hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def convolutional(channels: int, image_size: int, num_classes: int) -> nn.Sequential:
    if image_size < CONV_KERNEL:
        raise RamError(f"the conv baseline needs images of at least {CONV_KERNEL}x{CONV_KERNEL} "
                       f"pixels, not {image_size}; pass a larger --image_size")
    side = (image_size - CONV_KERNEL) // CONV_STRIDE + 1
    return nn.Sequential(
        nn.Conv2d(channels, CONV_FILTERS, CONV_KERNEL, stride=CONV_STRIDE), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(CONV_FILTERS * side * side, CONV_HIDDEN), nn.ReLU(),
        nn.Linear(CONV_HIDDEN, num_classes),
    )


def build_baseline(config: Config) -> WholeImageClassifier:
    """The baseline named by ``config.model`` (fc64, fc256 or conv), for the config's images."""
    size, c = image_size_of(config), config.channels
    if config.model == "fc64":
        net = fully_connected(c * size * size, 64, config.num_classes)
    elif config.model == "fc256":
        net = fully_connected(c * size * size, 256, config.num_classes)
    elif config.model == "conv":
        net = convolutional(c, size, config.num_classes)
    else:
        raise RamError(f"unknown --model {config.model!r}; choose ram, random, {', '.join(BASELINES)}")
    return WholeImageClassifier(net, c, size)
