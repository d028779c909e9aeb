"""Token exchange (RFC 8693) for translation: placeholder until its module lands."""

from __future__ import annotations

from adapters.errors import InvalidRequest
from broker.grants.base import GrantResult, TokenRequest


async def issue(request: TokenRequest) -> GrantResult:
    raise InvalidRequest("this token type is not supported yet")
