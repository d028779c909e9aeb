"""Interop fixtures: a real ``tessera serve`` process on a loopback port, driven by third-party
clients (openid-client on Node.js, Authlib on Python) over real HTTP.

One server per test session, in a temporary working directory of its own (SQLite file, master
key, demo client file). It is stopped with SIGTERM at the end and must exit cleanly and soon:
graceful shutdown is a feature.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import KeySet

from tests.server_process import serving

if TYPE_CHECKING:
    from tests.peers.oidc_idp import OidcIdp

REPO_ROOT = Path(__file__).resolve().parents[2]
# the Node.js peers (package.json, lockfile, .mjs scripts; node_modules installed beside them)
# live in fixtures/peers; their Python harnesses stay in tests/peers
PEERS_DIR = REPO_ROOT / "fixtures" / "peers"
OPENID_CLIENT_SCRIPT = PEERS_DIR / "openid_client_cc.mjs"

NODE_TIMEOUT = 30.0
NPM_TIMEOUT = 300.0
MIN_NODE_MAJOR = 20  # openid-client v6 needs WebCrypto and fetch as globals


def _b64url_json(segment: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class TesseraServer:
    """What a test needs to talk to the running server."""

    base_url: str
    issuer: str  # of tenant ``demo``
    admin_token: str
    demo_client_id: str
    demo_client_secret: str
    workdir: Path
    log_file: Path

    # --- URLs -------------------------------------------------------------------------------
    def issuer_of(self, tenant: str) -> str:
        return f"{self.base_url}/t/{tenant}"

    def token_endpoint(self, tenant: str = "demo") -> str:
        return f"{self.issuer_of(tenant)}/token"

    def introspection_endpoint(self, tenant: str = "demo") -> str:
        return f"{self.issuer_of(tenant)}/introspect"

    def revocation_endpoint(self, tenant: str = "demo") -> str:
        return f"{self.issuer_of(tenant)}/revoke"

    def demo_audience(self, tenant: str = "demo") -> str:
        return f"{self.issuer_of(tenant)}/demo"

    def demo_resource(self, tenant: str = "demo") -> str:
        return f"{self.issuer_of(tenant)}/demo/whoami"

    # --- admin API --------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(method, f"{self.base_url}/admin/v1{path}", json=body,
                             headers={"Authorization": f"Bearer {self.admin_token}"},
                             timeout=10.0)

    def create_tenant(self, prefix: str = "t", **settings: Any) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        response = self.admin("POST", "/tenants", {"name": name, "settings": settings})
        assert response.status_code == 201, response.text
        return name

    def create_client(self, tenant: str = "demo", **body: Any) -> dict[str, Any]:
        """Register a client through the admin API; defaults: scope demo.read, the tenant's
        demo resource as the only audience, client_secret_basic."""
        body.setdefault("name", f"interop-{secrets.token_hex(3)}")
        body.setdefault("scopes", ["demo.read"])
        body.setdefault("audiences", [self.demo_audience(tenant)])
        response = self.admin("POST", f"/tenants/{tenant}/clients", body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert isinstance(created, dict)
        return created

    # --- tokens -----------------------------------------------------------------------------
    def jwks(self, tenant: str = "demo") -> dict[str, Any]:
        response = httpx.get(f"{self.issuer_of(tenant)}/jwks", timeout=10.0)
        assert response.status_code == 200, response.text
        value = response.json()
        assert isinstance(value, dict)
        return value

    def verify_access_token(
        self, token: str, tenant: str = "demo"
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check the JWS signature against the tenant's published JWKS; return header, claims."""
        keys = KeySet.import_key_set(self.jwks(tenant))  # type: ignore[arg-type]
        header = _b64url_json(token.split(".")[0])
        obj = jws.deserialize_compact(token, keys, algorithms=[str(header.get("alg"))])
        claims = json.loads(obj.payload)
        assert isinstance(claims, dict)
        return dict(obj.headers()), claims

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="session")
def tessera_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TesseraServer]:
    """The session's server: the demo tenant and client, http allowed to loopback (the
    upstream IdPs of the login tests, oidc-provider, live on http://127.0.0.1)."""
    with serving(tmp_path_factory.mktemp("tessera-serve"), token_prefix="interop-admin-",
                 demo=True, TESSERA_ALLOW_HTTP_LOOPBACK="1") as s:
        demo = json.loads((s.workdir / "tessera-demo-client.json").read_text())
        yield TesseraServer(
            base_url=s.base_url, issuer=s.issuer_of("demo"), admin_token=s.admin_token,
            demo_client_id=demo["client_id"], demo_client_secret=demo["client_secret"],
            workdir=s.workdir, log_file=s.log,
        )


