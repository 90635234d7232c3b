"""arm skipped: why a T-ladder never ran an arm

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-04

Hand-written to match `ArmRow.skipped` in `seqarena/platform/schema.py`: for an arm of a T-ladder search
(`search.ladder`) that was never reached, the reason (the arm at the smaller T that did not solve);
NULL for every arm that ran, and for arms recorded before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("arms", sa.Column("skipped", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("arms") as batch:
        batch.drop_column("skipped")
