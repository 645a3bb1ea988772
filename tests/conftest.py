import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def data_root() -> Path:
    """The shared copy of MNIST when present, else the repository's own."""
    shared = ROOT.parent / "shared" / "data"
    return shared if (shared / "MNIST" / "raw").is_dir() else ROOT / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return data_root()
