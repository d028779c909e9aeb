"""openid-client v6 (Node.js, panva) as a relying party of tessera's OpenID Provider role: the
authorization code flow with PKCE, a pushed authorization request (RFC 9126) and DPoP
(RFC 9449), against a running ``tessera serve`` whose tenant logs users in at a real upstream
IdP (oidc-provider); then UserInfo and a refresh, both with DPoP.

openid-client checks on its own what tessera must get right: ``iss`` in the authorization
response (RFC 9207), ``state``, the ID token (``iss``, ``aud``, ``azp``, ``exp``, ``iat``,
``nonce``), that the UserInfo ``sub`` is the ID token's, and the DPoP token type."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import ECKey

from tests.interop.conftest import NODE_TIMEOUT, PEERS_DIR
from tests.peers.oidc_idp import sign_in_at_broker
from tests.server_process import free_port

if TYPE_CHECKING:
    from conftest import LoginTenant, NodePeer

pytestmark = pytest.mark.interop

SCRIPT = PEERS_DIR / "openid_client_code.mjs"
SCOPE = "openid email profile"


def jkt_of(public_jwk: dict[str, Any]) -> str:
    return ECKey.import_key({k: public_jwk[k] for k in ("kty", "crv", "x", "y")}).thumbprint()


def loopback_redirect() -> str:
    """Where the relying party would listen (RFC 8252 §7.3); nothing does, nothing calls it."""
    return f"http://127.0.0.1:{free_port()}/cb"


def new_client(tenant: LoginTenant, redirect_uri: str, **body: Any) -> dict[str, Any]:
    """A public client (an agent on a device) that must use DPoP, unless ``body`` says else."""
    body.setdefault("token_endpoint_auth_method", "none")
    body.setdefault("dpop_bound_access_tokens", True)
    return tenant.create_client(redirect_uri, **body)


@dataclass(frozen=True)
class RunResult:
    authorization_url: str
    dpop_public_jwk: dict[str, Any] | None
    callback: str
    returncode: int
    output: dict[str, Any]  # the final JSON line: stdout on success, stderr on failure


def last_json_line(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line from the peer:\n{text}"
    value = json.loads(lines[-1])
    assert isinstance(value, dict)
    return value


async def run_code_flow(peer: NodePeer, tenant: LoginTenant, client: dict[str, Any],
                        redirect_uri: str, *extra: str, login: str = "alice") -> RunResult:
    """Run openid_client_code.mjs: it prints the authorization URL, the test plays the
    browser through tessera and the IdP, and hands the callback URL back on stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    if client.get("client_secret"):
        env["TESSERA_CLIENT_SECRET"] = client["client_secret"]
    proc = await asyncio.create_subprocess_exec(
        peer.node, str(SCRIPT), f"--issuer={tenant.issuer}", f"--client-id={client['client_id']}",
        f"--redirect-uri={redirect_uri}", f"--scope={SCOPE}", *extra,
        cwd=PEERS_DIR, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), NODE_TIMEOUT)
        if not first:
            _, err = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT)
            pytest.fail(f"openid-client peer exited before the authorization URL:\n"
                        f"{err.decode(errors='replace')}\n{tenant.server.log_tail()}")
        started = json.loads(first)
        callback = await sign_in_at_broker(started["authorization_url"], tenant.idp, login)
        proc.stdin.write(callback.encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        out, err = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    text = (out if proc.returncode == 0 else err).decode(errors="replace")
    return RunResult(started["authorization_url"], started["dpop_public_jwk"], callback,
                     proc.returncode, last_json_line(text))


def succeeded(result: RunResult, tenant: LoginTenant) -> dict[str, Any]:
    assert result.returncode == 0, (
        f"openid-client peer failed ({result.returncode}): {result.output}\n"
        f"server log:\n{tenant.server.log_tail()}")
    return result.output


def assert_pushed(result: RunResult, tenant: LoginTenant, client: dict[str, Any]) -> None:
    """The authorization URL carries only client_id and the PAR request_uri (RFC 9126 §4)."""
    url = urlsplit(result.authorization_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{tenant.issuer}/authorize"
    params = parse_qs(url.query)
    assert set(params) == {"client_id", "request_uri"}, params
    assert params["client_id"] == [client["client_id"]]
    assert params["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")


async def test_public_client_code_flow_with_pkce_par_and_dpop(
    openid_client_peer: NodePeer, login_tenant: LoginTenant
) -> None:
    """An agent on a device (a public client) signs its user in: PAR and the code grant both
    under one DPoP key; the tokens, UserInfo and the refresh token are bound to that key."""
    redirect_uri = loopback_redirect()
    client = new_client(login_tenant, redirect_uri)
    assert "client_secret" not in client or not client["client_secret"]
    result = await run_code_flow(openid_client_peer, login_tenant, client, redirect_uri)
    out = succeeded(result, login_tenant)
    assert_pushed(result, login_tenant, client)
    assert result.dpop_public_jwk is not None
    jkt = jkt_of(result.dpop_public_jwk)

    callback = out["callback_params"]
    assert result.callback.startswith(redirect_uri + "?")
    assert callback["iss"] == login_tenant.issuer  # RFC 9207
    assert callback["code"] and callback["state"]

    token = out["token"]
    assert token["token_type"].lower() == "dpop"
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert 0 < token["expires_in"] <= 300
    assert token["has_id_token"] and token["has_refresh_token"]
    header, access = login_tenant.verify_access_token(token["access_token"])
    assert header["typ"] == "at+jwt"
    assert access["cnf"] == {"jkt": jkt}, "access token bound to another key than the client's"
    assert access["client_id"] == client["client_id"]

    id_token = out["id_token_claims"]
    assert id_token["iss"] == login_tenant.issuer
    assert id_token["aud"] in (client["client_id"], [client["client_id"]])
    assert id_token["sub"] and id_token["sub"] == access["sub"]
    assert id_token["email"] == "alice@corp.example"
    assert id_token["nonce"]
    assert "at_hash" in id_token

    userinfo = out["userinfo"]
    assert userinfo["sub"] == id_token["sub"]
    assert userinfo["email"] == "alice@corp.example"
    assert userinfo["name"] == "Alice Liddell"

    # the refresh token is bound to the DPoP key: a stranger's key is refused (and does not
    # use the token up), the client's own key rotates it
    assert out["refresh_with_other_key"]["error"] == "invalid_grant", out
    refresh = out["refresh"]
    assert refresh["token_type"].lower() == "dpop"
    assert refresh["rotated"] is True
    assert refresh["id_token_claims"]["sub"] == id_token["sub"]
    _, refreshed = login_tenant.verify_access_token(refresh["access_token"])
    assert refreshed["cnf"] == {"jkt": jkt}
    assert refreshed["sub"] == id_token["sub"]


async def test_code_pushed_with_dpop_is_bound_to_that_key(
    openid_client_peer: NodePeer, login_tenant: LoginTenant
) -> None:
    """RFC 9449 §10.1: a DPoP proof on the PAR request binds the code as dpop_jkt would; the
    code redeemed under another key is refused."""
    redirect_uri = loopback_redirect()
    client = new_client(login_tenant, redirect_uri)
    result = await run_code_flow(openid_client_peer, login_tenant, client, redirect_uri,
                                 "--token-key=other")
    assert_pushed(result, login_tenant, client)
    assert result.returncode != 0, f"the code was redeemed under another key: {result.output}"
    assert result.output.get("oauth_error") == "invalid_grant", result.output
    assert "dpop_jkt" in (result.output["oauth_error_description"] or ""), result.output


async def test_confidential_client_code_flow_with_par_and_dpop(
    openid_client_peer: NodePeer, login_tenant: LoginTenant
) -> None:
    """The same flow for a confidential client (client_secret_basic at PAR and token)."""
    redirect_uri = loopback_redirect()
    client = new_client(login_tenant, redirect_uri,
                        token_endpoint_auth_method="client_secret_basic")
    assert client["client_secret"]
    result = await run_code_flow(openid_client_peer, login_tenant, client, redirect_uri)
    out = succeeded(result, login_tenant)
    assert_pushed(result, login_tenant, client)
    assert result.dpop_public_jwk is not None
    assert out["token"]["token_type"].lower() == "dpop"
    _, access = login_tenant.verify_access_token(out["token"]["access_token"])
    assert access["cnf"] == {"jkt": jkt_of(result.dpop_public_jwk)}
    assert out["userinfo"]["email"] == "alice@corp.example"
    assert out["refresh"]["token_type"].lower() == "dpop"
    assert out["refresh"]["rotated"] is True
