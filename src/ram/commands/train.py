"""``ram-train``: train a RAM or one of the paper's baselines on a data set.

Flags left unset take the values of the --config file, if any, then the dataset's preset
(the paper's glimpse settings), then the defaults in config.Config. Problems with the
user's input end in one ``error:`` line.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ..config import Config, load_config_file
from ..errors import friendly
from ..training import Trainer


class _Parser(argparse.ArgumentParser):
    """Records in ``args.flags_given`` the flags the command line names, whatever their
    values (a flag given at its default too): those, and only those, override --config."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        parsed, rest = super().parse_known_args(args, namespace)
        unset = object()  # argparse fills in a default only where the namespace has no value
        probe = argparse.Namespace(**{a.dest: unset for a in self._actions})
        super().parse_known_args(args, probe)
        parsed.flags_given = sorted(k for k, v in vars(probe).items() if v is not unset)
        return parsed, rest


def train_parser() -> argparse.ArgumentParser:
    d = Config()
    p = _Parser(prog="ram-train", description="Train a Recurrent Attention Model.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--config", default="", metavar="FILE",
      help="TOML file of settings, e.g. configs/cluttered60/ram8.toml: its values replace the dataset's "
           "preset, and flags given here replace its values")
    a("--dataset", default="mnist", help="mnist, fashion-mnist, translated, cluttered60, cluttered100, folder")
    a("--model", default=d.model, choices=["ram", "random", "fc64", "fc256", "conv"],
      help="ram; random = glimpses at random places (ablation); fc64/fc256/conv = the paper's baselines")
    a("--num_glimpses", type=int, default=d.num_glimpses)
    a("--glimpse_size", type=int, default=None, help="side g of the smallest patch (preset: 8 for 28x28, 12 otherwise)")
    a("--num_scales", type=int, default=None, help="number of patches k, each twice as wide (preset)")
    a("--hidden_size", type=int, default=d.hidden_size, help="units of g_t and of the core state h_t")
    a("--use_lstm", action="store_true", help="LSTM core instead of the ReLU RNN")
    a("--std", type=float, default=None,
      help=f"standard deviation of the Gaussian location policy (preset: 0.2 for mnist, translated and cluttered, else {d.std})")
    a("--std_final", type=float, default=None,
      help="narrow the policy along the cosine schedule from --std down to this std (0: keep --std; "
           "preset: 0.1 for the built-in data sets; folder data: 0)")
    a("--location_hidden", type=int, default=d.location_hidden,
      help="hidden units of the location network (0: Linear(h_t), as in the paper)")
    a("--reinforce_core", action=argparse.BooleanOptionalAction, default=None,
      help="REINFORCE also trains the core and glimpse networks (preset: on for translated and cluttered; "
           "otherwise it trains only the location network)")
    a("--first_location", default=None, choices=["centre", "learned"],
      help="where the first glimpse looks: the image centre, or a location learned by REINFORCE "
           "(one for every image, drawn from the policy like the later ones; preset: learned for mnist, "
           "else centre)")
    a("--image_size", type=int, default=None, help="canvas side for translated/cluttered data, or resize for folder data")
    a("--num_clutter", type=int, default=None, help="pieces of clutter (preset: 4 at 60x60, 8 at 100x100)")
    a("--clutter_size", type=int, default=d.clutter_size)
    a("--max_shift", type=int, default=None,
      help=f"augmentation: shift each training image by up to N pixels (preset: 2 for mnist, else {d.max_shift}: off)")
    a("--num_epochs", type=int, default=None, help=f"(preset: 200 for the built-in data sets; folder data: {d.num_epochs})")
    a("--recipe", default="default", choices=["default", "paper"],
      help="default: this project's best training for the dataset; paper: the paper's plain one "
           "(0/1 reward, learned baseline, no weight average, the first glimpse at the centre), with the "
           "same glimpse settings")
    a("--batch_size", type=int, default=d.batch_size)
    a("--optimizer", default=d.optimizer, choices=["adam", "sgd"])
    a("--lr", type=float, default=None, help=f"learning rate (default: {d.lr}, tuned for --batch_size {d.batch_size})")
    a("--policy_lr_scale", type=float, default=None,
      help=f"learning rate of the location network relative to --lr (preset: 1 for mnist, translated and cluttered, else {d.policy_lr_scale})")
    a("--lr_schedule", default=d.lr_schedule, choices=["cosine", "constant"])
    a("--momentum", type=float, default=d.momentum, help="for --optimizer sgd")
    a("--weight_decay", type=float, default=d.weight_decay)
    a("--reinforce_weight", type=float, default=None,
      help=f"weight of the REINFORCE term (preset: 0.1 for translated and cluttered, else {d.reinforce_weight}); "
           "Adam makes the location network's steps independent of it, so in effect it scales how much "
           "REINFORCE shapes the core with --reinforce_core")
    a("--ema", type=float, default=None,
      help="evaluate and save an exponential moving average of the weights with this decay, e.g. 0.999 "
           "(0: off; preset: 0.9998 for the built-in data sets; folder data: 0)")
    a("--reward", default=None, choices=["correct", "probability"],
      help="REINFORCE's reward: 1 for a right answer else 0 (the paper's), or the probability of the true class")
    a("--reinforce_baseline", default=None, choices=["learned", "greedy", "leave_one_out"],
      help="what REINFORCE's advantage subtracts from the reward: b_t (the paper's), the reward of the "
           "deterministic path on the same image (self-critical; one more forward pass per step), or the mean "
           "reward of the image's other sampled paths (with --paths K)")
    a("--paths", type=int, default=d.paths,
      help="sampled glimpse paths per training image, each trained (with --reinforce_baseline leave_one_out)")
    a("--mean_path_ce", type=float, default=None,
      help="with --reinforce_baseline greedy: also train the classifier by cross-entropy on that deterministic "
           "path, the one evaluation takes, with this weight (0: off; costs that path's backward pass)")
    a("--compile", action="store_true",
      help="compile the forward pass and loss with torch.compile (on CUDA also into a CUDA graph)")
    a("--precision", default=d.precision, choices=["auto", "bf16", "fp32"],
      help="of the glimpse and core networks' matrix products: bf16 is several times faster on CPUs with "
           "AVX-512 BF16 or AMX and on GPUs (docs/speed.md has the accuracy check); auto takes bf16 where the "
           "hardware runs it natively, else fp32, and the checkpoint records which"),
    a("--valid_size", type=float, default=d.valid_size, help="fraction of the training set held out for model selection (0: none; the last epoch is the model)")
    a("--train_size", type=int, default=d.train_size, help="use only N training images (0: all), for quick runs")
    a("--seed", type=int, default=d.seed)
    a("--split_seed", type=int, default=d.split_seed,
      help="seed of the train/validation split (-1: --seed); fix it to compare seeds on one validation set")
    a("--device", default=d.device, help="cuda or cpu (default: cuda when available)")
    a("--data_dir", default=d.data_dir)
    a("--save_dir", default=d.save_dir)
    a("--log_dir", default=d.log_dir)
    a("--plot_dir", default=d.plot_dir)
    a("--resume", action="store_true", help="continue from {save_dir}/{dataset}_latest.pth")
    a("--mc_samples", type=int, default=d.mc_samples, help="recorded in the config; used by evaluation")
    a("--no_progress", action="store_true", help="hide the progress bars (logs still go to --log_dir)")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    """The flags over the --config file over the dataset's preset over Config's defaults."""
    names = {f.name for f in dataclasses.fields(Config)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "config", ""):
        # A flag overrides the file when the command line named it, or when a program set it
        # on the parsed arguments (it then differs from the flag's default).
        defaults = vars(train_parser().parse_args([]))
        explicit = set(getattr(args, "flags_given", ())) | {k for k in given if given[k] != defaults.get(k)}
        from_file = load_config_file(args.config)
        given.update({k: v for k, v in from_file.items() if k not in explicit}, config_file=args.config)
    return Config.for_dataset(**given)


