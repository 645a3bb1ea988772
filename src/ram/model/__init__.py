"""The Recurrent Attention Model: the glimpse sensor, its networks, the unrolled loop, the
hybrid loss, and the paper's whole-image baselines. Nothing here imports training,
evaluation or the commands."""
from .baselines import BASELINES, build_baseline
from .load import build_model, load_model
from .losses import hybrid_loss, rewards
from .networks import ActionNetwork, BaselineNetwork, CoreNetwork, GlimpseNetwork, LocationNetwork
from .predict import Prediction, predict, prepare
from .ram import Output, RecurrentAttention
from .retina import Retina, glimpse

__all__ = ["BASELINES", "ActionNetwork", "BaselineNetwork", "CoreNetwork", "GlimpseNetwork",
           "LocationNetwork", "Output", "Prediction", "RecurrentAttention", "Retina", "build_baseline",
           "build_model", "glimpse", "hybrid_loss", "load_model", "predict", "prepare", "rewards"]
