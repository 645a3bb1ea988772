"""Training: the loop both trainers share, the optimiser and weight average, distributed
data parallelism, evaluation, and the classification trainer."""
from .evaluation import evaluate
from .loop import Run, epoch_generator, pick_device, rng_state, set_rng_state, setup_logging
from .optim import WeightAverage, build_optimizer, param_groups, set_policy_std
from .trainer import Trainer, run_name

__all__ = ["Run", "Trainer", "WeightAverage", "build_optimizer", "epoch_generator", "evaluate",
           "param_groups", "pick_device", "rng_state", "run_name", "set_policy_std", "set_rng_state",
           "setup_logging"]
