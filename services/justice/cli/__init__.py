"""The `justice` command."""
