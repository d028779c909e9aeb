"""resource servers: a tenant's protected resources (RFC 8707 identifiers, RFC 9728 metadata)

Revision ID: 0012
Revises: 0010
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_servers",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(512), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("default_scopes", sa.JSON(), nullable=False),
        sa.Column("allowed_clients", sa.JSON(), nullable=False),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("require_dpop", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("require_mtls", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_resource_servers")),
    )
    op.create_index("uq_resource_servers_identifier", "resource_servers",
                    ["tenant_id", "identifier"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_resource_servers_identifier", table_name="resource_servers")
    op.drop_table("resource_servers")
