"""``train_catch``: train a RAM to play Catch, checkpoint it, then test it on the seeded games."""
from __future__ import annotations

import argparse

from ..catch import CatchTrainer, catch_config
from ..errors import friendly


def train_catch_parser() -> argparse.ArgumentParser:
    d = catch_config()
    p = argparse.ArgumentParser(prog="train_catch", description="Train a RAM to play Catch by REINFORCE.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--glimpse_size", type=int, default=d.glimpse_size, help="side g of the smallest patch")
    a("--num_scales", type=int, default=d.num_scales, help="number of patches, each twice as wide")
    a("--hidden_size", type=int, default=d.hidden_size, help="units of g_t and of the LSTM state h_t")
    a("--std", type=float, default=d.std, help="standard deviation of the Gaussian location policy")
    a("--lr", type=float, default=d.lr)
    a("--lr_schedule", default=d.lr_schedule, choices=["cosine", "constant"])
    a("--policy_lr_scale", type=float, default=d.policy_lr_scale,
      help="the location network's learning rate relative to --lr")
    a("--batch_size", type=int, default=d.batch_size, help="games per update")
    a("--num_epochs", type=int, default=d.num_epochs)
    a("--updates_per_epoch", type=int, default=d.updates_per_epoch)
    a("--entropy_weight", type=float, default=d.entropy_weight, help="bonus on the action entropy")
    a("--glimpse_gain", type=float, default=d.glimpse_gain,
      help="glimpses are sum-pooled and multiplied by this")
    a("--seed", type=int, default=d.seed)
    a("--device", default=d.device, help="cuda or cpu (default: cuda when available)")
    a("--save_dir", default=d.save_dir)
    a("--log_dir", default=d.log_dir)
    a("--plot_dir", default=d.plot_dir)
    a("--resume", action="store_true", help="continue from {save_dir}/catch_latest.pth")
    a("--no_progress", action="store_true", help="hide the progress bars (logs still go to --log_dir)")
    return p


@friendly
def main(argv=None) -> dict:
    """python scripts/train_catch.py [flags]: train, checkpoint, then test on the seeded games."""
    args = vars(train_catch_parser().parse_args(argv))
    resume, progress = args.pop("resume"), not args.pop("no_progress")
    trainer = CatchTrainer(catch_config(**args), resume=resume, progress=progress)
    result = trainer.fit()
    if result:
        print(f"best valid catch rate {trainer.best_valid:.4f} (all 1104 starts); test catch rate "
              f"{result.get('best_test_acc', result['test_acc']):.4f} over {trainer.test_games} seeded games "
              f"(best checkpoint); checkpoints in {trainer.save_dir}")
    return result
