"""What every grant receives and returns; grants register by ``grant_type``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from adapters.dpop import DPoPProof
from broker.client_auth import AuthenticatedClient
from broker.forms import Form
from broker.runtime import Broker, TenantView
from broker.tokens import IssuedToken


@dataclass(frozen=True)
class TokenRequest:
    broker: Broker
    tenant: TenantView
    client: AuthenticatedClient
    form: Form
    dpop: DPoPProof | None
    now: float


@dataclass(frozen=True)
class GrantResult:
    access_token: IssuedToken
    scope: tuple[str, ...]
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)


class Grant(Protocol):
    grant_type: ClassVar[str]

    async def issue(self, request: TokenRequest) -> GrantResult: ...
