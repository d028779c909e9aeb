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
from tenants.models import Tenant
from tenants.settings import TenantSettings


def webhook_out(broker: Broker, tenant: Tenant, secret: str | None = None) -> WebhookOut:
    until = tenant.webhook_previous_valid_until
    return WebhookOut(
        tenant=tenant.id, url=TenantSettings.of(tenant).webhook_url, secret=secret,
        secret_revealed=bool(tenant.webhook_secret_revealed),
        rotated_at=seconds(tenant.webhook_secret_rotated_at),
        previous_valid_until=seconds(until) if until and until > broker.clock.now() else None)


async def get_webhook(broker: Broker, name: str) -> WebhookOut:
    return webhook_out(broker, await existing_tenant(broker, name))


async def _change(broker: Broker, name: str,
                  change: Callable[[Tenant], tuple[str | None, audit.Event]]) -> WebhookOut:
    await existing_tenant(broker, name, change=True)
    async with broker.sessions() as session, session.begin():
        tenant = await session.get(Tenant, name, with_for_update=True)
        if tenant is None:
            raise no_tenant(name)
        webhook_secrets.adopt(tenant, broker.sealer, derived_secret(broker, name))
        secret, event = change(tenant)
        await bump_epoch(session, name)
        await audit.record(session, name, [event], broker.clock.now())
    broker.forget_directory(name)
    return webhook_out(broker, tenant, secret)


async def put_webhook(broker: Broker, name: str, body: WebhookPut) -> WebhookOut:
    """Set (or clear) the URL; the answer shows the secret if it was never shown before."""

    def change(tenant: Tenant) -> tuple[str | None, audit.Event]:
        settings = TenantSettings.of(tenant).model_copy(update={"webhook_url": body.url})
        tenant.settings = settings.to_dict()
        secret = webhook_secrets.reveal(tenant, broker.sealer)
        return secret, audit.Event("webhook.set", "changed", detail={
            "url": body.url, "secret_revealed": secret is not None})

    return await _change(broker, name, change)


async def rotate_webhook_secret(broker: Broker, name: str,
                                body: SecretRotation) -> WebhookOut:
    """A new secret (in this answer only); the previous one keeps signing beside it for
    ``overlap_seconds``."""
    now = broker.clock.now()

    def change(tenant: Tenant) -> tuple[str | None, audit.Event]:
        secret = webhook_secrets.rotate(tenant, broker.sealer, now=now,
                                        overlap_seconds=body.overlap_seconds)
        return secret, audit.Event("webhook.secret_rotated", "changed", detail={
            "overlap_seconds": body.overlap_seconds,
            "previous_valid_until": tenant.webhook_previous_valid_until})

    return await _change(broker, name, change)
