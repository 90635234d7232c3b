"""arm protocol: the task's data protocol each arm of a search follows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Hand-written to match `ArmRow.protocol` in `seqarena/platform/schema.py`: the name of the task's data
protocol (`seqarena.tasks.protocols`) whose options the arm's trials ran with. Arms recorded before
this revision hold NULL: their search predates the protocols (they ran with their spec's task_options).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("arms", sa.Column("protocol", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("arms") as batch:
        batch.drop_column("protocol")
