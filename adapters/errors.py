"""OAuth 2.0 error types (RFC 6749 §5.2, RFC 6750 §3.1, RFC 9449 §7.1, RFC 8693 §2.2.2,
RFC 9396 §5).

Every layer raises these; one renderer at the HTTP edge (``broker.errors``) turns them
into a response. Each class carries its wire code and HTTP status::

    OAuthError
    ├── InvalidRequest               invalid_request                400
    ├── InvalidClient                invalid_client                 401
    ├── InvalidGrant                 invalid_grant                  400
    ├── UnauthorizedClient           unauthorized_client            400
    ├── UnsupportedGrantType         unsupported_grant_type         400
    ├── UnsupportedTokenType         unsupported_token_type         400
    ├── InvalidScope                 invalid_scope                  400
    ├── InvalidTarget                invalid_target                 400
    ├── InvalidAuthorizationDetails  invalid_authorization_details  400
    ├── InvalidDPoPProof             invalid_dpop_proof             400 (401 at a resource server)
    ├── UseDPoPNonce                 use_dpop_nonce                 400 (401 at a resource server)
    ├── InvalidToken                 invalid_token                  401
    ├── InsufficientScope            insufficient_scope             403
    ├── AccessDenied                 access_denied                  403
    ├── NotFound                     not_found                      404
    ├── Conflict                     conflict                       409
    └── ServerError                  server_error                   500
"""

from __future__ import annotations

from typing import ClassVar


class OAuthError(Exception):
    """An OAuth error with its wire code, HTTP status and a human description."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, description: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"
    status = 400


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    status = 400


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    status = 400


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    status = 400


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"
    status = 400


class InvalidScope(OAuthError):
    error = "invalid_scope"
    status = 400


class InvalidTarget(OAuthError):
    error = "invalid_target"
    status = 400


class InvalidAuthorizationDetails(OAuthError):
    """RFC 9396 §5: ``authorization_details`` malformed, of an unknown or unallowed type,
    not valid against its type's schema, or broader than the grant."""

    error = "invalid_authorization_details"
    status = 400


class InvalidDPoPProof(OAuthError):
    error = "invalid_dpop_proof"
    status = 400


class UseDPoPNonce(OAuthError):
    error = "use_dpop_nonce"
    status = 400


class InvalidToken(OAuthError):
    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class NotFound(OAuthError):
    error = "not_found"
    status = 404


class Conflict(OAuthError):
    """The state does not allow it now (a rotation too early, a concurrent change): try again
    later. Not an OAuth wire code; only the admin API answers it."""

    error = "conflict"
    status = 409


class ServerError(OAuthError):
    error = "server_error"
    status = 500


# Authorization endpoint errors (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6, RFC 9126 §4)
class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"
    status = 400


class InvalidRequestURI(OAuthError):
    error = "invalid_request_uri"
    status = 400


class RequestNotSupported(OAuthError):
    error = "request_not_supported"
    status = 400


class LoginRequired(OAuthError):
    error = "login_required"
    status = 400


class ConsentRequired(OAuthError):
    error = "consent_required"
    status = 400
