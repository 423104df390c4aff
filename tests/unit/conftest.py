"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def in_fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory and no JUSTICE_* variables, as on a fresh clone."""
    for name in [n for n in os.environ if n.startswith("JUSTICE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
