"""Every path taken from the settings is absolute once they are read, and so is every path the
dev stack hands a child process: nats-server and weed run in their own folders, where the
default relative state dir `.justice` would mean something else (issue 8, point 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from justice.devstack.stack import DevStack
from justice.platform.config import Settings


def test_the_default_state_dir_is_resolved_against_the_starting_folder(
    in_fresh_folder: Path,
) -> None:
    settings = Settings()
    assert settings.state_dir == in_fresh_folder / ".justice"
    assert settings.pki_dir == in_fresh_folder / ".justice" / "pki"
    assert settings.resolved_database_url().endswith(f"///{in_fresh_folder}/.justice/justice.db")


def test_relative_paths_from_the_environment_become_absolute(
    in_fresh_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUSTICE_STATE_DIR", "state/../here")
    monkeypatch.setenv("JUSTICE_PKI_ROOT", "pki")
    monkeypatch.setenv("JUSTICE_TLS_CERT", "tls/server.pem")
    monkeypatch.setenv("JUSTICE_FINES__FONT", "fonts/letters.ttf")
    settings = Settings()
    assert settings.fines.font == in_fresh_folder / "fonts" / "letters.ttf"
    assert settings.state_dir == in_fresh_folder / "here"
    assert settings.pki_dir == in_fresh_folder / "pki"
    assert settings.tls_cert == in_fresh_folder / "tls" / "server.pem"
    assert settings.tls_key is None


def test_children_get_absolute_paths_only(in_fresh_folder: Path) -> None:
    stack = DevStack(Settings())
    for argv in (stack.nats.command(), stack.s3.command()):
        paths = [a.partition("=")[2] or a for a in argv if "/" in a]
        assert paths, argv
        assert all(Path(p).is_absolute() for p in paths), argv
    # They run in their own folders; the paths above must not depend on that.
    assert stack.nats.workdir == in_fresh_folder / ".justice" / "nats"
    assert stack.s3.workdir == in_fresh_folder / ".justice" / "s3" / "data"
