"""``ram-predict IMAGE... --model_path PATH`` (or ``--pretrained NAME``): classify image files with a trained model
and draw where it looked."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import RamError, friendly
from ..model import load_model, predict
from ..training import pick_device
from .evaluate import model_path


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ram-predict", description="Classify images with a trained model "
                                "and draw where it looked.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="png/jpg/bmp files")
    p.add_argument("--model_path", default=None, help="a checkpoint written by ram-train")
    p.add_argument("--pretrained", default=None, metavar="NAME", help="a model that ships with the package, e.g. mnist")
    p.add_argument("--device", default="", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--plot_dir", default="./plots", help="where predictions.png is written")
    p.add_argument("--mc_samples", type=int, default=0,
                   help="average over N sampled glimpse paths (0: the deterministic policy)")
    return p


@friendly
def main(argv=None) -> None:
    args = predict_parser().parse_args(argv)
    if args.mc_samples < 0:
        raise RamError("--mc_samples must be 0 (deterministic policy) or more")
    model, _, _ = load_model(model_path(args), pick_device(args.device))
    pred = predict(model, args.images, mc_samples=args.mc_samples)
    for path, name, p in zip(args.images, pred.classes, pred.probabilities.tolist()):
        print(f"{path}: {name} (probability {p:.2f})")
    if pred.locations.shape[1] == 0:
        print(f"no glimpse picture: {model.config.model} looks at the whole image", file=sys.stderr)
        return
    from ..viz import draw_glimpses
    n = 64  # a readable grid; the lines above cover every image
    picture = draw_glimpses(pred.images[:n], pred.locations[:n], model.config.glimpse_size,
                            model.config.num_scales, preds=pred.indices[:n],
                            class_names=model.class_names, path=Path(args.plot_dir) / "predictions.png")
    print(f"glimpse paths drawn in {picture}", file=sys.stderr)  # stdout: one line per image
