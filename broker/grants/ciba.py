"""The CIBA grant (OpenID CIBA Core 1.0 §10): ``grant_type=urn:openid:params:grant-type:ciba``
with the ``auth_req_id`` that /bc-authorize (or a managed connection's approval step) gave out.

Answers, in this order: unknown id or another client's -> ``invalid_grant``; push mode (the
tokens go to the notification endpoint) -> ``invalid_grant``; expired -> ``expired_token``;
denied -> ``access_denied``; still pending -> ``slow_down`` when polled sooner than
``interval`` after the previous poll (the interval then grows by 5 s), else
``authorization_pending``; already redeemed -> ``invalid_grant``. An approved request is
redeemed once: the user's access, ID and refresh tokens (``kind`` ciba), or the ID-JAG a
managed connection held back for approval (``kind`` id_jag).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from adapters.errors import InvalidGrant, OAuthError
from broker import id_jag
from broker.client_auth import AuthenticatedClient
from broker.forms import Form
from broker.grants.authorization_code import issue_user_tokens
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience
from broker.runtime import Broker, ClientView, TenantView
from broker.tokens import token_hash
from tenants import ciba, grants
from tenants.models import CibaRequest, Grant, User
from tenants.scope import TenantScope, tenant_scope

CIBA_GRANT: Final = "urn:openid:params:grant-type:ciba"
AUTH_REQ_ID_CLAIM: Final = "urn:openid:params:jwt:claim:auth_req_id"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"
    status = 400


class SlowDown(OAuthError):
    error = "slow_down"
    status = 400


class ExpiredToken(OAuthError):
    error = "expired_token"
    status = 400


class Denied(OAuthError):
    """``access_denied`` at the token endpoint (400, CIBA §11), not the 403 of /bc-authorize."""

    error = "access_denied"
    status = 400


class ApprovalPending(OAuthError):
    """The token exchange's answer when a managed connection's ``approve`` scopes were asked:
    ``authorization_pending`` with the CIBA acknowledgement (``auth_req_id``, ``expires_in``,
    ``interval``); the agent polls the CIBA grant with that ``auth_req_id``."""

    error = "authorization_pending"
    status = 400

    def __init__(self, auth_req_id: str, expires_in: int, interval: int) -> None:
        super().__init__("a named approver must approve the requested scopes; poll with "
                         f"grant_type={CIBA_GRANT} and this auth_req_id")
        self.ack = {"auth_req_id": auth_req_id, "expires_in": expires_in, "interval": interval}

    def body(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().body(), **self.ack}


def _failure(row: CibaRequest | None, client_id: str, now: float) -> OAuthError | None:
    """Why ``row`` cannot be redeemed now (records the poll); None when it is approved."""
    if row is None or row.client_id != client_id:
        return InvalidGrant("unknown, expired or foreign auth_req_id")
    if row.delivery_mode == "push":
        return InvalidGrant("push mode: the tokens are delivered to the notification endpoint")
    status = ciba.effective_status(row, now)
    if status == "expired":
        return ExpiredToken("the authentication request expired")
    if status == "denied":
        return Denied("the user denied the request")
    if status == "redeemed":
        return InvalidGrant("the auth_req_id was already redeemed")
    if status == "pending":
        if not ciba.polled(row, now):
            return SlowDown(f"poll at most every {row.interval} seconds")
        return AuthorizationPending("the user has not decided yet")
    return None


async def start_user_grant(scope: TenantScope, row: CibaRequest, client: ClientView,
                           tenant: TenantView, now: float,
                           ) -> tuple[Grant, User, str] | OAuthError:
    """The grant and refresh token of an approved ``kind`` ciba request."""
    user = await scope.get(User, row.user_id)
    if user is None or user.status != "active":
        return InvalidGrant("the user is no longer active")
    audience = granted_audience([], client.audiences, tenant.issuer)
    grant = await grants.create(
        scope, client_id=client.client_id, user_id=user.id, scope_=list(row.scope),
        details=list(row.authorization_details), audience=list(audience),
        auth={"amr": ["ciba"], "auth_time": int(row.decided_at or now)}, session_id=None,
        now=now, lifetime=tenant.settings.refresh_token_lifetime)
    refresh = await grants.add_refresh_token(scope, grant, jkt=None, now=now)
    return grant, user, refresh


async def user_tokens(request: TokenRequest, row: CibaRequest, grant: Grant, user: User,
                      refresh: str, auth_req_id: str | None = None) -> GrantResult:
    """The token response; with ``auth_req_id`` (push mode) the ID token carries it and the
    ``rt_hash`` of the refresh token (CIBA §10.3.1)."""
    id_claims = ({AUTH_REQ_ID_CLAIM: auth_req_id, "rt_hash": token_hash(refresh)}
                 if auth_req_id else None)
    result = await issue_user_tokens(
        request, grant, user, scope=tuple(row.scope), details=list(row.authorization_details),
        refresh_token=refresh, id_claims=id_claims)
    result.detail["auth_req"] = row.handle[:16]
    return result


async def push_request(broker: Broker, tenant: TenantView, client: ClientView,
                       now: float) -> TokenRequest:
    """What ``issue_user_tokens`` needs when no client is calling (push mode)."""
    return TokenRequest(broker, tenant, AuthenticatedClient(client, "push"), Form([]), None, now)


class CibaGrant:
    grant_type: ClassVar[str] = CIBA_GRANT
    stateful: ClassVar[bool] = True
    public: ClassVar[bool] = False

    async def issue(self, request: TokenRequest) -> GrantResult:
        broker, tenant, client = request.broker, request.tenant, request.client.client
        auth_req_id = request.form.require("auth_req_id")
        failure: OAuthError | None = None
        made: tuple[Grant, User, str] | None = None
        async with tenant_scope(broker.sessions, tenant.id) as scope:
            row = await ciba.get(scope, auth_req_id)
            failure = _failure(row, client.client_id, request.now)
            if failure is None:
                assert row is not None
                if not await ciba.redeem(scope, row):
                    failure = InvalidGrant("the auth_req_id was already redeemed")
                elif row.context.get("kind") != "id_jag":
                    started = await start_user_grant(scope, row, client, tenant, request.now)
                    if isinstance(started, OAuthError):
                        failure = started
                    else:
                        made = started
        if failure is not None:
            raise failure
        assert row is not None
        if made is None:
            return await _id_jag(request, row)
        return await user_tokens(request, row, *made)


async def _id_jag(request: TokenRequest, row: CibaRequest) -> GrantResult:
    """The ID-JAG the token exchange held back until the approver said yes."""
    ctx = row.context
    token = await id_jag.mint_id_jag(
        request.broker, request.tenant, identity=dict(ctx["identity"]),
        audience=ctx["audience"], remote_client_id=ctx["remote_client_id"],
        scope=tuple(ctx["scope"]), lifetime=int(ctx["lifetime"]), now=request.now,
        resource=ctx.get("resource"), jkt=ctx.get("jkt"),
        authorization_details=list(row.authorization_details))
    return GrantResult(
        token, tuple(ctx["scope"]), str(ctx["identity"]["sub"]),
        {"audience": ctx["audience"], "resource": ctx.get("resource"), "jti": token.jti,
         "approved_by": row.decided_by, "auth_req": row.handle[:16]},
        action="id_jag.issued", issued_token_type=id_jag.ID_JAG, token_type="N_A",
        report_scope=True)
