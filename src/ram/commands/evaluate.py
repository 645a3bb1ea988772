"""``ram-evaluate``: rebuild a model from its checkpoint alone, report its test error, draw its glimpses."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import checkpoint, pretrained
from ..config import Config
from ..data import build_data, to_float
from ..errors import RamError, friendly
from ..model import load_model
from ..training import evaluate, pick_device
from ..training.evaluation import count_correct


def model_path(args: argparse.Namespace):
    """--model_path, or the file of --pretrained NAME: exactly one of the two."""
    if bool(args.model_path) == bool(args.pretrained):
        raise RamError("pass a checkpoint with --model_path PATH or a shipped model with --pretrained NAME "
                       f"(one of: {', '.join(pretrained.names()) or 'none'})")
    return args.model_path or pretrained.path(args.pretrained)


def measure(file, device="cpu") -> dict:
    """The test figure of a checkpoint, measured as a shipped model's was: float32 (its
    config says so), the deterministic policy, the full test set (Catch: the 1,000 seeded
    games). ``scripts/package_pretrained.py`` records it in the file; the tests check it."""
    ckpt = checkpoint.load(file, map_location=device)
    if checkpoint.config_of(ckpt, file).dataset == "catch":
        from ..catch.play import TEST_GAMES, TEST_SEED, catch_rate, load_agent, seeded_env
        agent, _, _ = load_agent(file, device)
        caught = round(TEST_GAMES * catch_rate(agent, seeded_env(TEST_GAMES, TEST_SEED, device)))
        return {"metric": "catch_rate_percent", "value": round(100 * caught / TEST_GAMES, 2),
                "count": caught, "of": TEST_GAMES}
    model, config, _ = load_model(file, device, ckpt)
    data = build_data(config, device)
    with torch.no_grad():
        correct = int(count_correct(model, data.test_x, data.test_y).item())
    n = len(data.test_y)
    return {"metric": "test_error_percent", "value": round(100 * (1 - correct / n), 2),
            "count": n - correct, "of": n}


def draw_pictures(model, config: Config, x: torch.Tensor, y: torch.Tensor, class_names, plot_dir: Path,
                  n: int) -> list[Path]:
    """Glimpse paths on sample test images, on misclassified ones, and an animated batch."""
    from ..viz import animate_glimpses, draw_glimpses
    kw = dict(glimpse_size=config.glimpse_size, num_scales=config.num_scales, class_names=class_names)
    probs, locations = model.predict_proba(x)
    preds = probs.argmax(1)
    name = config.dataset
    paths = [draw_glimpses(x[:n], locations[:n], labels=y[:n], preds=preds[:n],
                           path=plot_dir / f"{name}_glimpses.png", **kw)]
    wrong = (preds != y).nonzero().squeeze(1)[:n]
    if len(wrong):
        paths.append(draw_glimpses(x[wrong], locations[wrong], labels=y[wrong], preds=preds[wrong],
                                   path=plot_dir / f"{name}_misclassified.png", **kw))
    paths.append(animate_glimpses(x[:n], locations[:n], labels=y[:n], preds=preds[:n],
                                  path=plot_dir / f"{name}_glimpses.gif", **kw))
    return paths


def run_evaluation(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    args.model_path = model_path(args)
    ckpt = checkpoint.load(args.model_path, map_location=device)
    if args.pretrained:  # what the shipped file records, for the figure below to match
        print(f"pretrained {args.pretrained!r}: seed {ckpt['seed']}, epoch {ckpt['epoch']}, "
              f"recorded {pretrained.describe(ckpt['test'])}; made by: {ckpt['made_by']}")
    if "catch" in (args.dataset, checkpoint.config_of(ckpt, args.model_path).dataset):
        from ..catch import evaluate_catch  # a game-playing agent, not a classifier
        return evaluate_catch(args.model_path, args.device, args.plot_dir)
    model, config, ckpt = load_model(args.model_path, device, ckpt)
    if args.dataset and args.dataset != config.dataset:
        raise RamError(f"{args.model_path} was trained on --dataset {config.dataset}, "
                       f"not {args.dataset}; pass --dataset {config.dataset} or another checkpoint")
    if args.data_dir:
        config.data_dir = args.data_dir
    data = build_data(config, device)
    if ckpt.get("class_names") and list(ckpt["class_names"]) != list(data.class_names):
        raise RamError(f"the classes in {config.data_dir} ({', '.join(data.class_names[:5])}...) are not "
                       f"those {args.model_path} was trained on; pass the original --data_dir")
    acc = evaluate(model, data.test_x, data.test_y, args.batch_size)
    n = len(data.test_y)
    print(f"test error {100 * (1 - acc):.2f}% (accuracy {acc:.4f}) on {n} test images, "
          f"deterministic policy; {config.dataset}, epoch {ckpt['epoch']}, {args.model_path}")
    result = {"test_accuracy": acc, "test_error": 1 - acc}
    if args.mc_samples > 0:
        torch.manual_seed(config.seed)
        mc = evaluate(model, data.test_x, data.test_y, args.batch_size, args.mc_samples)
        print(f"test error {100 * (1 - mc):.2f}% (accuracy {mc:.4f}) averaged over "
              f"{args.mc_samples} sampled glimpse paths (Monte Carlo; not the headline figure)")
        result["mc_test_accuracy"] = mc
    if config.model in ("ram", "random"):
        k = min(args.num_images, n)
        with torch.no_grad():
            paths = draw_pictures(model, config, to_float(data.test_x[:1000]), data.test_y[:1000],
                                  data.class_names, Path(args.plot_dir), k)
        print("pictures: " + ", ".join(str(p) for p in paths))
    return result


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ram-evaluate", description="Test a trained model and draw its glimpses.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--model_path", default=None, help="a checkpoint written by ram-train")
    a("--pretrained", default=None, metavar="NAME", help="a model that ships with the package, e.g. mnist")
    a("--dataset", default=None, help="must match the checkpoint's (checked)")
    a("--data_dir", default=None, help="default: the one recorded in the checkpoint")
    a("--device", default="")
    a("--mc_samples", type=int, default=0, help="also report accuracy averaged over N sampled glimpse paths")
    a("--batch_size", type=int, default=1000)
    a("--plot_dir", default="./plots")
    a("--num_images", type=int, default=16, help="images in each picture")
    return p


@friendly
def main(argv=None):
    run_evaluation(evaluate_parser().parse_args(argv))
