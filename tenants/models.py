"""Rows. Every tenant-owned row carries ``tenant_id`` (see ``tenants.scope``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tenants.db import Base


class TenantOwned:
    """Mixin for rows that belong to exactly one tenant; filtered by the isolation listener."""

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebhookSecret(TenantOwned, Base):
    """The key of a tenant's Tessera-Signature on webhooks: sealed under the master key, shown
    to the administrator once (``revealed``); after a rotation the previous one also signs
    until ``previous_valid_until``. No row: the secret derived from the master key (tenants
    from before secrets were stored)."""

    __tablename__ = "webhook_secrets"

    sealed: Mapped[str] = mapped_column(Text)
    revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    previous_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_valid_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Client(TenantOwned, Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    auth_method: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # a rotated-out secret keeps working until ``previous_secret_valid_until`` (overlap)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_valid_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    secret_rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    access_token_lifetime: Mapped[int] = mapped_column(Integer, default=300)
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    # authorization code flow (OpenID Provider role)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_party: Mapped[bool] = mapped_column(Boolean, default=True)  # third-party: consent
    require_par: Mapped[bool] = mapped_column(Boolean, default=False)
    authorization_details_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # RFC 8705 mutual TLS: what the client's certificate must show (tls_client_auth), and
    # certificate-bound access tokens (cnf.x5t#S256)
    tls_client_auth_subject_dn: Mapped[str | None] = mapped_column(String(512), nullable=True)
    tls_client_auth_san_uri: Mapped[str | None] = mapped_column(String(512), nullable=True)
    tls_client_auth_san_dns: Mapped[str | None] = mapped_column(String(255), nullable=True)
    tls_client_certificate_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, default=False)
    # agents: who owns it, what for, and (ephemeral agents) when it stops working; the
    # lifecycle state is ``status``: active | suspended | retired (| disabled)
    owner: Mapped[str | None] = mapped_column(String(320), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(500), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # CIBA (OpenID CIBA Core §4): poll | ping | push, and where ping/push notifications go
    backchannel_token_delivery_mode: Mapped[str | None] = mapped_column(String(8), nullable=True)
    backchannel_client_notification_endpoint: Mapped[str | None] = mapped_column(
        String(1024), nullable=True)


class SigningKey(TenantOwned, Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # next | active | retiring | retired
    backend: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retiring_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retire_after: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditHead(TenantOwned, Base):
    """The head of a tenant's audit chain: locked by an UPDATE while events are appended."""

    __tablename__ = "audit_heads"

    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(TenantOwned, Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(256), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ReplayRecord(TenantOwned, Base):
    """One-time values (DPoP proof jti, client assertion jti), stored as hashes until expiry."""

    __tablename__ = "replay_records"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class RevokedToken(TenantOwned, Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float] = mapped_column(Float)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


Index("ix_revoked_tokens_expires_at", RevokedToken.expires_at)


class Partner(Base):
    """An organisation registered in the trust registry (registry-wide, not tenant-owned)."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(512), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(320), default="")
    jwks_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # registered from its OpenID Federation Entity Configuration: its federation keys (they
    # sign its statements and requests; ``jwks``/``jwks_uri`` above are its token keys)
    federation_jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    keys_refreshed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RegistryInvitation(Base):
    """A one-use invitation code a registry admin issued for a partner to register with;
    only the code's SHA-256 is kept."""

    __tablename__ = "registry_invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entity_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RegistrySetting(Base):
    """Registry-wide settings (one row, id 1): where registry admins are notified."""

    __tablename__ = "registry_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class TrustLink(TenantOwned, Base):
    """Tenant T's trust in the peer ``issuer`` (a partner, or another tenant of this broker),
    with a direction: ``accept`` (T redeems ID-JAGs and assertions the peer issued, within
    ``scope_ceiling``) and ``send`` (T issues ID-JAGs whose audience is the peer). Separate
    permissions: neither implies the other."""

    __tablename__ = "trust_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(512), index=True)
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    peer_tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope_ceiling: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    accept: Mapped[bool] = mapped_column(Boolean, default=False)
    send: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class ManagedConnectionRow(TenantOwned, Base):
    """Scope rules for (tenant, client, audience): grant / approve / deny per scope."""

    __tablename__ = "managed_connections"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    audience: Mapped[str] = mapped_column(String(512), primary_key=True)
    rules: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_rule: Mapped[str] = mapped_column(String(16), default="deny")
    resources: Mapped[list[str]] = mapped_column(JSON, default=list)
    remote_client_id: Mapped[str] = mapped_column(String(256))
    max_lifetime: Mapped[int] = mapped_column(Integer, default=300)
    created_at: Mapped[float] = mapped_column(Float)
    # who approves this connection's ``approve`` scopes: None (the user themself) or
    # ``group:<name>`` (any active user of the tenant in that group)
    approver: Mapped[str | None] = mapped_column(String(256), nullable=True)


class DirectoryEpoch(TenantOwned, Base):
    """A counter bumped by every change to a tenant or its clients: processes cache what they
    read of the directory and check the epoch in the transaction that records a decision."""

    __tablename__ = "directory_epochs"

    epoch: Mapped[int] = mapped_column(BigInteger, default=0)


class Upstream(TenantOwned, Base):
    """An enterprise IdP federated into a tenant: ``kind`` oidc or saml. ``config`` holds the
    protocol settings (an OIDC client secret sealed with the master key), ``mapping`` which
    upstream claim or attribute becomes which tenant claim, ``domains`` the e-mail domains
    that home-realm discovery sends here."""

    __tablename__ = "upstreams"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    display_name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float)


