"""order search columns; ledger consumptions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _str(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False, server_default="")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(_str("customer"))
        batch.add_column(_str("email"))
        batch.add_column(_ts("ordered_at"))
        batch.add_column(sa.Column("sent_request", sa.Text(), nullable=False, server_default=""))
        batch.create_index("ix_orders_email", ["email"])
    op.create_table(
        "consumptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        _str("quantity"),
        _str("consumed"),
        _str("source"),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("draws", sa.Text(), nullable=False, server_default=""),
        _str("reason"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _ts("next_attempt_at"),
        _str("lease_owner"),
        _ts("lease_until"),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant", "order_id", "sku", name="uq_consumptions_merchant_order_sku"),
    )
    with op.batch_alter_table("consumptions") as batch:
        batch.create_index("ix_consumptions_due", ["merchant", "state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("consumptions")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_email")
        batch.drop_column("sent_request")
        batch.drop_column("ordered_at")
        batch.drop_column("email")
        batch.drop_column("customer")
