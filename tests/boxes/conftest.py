"""The admin CLI fixtures, shared with tests/admin."""

from tests.admin.conftest import admin_env, cli

__all__ = ["admin_env", "cli"]