# --- Node.js peers ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePeer:
    node: str
    script: Path

    def run(self, *args: str, secret: str | None = None,
            expect_ok: bool = True) -> dict[str, Any]:
        """Run the openid-client script; return its JSON line (stdout on success, stderr on
        failure). The client secret travels in the environment, not on the command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        if secret is not None:
            env["TESSERA_CLIENT_SECRET"] = secret
        proc = subprocess.run([self.node, str(self.script), *args], cwd=self.script.parent,
                              env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT,
                              check=False)
        if expect_ok:
            assert proc.returncode == 0, (
                f"openid-client peer failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
            out = proc.stdout
        else:
            assert proc.returncode != 0, f"openid-client peer succeeded:\n{proc.stdout}"
            out = proc.stderr
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"no JSON line from the peer:\nstdout={proc.stdout}\nstderr={proc.stderr}"
        value = json.loads(lines[-1])
        assert isinstance(value, dict)
        return value


@pytest.fixture(scope="session")
def openid_client_peer() -> NodePeer:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the openid-client interop tests need Node.js >= 20")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        pytest.skip(f"node {version.stdout.strip()} is too old for openid-client v6 "
                    f"(needs >= {MIN_NODE_MAJOR})")
    if not (PEERS_DIR / "node_modules" / "openid-client").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install fixtures/peers deps")
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                                  capture_output=True, text=True, timeout=NPM_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install in {PEERS_DIR} took more than {NPM_TIMEOUT}s")
        if proc.returncode != 0:
            pytest.fail(f"npm install in {PEERS_DIR} failed ({proc.returncode}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
    return NodePeer(node=node, script=OPENID_CLIENT_SCRIPT)


# --- a tenant that logs users in at an upstream IdP ----------------------------------------

LOGIN_UPSTREAM = "corp-oidc"
LOGIN_USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@corp.example", "email_verified": True, "name": "Alice Liddell",
              "groups": ["eng"]},
}


@dataclass(frozen=True)
class LoginTenant:
    """A tenant of the running tessera whose only upstream (``LOGIN_UPSTREAM``) is ``idp``, a
    real oidc-provider knowing ``LOGIN_USERS``: the OpenID Provider role's playground."""

    server: TesseraServer
    name: str
    idp: OidcIdp

    @property
    def issuer(self) -> str:
        return self.server.issuer_of(self.name)

    def create_client(self, redirect_uri: str, **body: Any) -> dict[str, Any]:
        """A first-party client (no consent page) with ``redirect_uri`` only."""
        return self.server.create_client(self.name, redirect_uris=[redirect_uri], **body)

    def verify_access_token(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.server.verify_access_token(token, self.name)

    def jwks(self) -> dict[str, Any]:
        return self.server.jwks(self.name)


@pytest.fixture(scope="session")
def login_tenant(tessera_server: TesseraServer,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginTenant]:
    """A fresh tenant and its upstream IdP, started after the server so that the IdP can list
    tessera's callback URL for the tenant; the upstream is added through the admin API. Skips
    without Node.js >= 20 (the IdP is oidc-provider)."""
    from tests.peers.oidc_idp import start_oidc_idp  # it imports this module

    tenant = f"login-{secrets.token_hex(4)}"
    rp_secret = "rp-secret-" + secrets.token_hex(16)
    callback = f"{tessera_server.issuer_of(tenant)}/login/{LOGIN_UPSTREAM}/callback"
    idp = start_oidc_idp({
        "clients": [{"client_id": "tessera", "client_secret": rp_secret,
                     "redirect_uris": [callback],
                     "token_endpoint_auth_method": "client_secret_basic"}],
        "users": LOGIN_USERS,
    }, tmp_path_factory.mktemp("login-idp"))
    try:
        response = tessera_server.admin("POST", "/tenants", {"name": tenant, "settings": {}})
        assert response.status_code == 201, response.text
        response = tessera_server.admin("POST", f"/tenants/{tenant}/upstreams", {
            "name": LOGIN_UPSTREAM, "kind": "oidc", "domains": ["corp.example"],
            "oidc": {"issuer": idp.issuer, "client_id": "tessera", "client_secret": rp_secret,
                     "client_auth": "client_secret_basic",
                     "scopes": ["openid", "email", "profile"]}})
        assert response.status_code == 201, response.text
        assert response.json()["redirect_uri"] == callback
        yield LoginTenant(tessera_server, tenant, idp)
    finally:
        idp.stop()
