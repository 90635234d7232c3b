"""results: searches, their arms and one row per finished trial

Revision ID: 0001
Revises:
Create Date: 2025-11-25

Hand-written to match `seqarena/platform/schema.py`; constraint and index names follow its
NAMING_CONVENTION. A later revision adds the `jobs` table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

SEARCH_STATUSES = "status IN ('running', 'succeeded', 'failed', 'interrupted')"
TRIAL_ROLES = "role IN ('search', 'repeat')"
TRIAL_STATUSES = "status IN ('completed', 'stopped', 'diverged', 'oom', 'failed')"


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec_yaml", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mlflow_experiment_id", sa.String(64), nullable=False),
        sa.Column("mlflow_parent_run_id", sa.String(64), nullable=True),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_searches")),
        sa.CheckConstraint(SEARCH_STATUSES, name=op.f("ck_searches_status")),
    )
    op.create_index(op.f("ix_searches_name_created_at"), "searches", ["name", "created_at"])

    op.create_table(
        "arms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("search_id", sa.String(32), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("seq_len", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("metric_name", sa.String(64), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arms")),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], name=op.f("fk_arms_search_id_searches"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("search_id", "key", name=op.f("uq_arms_search_id_key")),
    )

    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("search_id", sa.String(32), nullable=False),
        sa.Column("arm_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("hparams", sa.JSON(), nullable=False),
        sa.Column("config_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metric", sa.Float(), nullable=True),
        sa.Column("best_val_metric", sa.Float(), nullable=True),
        sa.Column("test_metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.Integer(), nullable=True),
        sa.Column("train_seq_per_s", sa.Float(), nullable=True),
        sa.Column("infer_seq_per_s", sa.Float(), nullable=True),
        sa.Column("peak_mem_mb", sa.Float(), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], name=op.f("fk_trials_search_id_searches"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["arm_id"], ["arms.id"], name=op.f("fk_trials_arm_id_arms"), ondelete="CASCADE"),
        sa.UniqueConstraint("search_id", "trial_id", name=op.f("uq_trials_search_id_trial_id")),
        sa.CheckConstraint(TRIAL_ROLES, name=op.f("ck_trials_role")),
        sa.CheckConstraint(TRIAL_STATUSES, name=op.f("ck_trials_status")),
    )
    op.create_index(op.f("ix_trials_arm_id_metric"), "trials", ["arm_id", "metric"])
    op.create_index(op.f("ix_trials_arm_id_config_key"), "trials", ["arm_id", "config_key"])


def downgrade() -> None:
    op.drop_table("trials")
    op.drop_table("arms")
    op.drop_index(op.f("ix_searches_name_created_at"), table_name="searches")
    op.drop_table("searches")
