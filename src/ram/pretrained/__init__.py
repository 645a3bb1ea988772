"""Trained models that ship with the package: weights and config only, one ``NAME.pth``
each, in the checkpoint format (loaded with ``weights_only=True``). Each file also records
how it was made (the command, commit and seed) and its test figure under float32
evaluation (``"test"``), which ``ram-evaluate --pretrained NAME`` reproduces."""
from __future__ import annotations

from pathlib import Path

from ..errors import RamError

FOLDER = Path(__file__).resolve().parent


def names() -> list[str]:
    """The shipped models' names."""
    return sorted(p.stem for p in FOLDER.glob("*.pth"))


def path(name: str) -> Path:
    """The file of the shipped model ``name``; a one-line error listing the names otherwise."""
    p = FOLDER / f"{name}.pth"
    if not name or "/" in name or not p.is_file():
        raise RamError(f"no pretrained model {name!r}; the shipped ones are: {', '.join(names()) or 'none'}")
    return p


def describe(test: dict) -> str:
    what = "test error" if test["metric"] == "test_error_percent" else "caught"
    return f"{what} {test['value']:.2f}% ({test['count']} of {test['of']}, float32)"
