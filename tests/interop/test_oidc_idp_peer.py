"""The oidc-provider IdP harness (tests/peers/oidc_idp.py, which runs fixtures/peers/oidc_idp.mjs),
proved with plain httpx as the RP: authorization code flow with PKCE, the browser steps driven
by ``login_at_idp``, the code exchanged at the token endpoint, the ID token checked against the
IdP's JWKS; key rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.peers.oidc_idp import IdpLoginError, OidcIdp, login_at_idp, start_oidc_idp
from tests.server_process import free_port

pytestmark = pytest.mark.interop

ACR = "urn:mace:incommon:iap:silver"
USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@corp.example", "email_verified": True, "name": "Alice Liddell",
              "given_name": "Alice", "family_name": "Liddell", "groups": ["eng", "admins"]},
    "bob": {"email": "bob@corp.example", "email_verified": False, "name": "Bob Builder",
            "preferred_username": "bob.b", "groups": ["sales"]},
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIdp]:
    redirect_uri = f"http://127.0.0.1:{free_port()}/cb"
    config = {
        "clients": [
            {"client_id": "tessera-rp", "client_secret": "rp-secret-" + secrets.token_hex(16),
             "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "client_secret_basic"},
            {"client_id": "tessera-rp-es256", "client_secret": "rp-secret-" + secrets.token_hex(16),
             "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "client_secret_post",
             "id_token_signed_response_alg": "ES256"},
        ],
        "users": USERS,
    }
    idp = start_oidc_idp(config, tmp_path_factory.mktemp("oidc-idp"))
    try:
        yield idp
    finally:
        idp.stop()
    assert idp.process.returncode == 0, f"IdP exited with {idp.process.returncode}:\n" \
                                        f"{idp.log_tail()}"


def client_of(idp: OidcIdp, client_id: str) -> dict[str, Any]:
    return next(c for c in idp.config["clients"] if c["client_id"] == client_id)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize_request(idp: OidcIdp, client: dict[str, Any],
                      scope: str = "openid email profile") -> dict[str, str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0], "scope": scope,
        "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }
    return {**params, "verifier": verifier,
            "url": f"{idp.authorization_endpoint}?{urlencode(params)}"}


async def exchange(http: httpx.AsyncClient, idp: OidcIdp, client: dict[str, Any], code: str,
                   verifier: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client["redirect_uris"][0], "code_verifier": verifier}
    if client["token_endpoint_auth_method"] == "client_secret_post":
        form.update(client_id=client["client_id"], client_secret=client["client_secret"])
        auth = None
    else:
        auth = httpx.BasicAuth(client["client_id"], client["client_secret"])
    response = await http.post(idp.token_endpoint, data=form, auth=auth)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert isinstance(tokens, dict)
    return tokens


def verify_id_token(idp: OidcIdp, token: str, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = KeySet.import_key_set(idp.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=[alg])
    return dict(decoded.header), dict(decoded.claims)


async def login_and_redeem(idp: OidcIdp, client_id: str, login: str,
                           scope: str = "openid email profile") -> dict[str, Any]:
    """The whole flow; returns the callback parameters, the tokens and the ID token's parts."""
    client = client_of(idp, client_id)
    request = authorize_request(idp, client, scope)
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await login_at_idp(browser, request["url"], login)
    assert callback.startswith(client["redirect_uris"][0] + "?"), callback
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert "error" not in params, params
    assert params["state"] == request["state"]
    assert params["iss"] == idp.issuer  # RFC 9207
    assert params["code"]
    async with httpx.AsyncClient(timeout=10) as rp:
        tokens = await exchange(rp, idp, client, params["code"], request["verifier"])
    assert tokens["token_type"].lower() == "bearer"
    alg = client.get("id_token_signed_response_alg", "RS256")
    header, claims = verify_id_token(idp, tokens["id_token"], alg)
    assert header["alg"] == alg
    assert claims["iss"] == idp.issuer
    assert claims["aud"] in (client_id, [client_id])
    assert claims["nonce"] == request["nonce"]
    return {"callback": params, "tokens": tokens, "header": header, "claims": claims,
            "request": request}


