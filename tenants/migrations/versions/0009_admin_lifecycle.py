"""admin lifecycle: client secret rotation, stored webhook secrets

A client secret rotation keeps the previous secret's hash until ``previous_secret_valid_until``
(an overlap window, like API keys). A tenant's webhook secret becomes a stored value sealed
under the master key, with its own rotation overlap; tenants created before this revision have
none stored and keep the secret derived from the master key until they rotate it (the first
rotation, reveal or delivery stores it). Tenants may now be ``archived`` (a status value: no
schema change).

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_valid_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("secret_rotated_at", sa.Float(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_revealed", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("webhook_previous_secret_sealed", sa.Text(),
                                      nullable=True))
        batch_op.add_column(sa.Column("webhook_previous_valid_until", sa.Float(),
                                      nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_rotated_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        for name in ("webhook_secret_rotated_at", "webhook_previous_valid_until",
                     "webhook_previous_secret_sealed", "webhook_secret_revealed",
                     "webhook_secret_sealed"):
            batch_op.drop_column(name)
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name in ("secret_rotated_at", "previous_secret_valid_until",
                     "previous_secret_hash"):
            batch_op.drop_column(name)
