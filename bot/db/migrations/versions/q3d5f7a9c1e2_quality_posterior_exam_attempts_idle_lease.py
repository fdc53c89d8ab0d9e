"""quality: posterior accuracy rule, exam attempts, idle leases, stuck-task window

Revision ID: q3d5f7a9c1e2
Revises: d21b0c5a9e37
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "q3d5f7a9c1e2"
down_revision: str | None = "d21b0c5a9e37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exam_max_attempts", sa.Integer(), nullable=False, server_default="3"))
        batch_op.add_column(sa.Column("block_confidence", sa.Float(), nullable=True, server_default="0.95"))
        batch_op.add_column(sa.Column("block_margin", sa.Float(), nullable=False, server_default="0.05"))
        batch_op.add_column(sa.Column("idle_lease_seconds", sa.Integer(), nullable=False, server_default="120"))
        batch_op.add_column(sa.Column("stuck_after_seconds", sa.Integer(), nullable=False, server_default="1800"))
    with op.batch_alter_table("workerproject", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exam_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("workerproject", schema=None) as batch_op:
        batch_op.drop_column("exam_attempts")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("stuck_after_seconds")
        batch_op.drop_column("idle_lease_seconds")
        batch_op.drop_column("block_margin")
        batch_op.drop_column("block_confidence")
        batch_op.drop_column("exam_max_attempts")