def batch_lr_warning(global_batch: int, lr: float | None, preset_lr: float = Config.lr) -> str | None:
    """The preset rates were tuned at batch 128. A larger batch at that rate takes fewer
    steps of the same size, and a smaller one more, noisier steps: both measured to cost
    accuracy. Say so rather than let it happen silently (docs/experiments.md, "Batch size and learning rate")."""
    if lr is not None or global_batch == Config.batch_size:
        return None
    return (f"warning: a global batch of {global_batch} with --lr {preset_lr:g}, the rate tuned for batch "
            f"{Config.batch_size}; at batch 512 that cost 3 points of MNIST error in 10-epoch runs, and scaling "
            f"the rate with the batch (here --lr {preset_lr * global_batch / Config.batch_size:g}) did not: "
            f"see docs/experiments.md, \"Batch size and learning rate\"")


@friendly
def main(argv=None):
    args = train_parser().parse_args(argv)
    trainer = Trainer(config_from_args(args), resume=args.resume, progress=not args.no_progress)
    chosen_lr = args.lr if args.lr is not None or not args.config else load_config_file(args.config).get("lr")
    warning = batch_lr_warning(trainer.config.batch_size * trainer.dist.world_size, chosen_lr, trainer.config.lr)
    if warning and trainer.dist.is_main:
        trainer.log.warning(warning)
    final = trainer.fit()
    if final and trainer.dist.is_main:
        if trainer.data.valid_y.numel():
            print(f"best validation accuracy {trainer.best_valid:.4f}; checkpoints in {trainer.save_dir}")
        else:
            print(f"no validation split: the last epoch's model is saved as best; test accuracy "
                  f"{final['test_acc']:.4f}; checkpoints in {trainer.save_dir}")
