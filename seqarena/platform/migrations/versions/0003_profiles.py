"""profiles: `seqarena profile` runs and one row per (model, seq_len) of each

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-27

Hand-written to match `ProfileRun` and `ProfileResult` in `seqarena/platform/schema.py`; constraint
and index names follow its NAMING_CONVENTION.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

PROFILE_STATUSES = "status IN ('ok', 'oom', 'skipped')"


def upgrade() -> None:
    op.create_table(
        "profile_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("torch_version", sa.String(64), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("out_dir", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_runs")),
    )
    op.create_index(op.f("ix_profile_runs_created_at"), "profile_runs", ["created_at"])

    op.create_table(
        "profile_rows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("seq_len", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("num_layers", sa.Integer(), nullable=True),
        sa.Column("params", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(32), nullable=True),
        sa.Column("train_step_s", sa.Float(), nullable=True),
        sa.Column("infer_step_s", sa.Float(), nullable=True),
        sa.Column("train_seq_per_s", sa.Float(), nullable=True),
        sa.Column("infer_seq_per_s", sa.Float(), nullable=True),
        sa.Column("peak_mem_mb", sa.Float(), nullable=True),
        sa.Column("peak_mem_method", sa.Text(), nullable=True),
        sa.Column("train_step_s_all", sa.JSON(), nullable=False),
        sa.Column("infer_step_s_all", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_rows")),
        sa.ForeignKeyConstraint(["run_id"], ["profile_runs.id"], name=op.f("fk_profile_rows_run_id_profile_runs"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "model", "seq_len", name=op.f("uq_profile_rows_run_id_model_seq_len")),
        sa.CheckConstraint(PROFILE_STATUSES, name=op.f("ck_profile_rows_status")),
    )


def downgrade() -> None:
    op.drop_table("profile_rows")
    op.drop_index(op.f("ix_profile_runs_created_at"), table_name="profile_runs")
    op.drop_table("profile_runs")
