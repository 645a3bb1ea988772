"""ram: Recurrent Attention Models (Mnih, Heess, Graves, Kavukcuoglu, 2014) in PyTorch.

The public API::

    from ram import RecurrentAttention, Retina, hybrid_loss, Config

    model = RecurrentAttention(Config.for_dataset("mnist"))
    out = model(images)                      # logits, log pi, baselines, locations
    loss, terms = hybrid_loss(out, labels)   # cross-entropy + REINFORCE + baseline MSE

Layers, each importing only those below it: ``commands`` (the command-line tools) ->
``training`` and ``catch`` (the trainers) -> ``model``, ``data`` and ``envs`` -> ``config``,
``checkpoint`` and ``errors``.
"""
from .config import Config
from .errors import RamError
from .model import (Output, Prediction, RecurrentAttention, Retina, build_model, glimpse, hybrid_loss,
                    load_model, predict)

__all__ = ["Config", "Output", "Prediction", "RamError", "RecurrentAttention", "Retina", "build_model",
           "glimpse", "hybrid_loss", "load_model", "predict"]
__version__ = "0.1.0"
