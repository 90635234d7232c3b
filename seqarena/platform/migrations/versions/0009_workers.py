"""workers: the seqarena worker processes the job store has seen, idle ones included

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-05

Hand-written to match `WorkerRow` in `seqarena/platform/schema.py`: one row per worker, its `seen_until`
moved on by every claim attempt and heartbeat (the Jobs page says whether any worker is alive, issue 19).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    op.drop_table("workers")
