"""admin lifecycle: client secret rotation, stored webhook secrets

A client secret rotation keeps the previous secret's hash until ``previous_secret_valid_until``
(an overlap window, like API keys). A tenant's webhook secret becomes a stored value sealed
under the master key (table ``webhook_secrets``), with its own rotation overlap; tenants
created before this revision have no row and keep the secret derived from the master key until
they reveal or rotate it. Tenants may now be ``archived`` (a status value: no schema change).

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_valid_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("secret_rotated_at", sa.Float(), nullable=True))
    op.create_table(
        "webhook_secrets",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("revealed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("previous_sealed", sa.Text(), nullable=True),
        sa.Column("previous_valid_until", sa.Float(), nullable=True),
        sa.Column("rotated_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_webhook_secrets")),
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name in ("secret_rotated_at", "previous_secret_valid_until",
                     "previous_secret_hash"):
            batch_op.drop_column(name)
