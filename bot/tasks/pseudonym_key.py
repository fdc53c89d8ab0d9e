"""The key of worker pseudonyms in exports and reports: the operator's, or one made on first use.

A pseudonym is HMAC(key, worker id). With a key everybody knows (the old built-in default),
hashing ids 1..1,000,000 maps every pseudonym back to its worker in seconds. So unless the
operator sets ``PSEUDONYM_SECRET``, the first export generates 256 random bits and stores them
in the database (table ``instance_secret``): every later export, on any machine that uses the
same database, gets the same pseudonyms, and nobody without database access can reverse them.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from bot.clock import utcnow
from bot.db import Database

PSEUDONYM_KEY = "pseudonym"
PUBLIC_DEFAULT = "crowdpin-pseudonym"  # the built-in key of earlier versions: never use it


class InstanceSecret(SQLModel, table=True):
    """Secrets this installation generated for itself (never shown, never exported)."""

    __tablename__ = "instance_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utcnow)


class WeakSecret(ValueError):
    """PSEUDONYM_SECRET is the public default of earlier versions or too short to be a secret."""


def stored(session: Session, name: str = PSEUDONYM_KEY) -> str | None:
    row = session.get(InstanceSecret, name)
    return row.value if row is not None else None


def pseudonym_secret(db: Database, configured: str | None = None) -> str:
    """``configured`` (PSEUDONYM_SECRET) when set; else the stored key, made on first use.

    Two processes making the key at once agree: the second insert fails on the primary key and
    reads the first one's value.
    """
    if configured:
        if configured == PUBLIC_DEFAULT or len(configured) < 8:
            raise WeakSecret("PSEUDONYM_SECRET is public or shorter than 8 characters: set a long random value, or unset it")
        return configured
    with db.read_session() as session:
        value = stored(session)
    if value is not None:
        return value
    try:
        with db.session() as session:
            session.add(InstanceSecret(name=PSEUDONYM_KEY, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # someone else made it first
    with db.read_session() as session:
        value = stored(session)
    assert value is not None
    return value
