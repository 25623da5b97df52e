"""typed reasons, cancellations, pass outcomes, delivered alerts, workers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False, server_default="")


def _str(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False, server_default="")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(_text("hold_detail"))
        batch.add_column(_ts("released_at"))
        batch.add_column(_text("cancel_reason"))
    # Orders an operator released were marked with hold_kind "operator_release": the time of release now says it.
    op.execute("UPDATE orders SET released_at = updated_at, hold_kind = '' WHERE hold_kind = 'operator_release'")
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(_ts("failing_since"))
    with op.batch_alter_table("service_runs") as batch:
        batch.add_column(_str("last_outcome"))
        batch.add_column(_str("stopped_because"))
        batch.add_column(_ts("resumes_at"))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(_ts("delivered_at"))
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("seen_at", nullable=False),
        _str("config_path"),
        _ts("config_mtime"),
        _ts("config_loaded_at"),
        _str("database"),
        _str("listen"),
        _str("version"),
        _text("merchants"),
        sa.Column("stopped", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("worker_id"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("delivered_at")
    with op.batch_alter_table("service_runs") as batch:
        batch.drop_column("resumes_at")
        batch.drop_column("stopped_because")
        batch.drop_column("last_outcome")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("failing_since")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("released_at")
        batch.drop_column("hold_detail")
