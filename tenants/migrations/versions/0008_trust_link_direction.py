"""trust link direction

Trust links get a direction: ``accept`` (the tenant redeems what the peer issues) and ``send``
(the tenant issues ID-JAGs to the peer). Before this revision one link meant both. Existing
links keep ``accept`` (what the README promised: "a tenant trusts a partner") and get ``send``
only where the tenant has a managed connection whose audience is the link's issuer (the only
way a link was ever used to send). Operators review them with ``tessera trust list``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trust_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accept", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column("send", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute(
        "UPDATE trust_links SET send = TRUE WHERE EXISTS (SELECT 1 FROM managed_connections m "
        "WHERE m.tenant_id = trust_links.tenant_id AND m.audience = trust_links.issuer)"
    )


def downgrade() -> None:
    with op.batch_alter_table("trust_links", schema=None) as batch_op:
        batch_op.drop_column("send")
        batch_op.drop_column("accept")
