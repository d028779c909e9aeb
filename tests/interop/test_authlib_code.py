"""Authlib (Python) as a relying party of tessera's OpenID Provider role: the plain
authorization code flow with PKCE (S256) for a confidential client (client_secret_basic),
against a running ``tessera serve`` whose tenant logs users in at a real upstream IdP
(oidc-provider). The ID token is checked against the tenant's published JWKS with joserfc;
UserInfo takes the Bearer token Authlib attaches; the refresh token rotates."""

from __future__ import annotations

import base64
import hashlib
import secrets
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.peers.oidc_idp import sign_in_at_broker
from tests.server_process import free_port

with warnings.catch_warnings():
    # Recent Authlib prefers the httpx2 package and warns when it falls back to httpx. Its
    # deprecate module installs an "always" filter on import: import it first, then ignore.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

if TYPE_CHECKING:
    from conftest import LoginTenant

pytestmark = pytest.mark.interop

SCOPE = "openid email profile"


def discover(tenant: LoginTenant) -> dict[str, Any]:
    response = httpx.get(f"{tenant.issuer}/.well-known/openid-configuration", timeout=10.0)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert isinstance(metadata, dict)
    assert metadata["issuer"] == tenant.issuer
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    return metadata


def confidential_client(tenant: LoginTenant) -> tuple[dict[str, Any], str]:
    redirect_uri = f"http://127.0.0.1:{free_port()}/cb"  # never requested
    client = tenant.create_client(redirect_uri, token_endpoint_auth_method="client_secret_basic")
    assert client["client_secret"]
    return client, redirect_uri


def oauth_client(client: dict[str, Any], redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client["client_id"], client["client_secret"],
        token_endpoint_auth_method="client_secret_basic", scope=SCOPE,
        redirect_uri=redirect_uri, code_challenge_method="S256", timeout=10.0)


def left_half_hash(value: str, alg: str) -> str:
    """OpenID Connect Core §3.1.3.6 at_hash: the left half of the alg's SHA-2 digest."""
    bits = alg[2:] if alg[2:] in ("256", "384", "512") else "256"
    digest = hashlib.new(f"sha{bits}", value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def verify_id_token(tenant: LoginTenant, metadata: dict[str, Any], id_token: str, *,
                    client_id: str, nonce: str | None, access_token: str) -> dict[str, Any]:
    """Signature against the tenant's JWKS with an advertised algorithm, then iss, aud, azp,
    exp, iat, nonce and at_hash."""
    keys = KeySet.import_key_set(tenant.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(id_token, keys,
                         algorithms=metadata["id_token_signing_alg_values_supported"])
    claims = dict(decoded.claims)
    rules: dict[str, Any] = {
        "iss": {"essential": True, "value": tenant.issuer},
        "aud": {"essential": True, "value": client_id},
        "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True},
    }
    if nonce is not None:
        rules["nonce"] = {"essential": True, "value": nonce}
    jwt.JWTClaimsRegistry(**rules).validate(claims)
    assert claims.get("azp", client_id) == client_id
    assert claims["at_hash"] == left_half_hash(access_token, str(decoded.header["alg"]))
    return claims


async def test_code_flow_with_pkce_for_a_confidential_client(login_tenant: LoginTenant) -> None:
    metadata = discover(login_tenant)
    client, redirect_uri = confidential_client(login_tenant)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    async with oauth_client(client, redirect_uri) as oauth:
        url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
        assert sent["redirect_uri"] == redirect_uri and sent["scope"] == SCOPE

        callback = await sign_in_at_broker(url, login_tenant.idp, "alice")
        assert callback.startswith(redirect_uri + "?"), callback
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        # Authlib checks state itself, not iss: RFC 9207 is the client's to check here
        assert params["iss"] == login_tenant.issuer
        assert params["state"] == state and params["code"]

        token = await oauth.fetch_token(metadata["token_endpoint"], authorization_response=callback,
                                        state=state, code_verifier=verifier)
        assert token["token_type"] == "Bearer"
        assert set(token["scope"].split()) == set(SCOPE.split())
        assert 0 < token["expires_in"] <= 300
        assert token["refresh_token"]
        header, access = login_tenant.verify_access_token(token["access_token"])
        assert header["typ"] == "at+jwt"
        assert "cnf" not in access
        assert access["client_id"] == client["client_id"]

        id_claims = verify_id_token(login_tenant, metadata, token["id_token"],
                                    client_id=client["client_id"], nonce=nonce,
                                    access_token=token["access_token"])
        assert id_claims["sub"] == access["sub"]
        assert id_claims["email"] == "alice@corp.example"

        info = await oauth.get(metadata["userinfo_endpoint"])
        assert info.request.headers["authorization"].startswith("Bearer ")
        assert info.status_code == 200, info.text
        assert {k: info.json().get(k) for k in ("sub", "email", "name")} == {
            "sub": id_claims["sub"], "email": "alice@corp.example", "name": "Alice Liddell"}

        refreshed = await oauth.refresh_token(metadata["token_endpoint"])
        assert refreshed["token_type"] == "Bearer"
        assert refreshed["refresh_token"] != token["refresh_token"]
        again = verify_id_token(login_tenant, metadata, refreshed["id_token"],
                                client_id=client["client_id"], nonce=None,
                                access_token=refreshed["access_token"])
        assert again["sub"] == id_claims["sub"]


async def test_code_redeemed_with_another_verifier_is_refused(
    login_tenant: LoginTenant,
) -> None:
    """PKCE (RFC 7636): the code goes only to who holds the verifier of its challenge."""
    metadata = discover(login_tenant)
    client, redirect_uri = confidential_client(login_tenant)
    verifier = secrets.token_urlsafe(48)
    async with oauth_client(client, redirect_uri) as oauth:
        url, state = oauth.create_authorization_url(metadata["authorization_endpoint"],
                                                    code_verifier=verifier)
        callback = await sign_in_at_broker(url, login_tenant.idp, "alice")
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(metadata["token_endpoint"], authorization_response=callback,
                                    state=state, code_verifier=secrets.token_urlsafe(48))
    assert refused.value.error == "invalid_grant"
