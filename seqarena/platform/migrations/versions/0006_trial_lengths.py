"""trial lengths: each trained trial tested at other lengths T′ (length generalisation)

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-04

Hand-written to match `TrialLength` in `seqarena/platform/schema.py`: one row per (trial, T′) of a search
whose spec names `length_generalisation`, deleted with its trial (a rerun of a failed cell replaces both).
It follows 0008 (trial facts), which landed first; the chain is 0004, 0007, 0005, 0008, 0006.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

LENGTH_STATUSES = "status IN ('completed', 'diverged', 'oom', 'failed')"


def upgrade() -> None:
    op.create_table(
        "trial_lengths",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_row_id", sa.Integer(), nullable=False),
        sa.Column("seq_len", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metric", sa.Float(), nullable=True),
        sa.Column("test_metrics", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_lengths")),
        sa.ForeignKeyConstraint(["trial_row_id"], ["trials.id"], name=op.f("fk_trial_lengths_trial_row_id_trials"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("trial_row_id", "seq_len", name=op.f("uq_trial_lengths_trial_row_id_seq_len")),
        sa.CheckConstraint(LENGTH_STATUSES, name=op.f("ck_trial_lengths_status")),
    )


def downgrade() -> None:
    op.drop_table("trial_lengths")
