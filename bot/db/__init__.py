"""Database access shared by the bot, the admin CLI and the benchmarks."""

from bot.db.engine import Database, make_engine, normalize_url, rowcount

__all__ = ["Database", "make_engine", "normalize_url", "rowcount"]
