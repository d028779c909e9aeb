"""What every grant receives and returns; grants register by ``grant_type``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from adapters.dpop import DPoPProof
from broker.client_auth import AuthenticatedClient
from broker.forms import Form
from broker.runtime import Broker, TenantView
from broker.tokens import IssuedToken
from tenants.journal import Claim


@dataclass(frozen=True)
class TokenRequest:
    broker: Broker
    tenant: TenantView
    client: AuthenticatedClient
    form: Form
    dpop: DPoPProof | None
    now: float
    cert_thumbprint: str | None = None  # RFC 8705 §3: bind the access token to this x5t#S256
    presented_x5t: str | None = None  # x5t#S256 of the TLS client certificate, if any came


@dataclass(frozen=True)
class GrantResult:
    access_token: IssuedToken
    scope: tuple[str, ...]
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    action: str = "token.issued"  # the audit event's action
    issued_token_type: str | None = None  # RFC 8693 responses
    token_type: str | None = None  # overrides DPoP/Bearer (``N_A`` for an ID-JAG)
    report_scope: bool = True  # put ``scope`` in the response
    claims: tuple[Claim, ...] = ()  # one-time values the grant consumes (an ID-JAG's jti)
    extra: dict[str, Any] = field(default_factory=dict)  # id_token, refresh_token, ...


class Grant(Protocol):
    grant_type: ClassVar[str]
    # a grant that consumes stored state (a code, a refresh token) decides on a fresh read of
    # the directory: it cannot be decided twice
    stateful: ClassVar[bool]
    public: ClassVar[bool]  # public clients (auth method none) may use it

    async def issue(self, request: TokenRequest) -> GrantResult: ...
