"""A tenant's webhook: where signed events go, and the signing secret (shown once, rotated
with an overlap in which events carry both signatures; ``tenants.webhook_secrets``)."""

from __future__ import annotations

from collections.abc import Callable

from broker.admin.models.tenants import SecretRotation, WebhookOut, WebhookPut
from broker.admin.services.common import existing_tenant, no_tenant, seconds
from broker.runtime import Broker
from broker.webhooks import derived_secret
from tenants import audit, webhook_secrets
from tenants.directory import bump_epoch
from tenants.models import Tenant, WebhookSecret
from tenants.scope import scoped, tenant_scope
from tenants.settings import TenantSettings


def webhook_out(broker: Broker, tenant: Tenant, row: WebhookSecret | None,
                secret: str | None = None) -> WebhookOut:
    until = row.previous_valid_until if row else None
    return WebhookOut(
        tenant=tenant.id, url=TenantSettings.of(tenant).webhook_url, secret=secret,
        secret_revealed=bool(row and row.revealed),
        rotated_at=seconds(row.rotated_at) if row else None,
        previous_valid_until=seconds(until) if until and until > broker.clock.now() else None)


async def get_webhook(broker: Broker, name: str) -> WebhookOut:
    tenant = await existing_tenant(broker, name)
    async with broker.sessions() as session:
        row = await scoped(session, name).get(WebhookSecret)
    return webhook_out(broker, tenant, row)


Change = Callable[[Tenant, WebhookSecret], tuple[str | None, audit.Event]]


async def _change(broker: Broker, name: str, change: Change) -> WebhookOut:
    await existing_tenant(broker, name, change=True)
    async with tenant_scope(broker.sessions, name) as scope:
        tenant = await scope.session.get(Tenant, name)
        if tenant is None:
            raise no_tenant(name)
        row = await webhook_secrets.adopt(scope, broker.sealer, derived_secret(broker, name))
        secret, event = change(tenant, row)
        await scope.session.flush()
        await bump_epoch(scope.session, name)
        await audit.record(scope.session, name, [event], broker.clock.now())
    broker.forget_directory(name)
    return webhook_out(broker, tenant, row, secret)


async def put_webhook(broker: Broker, name: str, body: WebhookPut) -> WebhookOut:
    """Set (or clear) the URL; the answer shows the secret if it was never shown before."""

    def change(tenant: Tenant, row: WebhookSecret) -> tuple[str | None, audit.Event]:
        settings = TenantSettings.of(tenant).model_copy(update={"webhook_url": body.url})
        tenant.settings = settings.to_dict()
        secret = webhook_secrets.reveal(row, broker.sealer)
        return secret, audit.Event("webhook.set", "changed", detail={
            "url": body.url, "secret_revealed": secret is not None})

    return await _change(broker, name, change)


async def rotate_webhook_secret(broker: Broker, name: str,
                                body: SecretRotation) -> WebhookOut:
    """A new secret (in this answer only); the previous one keeps signing beside it for
    ``overlap_seconds``."""
    now = broker.clock.now()

    def change(_tenant: Tenant, row: WebhookSecret) -> tuple[str | None, audit.Event]:
        secret = webhook_secrets.rotate(row, broker.sealer, now=now,
                                        overlap_seconds=body.overlap_seconds)
        return secret, audit.Event("webhook.secret_rotated", "changed", detail={
            "overlap_seconds": body.overlap_seconds,
            "previous_valid_until": row.previous_valid_until})

    return await _change(broker, name, change)
