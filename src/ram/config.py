"""Every hyperparameter in one dataclass; it is saved in each checkpoint as a plain dict."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import RamError


# The paper's glimpse settings per data set; flags given explicitly override them. MNIST
# also gets the policy and augmentation that trained best here (docs/experiments.md: run j),
# and the translated and cluttered sets that policy (std 0.2 at the full learning rate:
# 28% against 36% error after 10 epochs on cluttered 60x60, docs/experiments.md). On the large
# canvases REINFORCE also trains the core and glimpse networks, at a tenth of the
# weight: there the policy must read from h_t where the digit is, which cross-entropy
# alone does not teach the core (docs/experiments.md, "Letting REINFORCE shape the core").
WIDE_POLICY = {"std": 0.2, "policy_lr_scale": 1.0}
POLICY_SHAPES_CORE = {"reinforce_core": True, "reinforce_weight": 0.1}
# The default recipe (docs/experiments.md, "Time to accuracy"): the self-critical policy
# gradient on the true class's probability, cross-entropy on the mean path too, a policy std
# that narrows from 0.2 to 0.1, and a moving average of the weights, over 200 epochs. Every
# data set's preset trains it. On cluttered 60x60 the whole recipe beat the self-critical
# gradient alone over 3 seeds of the same length (docs/experiments.md, "The whole recipe on
# clutter"); the 100x100 canvas has no such comparison and takes it as the default.
RECIPE = {"reward": "probability", "reinforce_baseline": "greedy", "mean_path_ce": 1.0, "ema": 0.9998,
          "std_final": 0.1, "num_epochs": 200}
# On the 28x28 data sets the first glimpse is a policy choice too: one learned location for
# every image. Over 3 seeds it lowered the validation error of every MNIST row screened
# (docs/experiments.md, "MNIST rows with a learned first glimpse": RAM-6 0.85% against 1.09%
# on test) and of Fashion-MNIST RAM-6 (9.85% against 10.72% on validation; "Fashion-MNIST
# with a learned first glimpse").
MNIST_PRESET = {"glimpse_size": 8, "num_scales": 1, **WIDE_POLICY, "max_shift": 2, **RECIPE,
                "first_location": "learned"}
# On translated and cluttered canvases half the learning rate: the models underfit their
# training digits at 1e-3, and over 3 seeds of each row screened (translated RAM-4, RAM-6,
# RAM-8; 60x60 and 100x100 cluttered RAM-4, RAM-6, RAM-8) 5e-4 erred less on fresh
# canvases of the validation digits (docs/experiments.md, the sections on half the
# learning rate). The three canvases differ only in the paper's glimpse settings.
CANVAS_PRESET = {**WIDE_POLICY, **POLICY_SHAPES_CORE, **RECIPE, "lr": 5e-4}
DATASET_PRESETS = {
    "mnist": MNIST_PRESET,
    "fashion-mnist": MNIST_PRESET,
    "translated": {"glimpse_size": 12, "num_scales": 3, **CANVAS_PRESET},
    "cluttered60": {"glimpse_size": 12, "num_scales": 3, **CANVAS_PRESET},
    "cluttered100": {"glimpse_size": 12, "num_scales": 4, **CANVAS_PRESET},
}
# --recipe paper: the plain setting of the paper over the dataset's glimpse settings:
# the 0/1 reward, the learned baseline b_t, no weight average, a fixed policy std, and the
# first glimpse at the centre.
PAPER_RECIPE = {"reward": "correct", "reinforce_baseline": "learned", "mean_path_ce": 0.0, "ema": 0.0,
                "std_final": 0.0, "paths": 1, "first_location": "centre"}
RECIPES = ("default", "paper")


def cosine(epoch: int, num_epochs: int) -> float:
    """Half a cosine from 1 (epoch 0) to 0 (epoch num_epochs), in closed form so that a run
    resumed with a longer --num_epochs follows the longer schedule."""
    return 0.5 * (1 + math.cos(math.pi * epoch / max(num_epochs, 1)))


@dataclass
class Config:
    # data
    dataset: str = "mnist"
    data_dir: str = "./data"
    valid_size: float = 0.1
    train_size: int = 0          # use only the first N training images (0: all), for quick runs
    image_size: int = 0          # 0: the dataset's own (28 for MNIST, 60/100 for the variants)
    num_clutter: int = -1        # -1: the dataset's own
    clutter_size: int = 8
    max_shift: int = 0           # augmentation: shift training images by up to N pixels (0: off)
    channels: int = 1
    num_classes: int = 10
    # glimpse sensor and networks (paper, section 4)
    model: str = "ram"           # ram | random (random glimpses) | fc64 | fc256 | conv
    num_glimpses: int = 6
    glimpse_size: int = 8
    num_scales: int = 1
    glimpse_hidden: int = 128    # h_g and h_l
    hidden_size: int = 256       # g_t and h_t
    use_lstm: bool = False
    std: float = 0.15            # std of the Gaussian location policy (at the start of training)
    std_final: float = 0.0       # if > 0, the std follows the cosine schedule down to this (0: fixed std)
    location_hidden: int = 0     # 0: f_l is Linear(h_t), the paper's; N: Linear-ReLU-Linear with N units
    reinforce_core: bool = False  # REINFORCE also trains the core and glimpse networks (f_l reads h_t undetached)
    first_location: str = "centre"  # where the first glimpse looks: centre | learned (one l_0 for all images, by REINFORCE)
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    policy_lr_scale: float = 0.1  # the location network's lr relative to --lr (see train.param_groups)
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # cosine | constant
    batch_size: int = 128
    num_epochs: int = 100
    reinforce_weight: float = 1.0  # with reinforce_core: how strongly REINFORCE shapes the core against cross-entropy
    ema: float = 0.0             # decay of the weight average that is evaluated and saved (0: off)
    reward: str = "correct"      # REINFORCE's reward: correct (1 or 0, the paper's) | probability (of the true class)
    reinforce_baseline: str = "learned"  # learned (b_t, the paper's) | greedy (the mean path's reward: self-critical) | leave_one_out (with paths > 1)
    paths: int = 1               # sampled glimpse paths per training image (leave_one_out needs 2 or more)
    mean_path_ce: float = 0.0    # with greedy: weight of a cross-entropy on the mean path, the one evaluated (0: off)
    compile: bool = False        # the forward pass and loss under torch.compile (CUDA: also a CUDA graph)
    precision: str = "auto"      # of the glimpse and core products: bf16 | fp32 | auto (bf16 where the hardware runs it natively)
    recipe: str = "default"      # default (this project's best) | paper (the paper's plain training)
    seed: int = 1
    split_seed: int = -1         # seed of the train/validation split (-1: --seed), so seeds can share a validation set
    # evaluation
    mc_samples: int = 0
    # Catch (dynamic environment)
    updates_per_epoch: int = 50  # REINFORCE updates (of batch_size games each) between evaluations
    entropy_weight: float = 0.0  # bonus on the action distribution's entropy (0: plain REINFORCE)
    glimpse_gain: float = 8.0    # glimpses sum-pooled and multiplied by this (the screen is nearly empty)
    # bookkeeping
    device: str = ""
    save_dir: str = "./checkpoints"
    log_dir: str = "./logs"
    plot_dir: str = "./plots"
    config_file: str = ""        # the --config TOML file the settings came from, as given ("": none)

    @classmethod
    def for_dataset(cls, dataset: str = "mnist", recipe: str = "default", **overrides) -> "Config":
        """The defaults, then the dataset's preset (with ``recipe="paper"`` the paper's plain
        training instead of this project's), then every explicit override."""
        if recipe not in RECIPES:
            raise RamError(f"unknown --recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        paper = PAPER_RECIPE if recipe == "paper" else {}
        settings = {"dataset": dataset, **DATASET_PRESETS.get(dataset, {}), **paper, "recipe": recipe, **overrides}
        # The preset's cross-entropy on the mean path rides on the greedy baseline's forward
        # pass: choosing another baseline explicitly drops it, unless also set explicitly.
        if settings.get("reinforce_baseline", "learned") != "greedy" and "mean_path_ce" not in overrides:
            settings["mean_path_ce"] = 0.0
        return cls(**settings)

    def policy_std(self, epoch: int) -> float:
        """The location policy's std during ``epoch`` (0-based): --std, or with --std_final
        the same cosine as the learning rate, from --std to --std_final."""
        if not self.std_final:
            return self.std
        return self.std_final + (self.std - self.std_final) * cosine(epoch, self.num_epochs)

    def valid_split_seed(self) -> int:
        """The seed that picks the validation images: --split_seed, else --seed. Runs that
        differ only in --seed but share --split_seed are judged on the same validation set,
        so the best of them can be chosen on validation, as the best epoch of one run is."""
        return self.seed if self.split_seed < 0 else self.split_seed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {"precision": "fp32", **d}  # checkpoints from before --precision trained in float32
        unknown = set(d) - names
        if unknown:
            raise RamError(f"checkpoint config has unknown keys {sorted(unknown)}; "
                           "it was written by another program or version: retrain or use that version")
        return cls(**d)

    def validate(self) -> "Config":
        checks = [
            (self.num_glimpses >= 1, "--num_glimpses must be at least 1"),
            (self.glimpse_size >= 1, "--glimpse_size must be at least 1"),
            (self.num_scales >= 1, "--num_scales must be at least 1"),
            (self.hidden_size >= 1 and self.glimpse_hidden >= 1, "--hidden_size must be positive"),
            (self.std > 0, "--std must be positive (it is the policy's standard deviation)"),
            (self.location_hidden >= 0, "--location_hidden must be 0 (a linear f_l) or a number of units"),
            (self.std_final >= 0, "--std_final must be 0 (a fixed std) or a positive standard deviation"),
            (self.lr > 0, "--lr must be positive"),
            (self.policy_lr_scale > 0, "--policy_lr_scale must be positive"),
            (self.batch_size >= 1, "--batch_size must be at least 1"),
            (self.num_epochs >= 1, f"--num_epochs {self.num_epochs} trains nothing; pass at least 1"),
            (0 <= self.valid_size < 1, "--valid_size must be a fraction in [0, 1)"),
            (self.split_seed >= -1, "--split_seed must be -1 (the split follows --seed) or a seed"),
            (self.train_size >= 0, "--train_size must be 0 (all) or a number of images"),
            (0 <= self.ema < 1, "--ema must be a decay in [0, 1), e.g. 0.999 (0: off)"),
            (self.reward in ("correct", "probability"), "--reward must be correct or probability"),
            (self.reinforce_baseline in ("learned", "greedy", "leave_one_out"),
             "--reinforce_baseline must be learned, greedy or leave_one_out"),
            (self.paths >= 1, "--paths must be at least 1"),
            (self.precision in ("auto", "bf16", "fp32"), "--precision must be auto, bf16 or fp32"),
            (self.first_location in ("centre", "learned"), "--first_location must be centre or learned"),
            ((self.paths > 1) == (self.reinforce_baseline == "leave_one_out"),
             "--reinforce_baseline leave_one_out and --paths K (K >= 2) go together: it is the mean reward "
             "of an image's other sampled paths"),
            (self.mean_path_ce >= 0, "--mean_path_ce must be 0 (off) or a positive weight"),
            (not self.mean_path_ce or self.reinforce_baseline == "greedy",
             "--mean_path_ce trains the mean path that --reinforce_baseline greedy runs: add that flag"),
            (self.optimizer in ("adam", "sgd"), "--optimizer must be adam or sgd"),
            (self.lr_schedule in ("cosine", "constant"), "--lr_schedule must be cosine or constant"),
            (self.mc_samples >= 0, "--mc_samples must be 0 (deterministic policy) or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise RamError(message)
        for flag in ("save_dir", "log_dir", "plot_dir"):
            check_folder(flag, getattr(self, flag))
        return self

    def check_glimpse_fits(self, image_side: int) -> None:
        """Refuse a retina whose widest patch is over twice the image: centred anywhere on
        the image, such a patch already covers all of it, so what it adds is zeros (and on
        the GPU, time)."""
        if self.model not in ("ram", "random"):  # the baselines take no glimpses
            return
        widest = self.glimpse_size * 2 ** (self.num_scales - 1)
        if widest > 2 * image_side:
            raise RamError(f"--glimpse_size {self.glimpse_size} with --num_scales {self.num_scales} makes patches "
                           f"up to {widest} pixels wide on {image_side}x{image_side} images, where {2 * image_side} "
                           "already covers the whole image from anywhere: use fewer scales or a smaller --glimpse_size")


# A table of a config file that is no setting: what the paper reports for the row the file
# trains (label, error_percent), read by benchmarks/reproduce.py and ignored by training.
PAPER_TABLE = "paper"
NOT_IN_FILES = ("config_file",)  # set from the file's own path


def load_config_file(path: str | Path) -> dict:
    """The settings of a TOML config file (``ram-train --config``, ``configs/``): keys are
    Config's fields (the ram-train flags without the dashes), values of their types, e.g.
    ``num_glimpses = 8``. A ``[paper]`` table is left out. A missing or unreadable file, bad
    TOML, an unknown key or a value of the wrong type ends in one RamError line."""
    import tomllib  # Python 3.11+

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise RamError(f"config file {path} does not exist; pass the path of a TOML file, "
                       "e.g. configs/mnist/ram6.toml") from None
    except OSError as e:
        raise RamError(f"config file {path} cannot be read ({e.strerror}); pass a readable TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RamError(f"config file {path} is not valid TOML ({e}); write one `key = value` per line, "
                       'strings in quotes, e.g. dataset = "mnist"') from None
    if not isinstance(data.pop(PAPER_TABLE, {}), dict):
        raise RamError(f"config file {path}: {PAPER_TABLE} must be a table ([{PAPER_TABLE}] with label "
                       "and error_percent); rename the key")
    fields = {f.name for f in dataclasses.fields(Config)}
    settings = {}
    for key, value in data.items():
        if key not in fields or key in NOT_IN_FILES:
            why = "is set from the file's own path" if key in NOT_IN_FILES else "is not a setting"
            raise RamError(f"config file {path}: unknown key {key!r} ({why}); the keys are the ram-train "
                           f"flags without the dashes (ram-train --help), plus an optional [{PAPER_TABLE}] table")
        default = getattr(Config, key)
        kind = type(default)
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
            raise RamError(f"config file {path}: {key} = {value!r} is not {what}; "
                           f"write it like the default, {key} = {json.dumps(default)}")
        settings[key] = value
    return settings


def check_folder(flag: str, folder: str) -> None:
    """A folder to write into must be a folder, or not exist yet below one: a file on the way
    would only fail at the first save, after an epoch of work."""
    for p in (Path(folder), *Path(folder).parents):
        if p.exists():
            if not p.is_dir():
                raise RamError(f"--{flag} {folder}: {p} is a file, not a folder; pass another --{flag}")
            return