class User(TenantOwned, Base):
    """A tenant's user, created just in time at the first login through an upstream."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the ``sub`` we issue
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    claims: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float)
    last_login_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class FederatedIdentity(TenantOwned, Base):
    """(upstream, the upstream's subject) -> the tenant user it logs in as."""

    __tablename__ = "federated_identities"

    upstream: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(512), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(Float)


class PendingRequest(TenantOwned, Base):
    """Short-lived handles, stored as hashes: pushed authorization requests, authorization
    requests waiting for a login or consent, upstream login states, outstanding SAML
    AuthnRequests and authorization codes. Taking one is an atomic UPDATE of ``consumed_at``;
    a consumed code is kept until expiry so that a second use can be detected."""

    __tablename__ = "pending_requests"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    consumed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Grant(TenantOwned, Base):
    """What a user authorized a client to do (from an authorization code); refresh tokens and
    the access tokens they bring belong to one grant and are revoked with it."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    authorization_details: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    audience: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # auth_time, acr, amr
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class RefreshToken(TenantOwned, Base):
    __tablename__ = "refresh_tokens"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash of the token
    grant_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)  # DPoP binding
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | rotated
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class LoginSession(TenantOwned, Base):
    """A browser's session at a tenant after an upstream login (cookie value stored hashed)."""

    __tablename__ = "login_sessions"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)  # public id (ID token ``sid``)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    upstream: Mapped[str] = mapped_column(String(64))
    auth: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # auth_time, acr, amr
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class DetailType(TenantOwned, Base):
    """An RFC 9396 ``authorization_details`` type registered by a tenant, with its schema."""

    __tablename__ = "authorization_detail_types"

    type: Mapped[str] = mapped_column(String(128), primary_key=True)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[float] = mapped_column(Float)


class ApiKey(TenantOwned, Base):
    """A tenant-issued API key for an agent or service (the client it acts as). The secret
    part is stored as a keyed hash; a rotation keeps the previous secret valid for an
    overlap window."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # public, in the prefix
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_hash: Mapped[str] = mapped_column(String(128))
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_valid_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LegacyApp(TenantOwned, Base):
    """A SAML service provider registered in a tenant: receives tessera's signed assertions
    (token exchange output and SP-initiated SSO)."""

    __tablename__ = "legacy_apps"

    entity_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    acs_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    name_id_format: Mapped[str] = mapped_column(String(32), default="persistent")
    attribute_mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    want_authn_requests_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    sp_certs: Mapped[list[str]] = mapped_column(JSON, default=list)  # PEM, to verify requests
    assertion_lifetime: Mapped[int] = mapped_column(Integer, default=300)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[float] = mapped_column(Float)


class CibaRequest(TenantOwned, Base):
    """A backchannel authentication request (CIBA) waiting for, or decided by, its approver.
    Also the human-approval step of a managed connection's ``approve`` scopes."""

    __tablename__ = "ciba_requests"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash of auth_req_id
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)  # whose consent is asked
    approver: Mapped[str | None] = mapped_column(String(256), nullable=True)  # user or group:x
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    authorization_details: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    binding_message: Mapped[str | None] = mapped_column(String(256), nullable=True)
    delivery_mode: Mapped[str] = mapped_column(String(8), default="poll")
    notification_token_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what else it carries
    status: Mapped[str] = mapped_column(String(16), default="pending")
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_polled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class RevocationCutoff(TenantOwned, Base):
    """Every token of ``kind`` (client | user | partner | tenant) ``subject`` issued before
    ``not_before`` is revoked: one row revokes a whole population at once."""

    __tablename__ = "revocation_cutoffs"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(512), primary_key=True)
    not_before: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class DeploymentFact(Base):
    """Deployment-wide facts, not tenant-owned (``tenants.deployment``): the master key's
    check values, ``master_key_check:<id>`` -> ``v1:<hex>``."""

    __tablename__ = "deployment"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Float)


class ResourceServerRow(TenantOwned, Base):
    """A protected resource (an API, an MCP server) whose tokens this tenant issues: its
    identifier (RFC 8707 / RFC 9728 ``resource``), the scopes it defines, which clients may get
    tokens for it (empty: any client of the tenant that names it), the access token lifetime
    ceiling and the sender constraint it requires."""

    __tablename__ = "resource_servers"
    __table_args__ = (Index("uq_resource_servers_identifier", "tenant_id", "identifier",
                            unique=True),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    identifier: Mapped[str] = mapped_column(String(512))
    display_name: Mapped[str] = mapped_column(String(200))
    # scope -> description
    scopes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_clients: Mapped[list[str]] = mapped_column(JSON, default=list)
    access_token_lifetime: Mapped[int] = mapped_column(Integer, default=300)
    require_dpop: Mapped[bool] = mapped_column(Boolean, default=False)
    require_mtls: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class RoleAssignment(TenantOwned, Base):
    """An administrative role of the tenant given to a principal of the tenant: a ``user``
    (by the ``sub`` tessera issues), every user of an upstream ``group``, or a ``client``
    (an admin client using client credentials + DPoP)."""

    __tablename__ = "role_assignments"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # user | group | client
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(400), default="")
