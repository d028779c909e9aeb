"""partner self-registration: federation keys of partners, invitations, registry settings

A partner registered from its OpenID Federation Entity Configuration keeps its federation keys
(``partners.federation_jwks``, distinct from its token keys) and when they were last refreshed.
Registry admins issue one-use invitation codes (stored as SHA-256, table
``registry_invitations``) and set where they are notified (``registry_settings``, one row).

Revision ID: 0014
Revises: 0010
Create Date: 2027-02-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("federation_jwks", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("keys_refreshed_at", sa.Float(), nullable=True))
    op.create_table(
        "registry_invitations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(512), nullable=True),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_invitations")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_registry_invitations_code_hash")),
    )
    op.create_table(
        "registry_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_settings")),
    )


def downgrade() -> None:
    op.drop_table("registry_settings")
    op.drop_table("registry_invitations")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("keys_refreshed_at")
        batch_op.drop_column("federation_jwks")
