"""A SoftHSM token in a temporary directory, for the PKCS#11 key store tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class SoftHsmToken:
    module: Path
    label: str
    pin: str
    conf: Path


@contextmanager
def softhsm_token(base: Path, label: str = "justice-test") -> Iterator[SoftHsmToken]:
    """Initialise a token under `base` and point SOFTHSM2_CONF at it.

    SoftHSM reads SOFTHSM2_CONF when the module is initialised, i.e. at the first
    pkcs11.lib() in the process, so this must run before any key store opens.
    """
    if not MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.fail(
            "SoftHSM is not installed: apt-get install softhsm2 (the test command installs it)"
        )
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = SoftHsmToken(MODULE, label, "1234", conf)
    try:
        subprocess.run(
            [
                *("softhsm2-util", "--init-token", "--free", "--label", label),
                *("--pin", token.pin, "--so-pin", "5678"),
            ],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        yield token
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
