"""Running the `justice` command against a test server, as a user at a terminal would."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from justice.app import Application
from justice.cli.main import app as cli
from justice.devstack.pki import DevPki
from justice.devstack.testing import PKI_PASSPHRASE


async def justice(application: Application, pki: DevPki, *args: str) -> Result:
    """Run the `justice` command in a thread (it runs its own event loop) against the server."""
    env = {
        "JUSTICE_PKI_ROOT": str(pki.root),
        "JUSTICE_LISTEN": f"127.0.0.1:{application.server.port}",
        "JUSTICE_KEY_PASSPHRASE": PKI_PASSPHRASE.decode(),
        "JUSTICE_STATE_DIR": str(application.settings.state_dir),
        "COLUMNS": "200",
    }
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
