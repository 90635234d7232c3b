"""trial facts: where and how each trial ran, and the versions that ran and recorded it

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-04

Hand-written to match `Trial.facts` in `seqarena/platform/schema.py`: the trial's `RunFacts` (device, GPU
name, implementation, torch, CUDA, seqarena version, git commit; `seqarena/workers/placement.py`) and the
versions of ray, optuna and mlflow in the driver that searched and recorded it
(`seqarena.platform.run_record.recorded_facts`), so that a published report (`seqarena report`) names the
device and versions of every number from the database alone. Trials recorded before this revision hold
NULL (their facts are tags of their MLflow runs only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("facts")
