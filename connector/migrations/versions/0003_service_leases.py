"""service leases: which replica runs a merchant's service

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
