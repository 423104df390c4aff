"""The `justice` command in a process of its own, as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `justice <args>` to completion; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "justice", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `justice <args>` in the background; its stderr (the log) goes to `log`."""
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "justice", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
