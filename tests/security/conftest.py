"""The admin CLI fixtures (``cli`` runs ``crowdpin admin`` on the test's database)."""

from tests.admin.conftest import admin_env, cli

__all__ = ["admin_env", "cli"]
