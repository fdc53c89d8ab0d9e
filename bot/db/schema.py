"""Imports every table so ``SQLModel.metadata`` is complete (Alembic and tests rely on it)."""

from sqlmodel import SQLModel

from bot.broadcast import models as _broadcast  # noqa: F401
from bot.tasks import models as _tasks  # noqa: F401
from bot.tasks import pseudonym_key as _pseudonym_key  # noqa: F401
from bot.wallet import models as _wallet  # noqa: F401
from bot.workers import models as _workers  # noqa: F401

metadata = SQLModel.metadata
