"""answer.box_json: the box a worker drew to fix a wrong predicted box (confirm-box, Mini App)

Revision ID: a4f6c8e0b2d1
Revises: q3d5f7a9c1e2
Create Date: 2026-12-07 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4f6c8e0b2d1"
down_revision: str | None = "q3d5f7a9c1e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("box_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_column("box_json")
