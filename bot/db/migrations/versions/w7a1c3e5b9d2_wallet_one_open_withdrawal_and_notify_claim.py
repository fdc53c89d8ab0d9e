"""wallet: at most one open withdrawal per worker (partial unique index); notification claim

Revision ID: w7a1c3e5b9d2
Revises: b8c1e5d0a7f2
Create Date: 2026-11-27 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "w7a1c3e5b9d2"
down_revision: str | None = "b8c1e5d0a7f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(
            "uq_withdrawal_one_open",
            ["worker_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.drop_index("uq_withdrawal_one_open")
        batch_op.drop_column("notify_claimed_until")
