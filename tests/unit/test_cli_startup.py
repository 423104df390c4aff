"""The CLI starts without the server's stack: every `justice report get` is a new process, and
importing SQLAlchemy, NATS and the signing stack cost it seconds before the first call."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = ("sqlalchemy", "sqlmodel", "alembic", "nats", "signxml", "minio", "lxml")


def test_the_cli_imports_none_of_the_servers_packages() -> None:
    probe = (
        "import sys, justice.cli.main; "
        f"print(' '.join(m for m in {SERVER_ONLY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
