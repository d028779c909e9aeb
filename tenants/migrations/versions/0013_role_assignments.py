"""role assignments: administrative roles of a tenant's users, groups and admin clients

Revision ID: 0013
Revises: 0010
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_assignments",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(400), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "subject", "role",
                                name=op.f("pk_role_assignments")),
    )


def downgrade() -> None:
    op.drop_table("role_assignments")
