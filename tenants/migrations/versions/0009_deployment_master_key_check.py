"""deployment facts: the master key's check value

A small key/value table of deployment-wide facts. ``master_key_check:<id>`` holds an HMAC of a
fixed constant under a key derived from the master key (never the key), so that every process
proves it holds this deployment's master key before it writes anything. Several rows may exist
(a later master-key rotation holds the old and the new key's values). This revision adds no row:
the first process that proves its key (it initialises the database, or unwraps an existing
signing key) records the value.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment")),
    )


def downgrade() -> None:
    op.drop_table("deployment")
