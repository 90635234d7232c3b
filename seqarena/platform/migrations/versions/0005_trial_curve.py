"""trial curve: the learning curve of each trial, kept with its row

Revision ID: 0005
Revises: 0007
Create Date: 2026-12-04

Hand-written to match `Trial.curve` in `seqarena/platform/schema.py`: one point per evaluation (step,
train_loss and every val_<metric>), as `TrialResult.curve` holds it, so that the steps a seed took to
solve its task (`seqarena.platform.solving`) are read from the database alone. Trials recorded before
this revision hold NULL (their curves are in MLflow only). It follows 0007 (arm skipped), which landed
first; the numbers are names, the chain is 0004, 0007, 0005.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("curve", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("curve")
