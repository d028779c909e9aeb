"""A tenant's OAuth clients: register, list, read, change, rotate the secret, disable/enable,
and delete (= retire: final, every token and grant of it revoked, the row kept for audit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.errors import NotFound
from broker.admin.models.clients import (
    ClientCreate,
    ClientOut,
    ClientPatch,
    ClientSecretRotation,
    ClientWithSecret,
)
from broker.admin.services.common import existing_tenant, refused, seconds
from broker.runtime import Broker
from tenants import agents, clients, revocation_cutoffs
from tenants.directory import DirectoryError
from tenants.models import Client
from tenants.scope import TenantScope, scoped, tenant_scope

T = TypeVar("T")


def client_out(client: Client) -> ClientOut:
    return ClientOut(
        tenant=client.tenant_id, client_id=client.client_id, name=client.name,
        status=client.status, token_endpoint_auth_method=client.auth_method,
        scopes=list(client.scopes or []), audiences=list(client.audiences or []),
        jwks=client.jwks, access_token_lifetime=client.access_token_lifetime,
        dpop_bound_access_tokens=bool(client.dpop_bound_access_tokens),
        redirect_uris=list(client.redirect_uris or []),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris or []),
        first_party=client.first_party if client.first_party is not None else True,
        require_pushed_authorization_requests=bool(client.require_par),
        authorization_details_types=list(client.authorization_details_types or []),
        tls_client_auth_subject_dn=client.tls_client_auth_subject_dn,
        tls_client_auth_san_uri=client.tls_client_auth_san_uri,
        tls_client_auth_san_dns=client.tls_client_auth_san_dns,
        tls_client_certificate_bound_access_tokens=bool(
            client.tls_client_certificate_bound_access_tokens),
        backchannel_token_delivery_mode=client.backchannel_token_delivery_mode,
        backchannel_client_notification_endpoint=client.backchannel_client_notification_endpoint,
        owner=client.owner, purpose=client.purpose, expires_at=client.expires_at,
        created_at=int(client.created_at), secret_rotated_at=seconds(client.secret_rotated_at),
        previous_secret_valid_until=seconds(client.previous_secret_valid_until),
    )


def with_secret(client: Client, secret: str | None) -> ClientWithSecret:
    return ClientWithSecret(**client_out(client).model_dump(), client_secret=secret)


def _missing(tenant: str, client_id: str) -> NotFound:
    return NotFound(f"no client {client_id!r} in tenant {tenant!r}")


async def _change(broker: Broker, tenant: str, client_id: str,
                  change: Callable[[TenantScope], Awaitable[T]]) -> T:
    """One change in one unit of work: 404 for a client this tenant does not have, 400 for
    a change its state refuses; this process's directory cache forgets the tenant."""
    await existing_tenant(broker, tenant, change=True)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            result = await change(scope)
    except LookupError as exc:
        raise _missing(tenant, client_id) from exc
    except (DirectoryError, agents.LifecycleError) as exc:
        raise refused(exc) from exc
    broker.forget_directory(tenant)
    return result


async def create_client(broker: Broker, tenant: str, body: ClientCreate) -> ClientWithSecret:
    created = await _change(broker, tenant, body.client_id or "", lambda scope: clients.create(
        scope, name=body.name, hasher_hash=broker.hasher.hash, now=broker.clock.now(),
        client_id=body.client_id, auth_method=body.token_endpoint_auth_method,
        **body.registration()))
    return with_secret(created.client, created.secret)


async def list_clients(broker: Broker, tenant: str) -> list[ClientOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [client_out(c) for c in await clients.list_clients(scoped(session, tenant))]


async def get_client(broker: Broker, tenant: str, client_id: str) -> ClientOut:
    async with broker.sessions() as session:
        client = await scoped(session, tenant).get(Client, client_id)
    if client is None:
        raise _missing(tenant, client_id)
    return client_out(client)


async def update_client(broker: Broker, tenant: str, client_id: str,
                        body: ClientPatch) -> ClientOut:
    return client_out(await _change(broker, tenant, client_id, lambda scope: clients.update(
        scope, client_id, body.changes(), now=broker.clock.now())))


async def rotate_client_secret(broker: Broker, tenant: str, client_id: str,
                               body: ClientSecretRotation) -> ClientWithSecret:
    rotated = await _change(broker, tenant, client_id, lambda scope: clients.rotate_secret(
        scope, client_id, hasher_hash=broker.hasher.hash, now=broker.clock.now(),
        overlap_seconds=body.overlap_seconds))
    return with_secret(rotated.client, rotated.secret)


async def set_client_status(broker: Broker, tenant: str, client_id: str,
                            status: str) -> ClientOut:
    return client_out(await _change(broker, tenant, client_id, lambda scope: clients.set_status(
        scope, client_id, status, broker.clock.now())))


async def delete_client(broker: Broker, tenant: str, client_id: str) -> ClientOut:
    """Retire the client (final) and revoke every token and grant it holds."""

    async def retire(scope: TenantScope) -> Client:
        now = broker.clock.now()
        client = await agents.retire(scope, client_id, now=now, reason="client deleted")
        await revocation_cutoffs.revoke_client(scope, client_id, now=now,
                                               reason="client deleted")
        return client

    return client_out(await _change(broker, tenant, client_id, retire))
