"""jobs: the queue of submitted specs and their lifecycle

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26

Hand-written to match `Job` in `seqarena/platform/schema.py`; constraint and index names follow its
NAMING_CONVENTION. The states and their transitions are written down in `seqarena/platform/jobs.py`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

JOB_STATES = "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec_yaml", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("search_id", sa.String(32), nullable=True),
        sa.Column("mlflow_parent_run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], name=op.f("fk_jobs_search_id_searches"),
                                ondelete="SET NULL"),
        sa.CheckConstraint(JOB_STATES, name=op.f("ck_jobs_state")),
    )
    op.create_index(op.f("ix_jobs_state_priority_created_at"), "jobs", ["state", "priority", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_state_priority_created_at"), table_name="jobs")
    op.drop_table("jobs")
