"""task.prediction_json: the model prediction a task validates (confirm-box: the box), its score and source record

Revision ID: d21b0c5a9e37
Revises: s18e4a2b6c90
Create Date: 2026-12-07 00:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d21b0c5a9e37"
down_revision: str | None = "s18e4a2b6c90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prediction_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("prediction_json")
