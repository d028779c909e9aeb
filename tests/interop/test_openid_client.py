"""openid-client v6 (Node.js, panva) against a running tessera: discovery, client credentials
with DPoP-bound tokens (RFC 9449), and a DPoP-protected resource call."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from joserfc.jwk import ECKey

if TYPE_CHECKING:
    from conftest import NodePeer, TesseraServer

pytestmark = pytest.mark.interop


def jkt_of(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of the EC key openid-client generated for DPoP."""
    members = {k: public_jwk[k] for k in ("kty", "crv", "x", "y")}
    return ECKey.import_key(members).thumbprint()


def run_cc(peer: NodePeer, server: TesseraServer, client: dict[str, Any], *extra: str,
           tenant: str = "demo", expect_ok: bool = True) -> dict[str, Any]:
    # always --opt=value: generated client ids may start with "-"
    return peer.run(
        f"--issuer={server.issuer_of(tenant)}", f"--client-id={client['client_id']}",
        "--scope=demo.read", f"--resource={server.demo_audience(tenant)}",
        f"--resource-url={server.demo_resource(tenant)}", *extra,
        secret=client["client_secret"], expect_ok=expect_ok,
    )


def assert_dpop_flow(out: dict[str, Any], server: TesseraServer, client: dict[str, Any],
                     tenant: str = "demo") -> None:
    token = out["token"]
    # openid-client normalises token_type to lower case; tessera answered "DPoP"
    assert token["token_type"].lower() == "dpop"
    assert token["scope"] == "demo.read"
    assert 0 < token["expires_in"] <= 300

    header, claims = server.verify_access_token(token["access_token"], tenant)
    assert header["typ"] == "at+jwt"
    assert claims["iss"] == server.issuer_of(tenant)
    assert claims["sub"] == claims["client_id"] == client["client_id"]
    assert claims["aud"] in (server.demo_audience(tenant), [server.demo_audience(tenant)])
    assert claims["scope"] == "demo.read"
    jkt = claims["cnf"]["jkt"]
    assert jkt == jkt_of(out["dpop_public_jwk"]), "token bound to another key than the client's"

    resource = out["resource"]
    assert resource["status"] == 200
    body = resource["body"]
    assert body["sub"] == client["client_id"]
    assert body["client_id"] == client["client_id"]
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": jkt}


def test_client_credentials_with_dpop_and_protected_resource(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    client = tessera_server.create_client(dpop_bound_access_tokens=True)
    out = run_cc(openid_client_peer, tessera_server, client)
    assert out["discovery"]["metadata"]["issuer"] == tessera_server.issuer
    assert_dpop_flow(out, tessera_server, client)


def test_demo_client_bearer_flow(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    """The client ``tessera serve`` bootstraps (and prints in its banner) works as shipped:
    no DPoP required, so openid-client without DPoP gets a Bearer token the resource takes."""
    demo = {"client_id": tessera_server.demo_client_id,
            "client_secret": tessera_server.demo_client_secret}
    out = run_cc(openid_client_peer, tessera_server, demo, "--no-dpop")
    assert out["token"]["token_type"].lower() == "bearer"
    header, claims = tessera_server.verify_access_token(out["token"]["access_token"])
    assert header["typ"] == "at+jwt"
    assert "cnf" not in claims
    assert out["resource"]["status"] == 200
    body = out["resource"]["body"]
    assert body["sub"] == body["client_id"] == "demo-agent"
    assert body["token_type"] == "Bearer"


def test_client_secret_post_with_dpop(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    # an id with a leading "-" (generated ids can have one) must survive the command line
    client = tessera_server.create_client(dpop_bound_access_tokens=True,
                                          client_id=f"-interop-{secrets.token_hex(4)}",
                                          token_endpoint_auth_method="client_secret_post")
    out = run_cc(openid_client_peer, tessera_server, client, "--auth=client_secret_post")
    assert_dpop_flow(out, tessera_server, client)


def test_dpop_nonce_challenge_is_retried_by_openid_client(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    """A tenant requiring server nonces answers use_dpop_nonce at the token endpoint and at
    the resource; openid-client must pick the DPoP-Nonce up and retry on its own."""
    tenant = tessera_server.create_tenant("nonce", dpop_nonce_required=True)
    client = tessera_server.create_client(tenant, dpop_bound_access_tokens=True)
    out = run_cc(openid_client_peer, tessera_server, client, tenant=tenant)
    assert_dpop_flow(out, tessera_server, client, tenant=tenant)


@pytest.mark.parametrize("algorithm", ["oauth2", "oidc"])
def test_discovery_metadata(
    openid_client_peer: NodePeer, tessera_server: TesseraServer, algorithm: str
) -> None:
    """``oauth2`` makes openid-client read RFC 8414's
    /.well-known/oauth-authorization-server/t/demo; ``oidc`` reads
    /t/demo/.well-known/openid-configuration. Both must name our issuer exactly (it checks)."""
    out = openid_client_peer.run(
        f"--issuer={tessera_server.issuer}", f"--client-id={tessera_server.demo_client_id}",
        f"--discovery={algorithm}", "--discover-only",
    )
    seen = out["discovery"]["metadata"]
    assert out["discovery"]["algorithm"] == algorithm
    assert seen["issuer"] == tessera_server.issuer
    assert seen["token_endpoint"] == tessera_server.token_endpoint()
    assert seen["jwks_uri"] == f"{tessera_server.issuer}/jwks"
    assert "ES256" in seen["dpop_signing_alg_values_supported"]

    well_known = {
        "oauth2": f"{tessera_server.base_url}/.well-known/oauth-authorization-server/t/demo",
        "oidc": f"{tessera_server.issuer}/.well-known/openid-configuration",
    }[algorithm]
    served = httpx.get(well_known, timeout=10.0)
    assert served.status_code == 200
    assert seen == served.json()


def test_client_without_dpop_is_refused_when_dpop_required(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    client = tessera_server.create_client(dpop_bound_access_tokens=True)
    err = run_cc(openid_client_peer, tessera_server, client, "--no-dpop", expect_ok=False)
    assert err["oauth_error"] == "invalid_dpop_proof"
    assert err["status"] == 400


def test_secret_sent_the_other_way_than_registered_is_accepted(
    openid_client_peer: NodePeer, tessera_server: TesseraServer
) -> None:
    """A secret is the same credential in the header or the body (issue 13: the MCP SDKs pick
    the method themselves); a wrong secret is refused either way."""
    client = tessera_server.create_client(dpop_bound_access_tokens=True)  # client_secret_basic
    out = run_cc(openid_client_peer, tessera_server, client, "--auth=client_secret_post")
    assert_dpop_flow(out, tessera_server, client)
    wrong = {**client, "client_secret": "not-the-secret"}
    err = run_cc(openid_client_peer, tessera_server, wrong, "--auth=client_secret_post",
                 expect_ok=False)
    assert err["oauth_error"] == "invalid_client"
    assert err["status"] == 401
