"""The command-line tools, one module each: ram-train, ram-evaluate, ram-predict and
train_catch, also run as ``python -m ram train|evaluate|predict|train-catch``.

Every entry point is wrapped in ``errors.friendly``: a problem with the user's input ends
in one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import sys


def main(argv=None):
    from . import evaluate, predict, train, train_catch
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train.main, "evaluate": evaluate.main, "predict": predict.main,
                "train-catch": train_catch.main}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m ram {{{'|'.join(commands)}}} [flags]  (--help after a command for its flags)",
              file=sys.stderr)
        raise SystemExit(2)
    return commands[argv[0]](argv[1:])