async def test_code_flow_with_pkce_and_verified_id_token(idp: OidcIdp) -> None:
    out = await login_and_redeem(idp, "tessera-rp", "alice")
    claims = out["claims"]
    assert claims["sub"] == "alice"
    assert claims["email"] == "alice@corp.example"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Liddell"
    assert claims["groups"] == ["eng", "admins"]  # "groups" rides with the profile scope
    assert claims["acr"] == ACR
    assert claims["amr"] == ["pwd", "mfa"]
    assert abs(claims["auth_time"] - time.time()) < 60
    assert out["header"]["kid"] in {k["kid"] for k in idp.jwks()["keys"]}

    async with httpx.AsyncClient(timeout=10) as rp:
        userinfo = await rp.get(idp.userinfo_endpoint, headers={
            "Authorization": f"Bearer {out['tokens']['access_token']}"})
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == "alice"
    assert userinfo.json()["email"] == "alice@corp.example"


async def test_es256_client_and_login_by_username(idp: OidcIdp) -> None:
    out = await login_and_redeem(idp, "tessera-rp-es256", "bob.b", scope="openid email")
    claims = out["claims"]
    assert out["header"]["alg"] == "ES256"
    assert claims["sub"] == "bob"
    assert claims["email"] == "bob@corp.example"
    assert claims["email_verified"] is False
    assert "name" not in claims and "groups" not in claims  # no profile scope asked


async def test_pkce_verifier_is_checked(idp: OidcIdp) -> None:
    client = client_of(idp, "tessera-rp")
    request = authorize_request(idp, client)
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await login_at_idp(browser, request["url"], "alice")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    async with httpx.AsyncClient(timeout=10) as rp:
        response = await rp.post(idp.token_endpoint, data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": client["redirect_uris"][0],
            "code_verifier": secrets.token_urlsafe(48)},
            auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_pkce_is_required(idp: OidcIdp) -> None:
    client = client_of(idp, "tessera-rp")
    params = {"response_type": "code", "client_id": client["client_id"],
              "redirect_uri": client["redirect_uris"][0], "scope": "openid", "state": "s1"}
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await login_at_idp(browser, f"{idp.authorization_endpoint}?"
                                      f"{urlencode(params)}", "alice")
    query = parse_qs(urlsplit(callback).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]
    assert query["state"] == ["s1"]


async def test_unknown_login_gets_an_error_page(idp: OidcIdp) -> None:
    request = authorize_request(idp, client_of(idp, "tessera-rp"))
    async with httpx.AsyncClient(timeout=10) as browser:
        with pytest.raises(IdpLoginError) as caught:
            await login_at_idp(browser, request["url"], "mallory")
    response = caught.value.response
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Unknown user" in response.text


async def test_rotate_keys_changes_the_signing_kid(idp: OidcIdp) -> None:
    before = {k["kid"] for k in idp.jwks()["keys"]}
    kids = idp.rotate_keys()
    jwks = idp.jwks()
    after = [k["kid"] for k in jwks["keys"]]
    assert after == kids
    assert not before & set(after), "the old keys are dropped by default"
    assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256"}
    assert all("d" not in k for k in jwks["keys"]), json.dumps(jwks)

    out = await login_and_redeem(idp, "tessera-rp", "alice")
    rsa_kid = next(k["kid"] for k in jwks["keys"] if k["alg"] == "RS256")
    assert out["header"]["kid"] == rsa_kid

    kept = idp.rotate_keys(keep_old=True)
    assert kept[2:] == after and not set(kept[:2]) & set(after)
    out = await login_and_redeem(idp, "tessera-rp", "alice")
    assert out["header"]["kid"] == kept[0]  # the newest RSA key signs
