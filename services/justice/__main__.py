"""`python -m justice` is the `justice` command."""

from justice.cli.main import app

app()
