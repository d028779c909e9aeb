"""The login configuration through the admin API (upstream IdPs, authorization_details types,
users) and through the ``tessera`` command line (a subprocess on a SQLite file). No peers."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from broker.runtime import Broker
from tenants import users
from tenants.models import AuditEvent, Upstream
from tenants.scope import tenant_scope
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_tenant

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IDP = "https://idp.corp.example"
SECRET = "upstream-secret-" + "s" * 24
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
Cli = Callable[..., subprocess.CompletedProcess[str]]


@cache
def _cert_b64() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corp IdP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def idp_metadata(entity_id: str = f"{IDP}/saml", prolog: str = "") -> str:
    return (f'{prolog}<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:'
            'protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{_cert_b64()}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            f'</md:KeyDescriptor><md:SingleSignOnService Binding="{REDIRECT}" '
            f'Location="{IDP}/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')


def oidc_body(name: str = "corp-oidc", **oidc: Any) -> dict[str, Any]:
    return {"name": name, "kind": "oidc", "display_name": "Corp", "domains": ["Corp.Example"],
            "oidc": {"issuer": IDP, "client_id": "tessera", "client_secret": SECRET, **oidc}}


def saml_body(name: str = "corp-saml", **saml: Any) -> dict[str, Any]:
    return {"name": name, "kind": "saml", "saml": saml or {"metadata_xml": idp_metadata()}}


def url(tenant: str, path: str) -> str:
    return f"/admin/v1/tenants/{tenant}{path}"


async def actions(broker: Broker, tenant: str) -> list[str]:
    async with broker.sessions() as session:
        return list((await session.execute(select(AuditEvent.action).where(
            AuditEvent.tenant_id == tenant).order_by(AuditEvent.seq))).scalars())


async def test_oidc_upstream_secret_is_sealed_and_never_echoed(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    tenant = await new_tenant(broker)
    r = await http.post(url(tenant, "/upstreams"), json=oidc_body(), headers=ADMIN)
    assert r.status_code == 201, r.text
    body = r.json()
    assert SECRET not in r.text and "client_secret_sealed" not in body["oidc"]
    assert body["oidc"] == {"issuer": IDP, "client_id": "tessera",
                            "client_auth": "client_secret_basic", "has_client_secret": True}
    assert body["redirect_uri"] == f"{BASE_URL}/t/{tenant}/login/corp-oidc/callback"
    assert (body["status"], body["domains"]) == ("active", ["corp.example"])
    listed = await http.get(url(tenant, "/upstreams"), headers=ADMIN)
    assert SECRET not in listed.text and [u["name"] for u in listed.json()] == ["corp-oidc"]
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(Upstream, "corp-oidc")
        assert row is not None
        config = dict(row.config)
    assert SECRET not in json.dumps(config) and "client_secret" not in config
    assert broker.sealer.open(config["client_secret_sealed"], f"{tenant}/corp-oidc") == SECRET


async def test_saml_upstream_from_metadata_xml(http: httpx.AsyncClient, broker: Broker) -> None:
    tenant = await new_tenant(broker)
    r = await http.post(url(tenant, "/upstreams"), json=saml_body(), headers=ADMIN)
    assert r.status_code == 201, r.text
    body, issuer = r.json(), f"{BASE_URL}/t/{tenant}"
    updated = body["saml"].pop("metadata_updated_at")
    assert body["saml"] == {"idp_entity_id": f"{IDP}/saml", "allow_sha1": False,
                            "name_id_format": None, "metadata_url": None}
    assert abs(updated - broker.clock.now()) < 60
    assert body["acs_url"] == f"{issuer}/saml/corp-saml/acs"
    assert body["sp_entity_id"] == body["sp_metadata_url"] == f"{issuer}/saml/corp-saml/metadata"
    sp = await http.get(body["sp_metadata_url"].removeprefix(BASE_URL))
    assert sp.status_code == 200 and body["acs_url"].encode() in sp.content


REFUSED: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "bad-name": (lambda: oidc_body("Corp IdP"), "name:"),
    "name-edge-dash": (lambda: oidc_body("corp-"), "name:"),
    "unknown-kind": (lambda: {**oidc_body(), "kind": "ldap"}, "kind: Input should be"),
    "no-issuer": (lambda: {**oidc_body(), "oidc": {"client_id": "x", "client_secret": "y"}},
                  "issuer"),
    "alg-none": (lambda: oidc_body(allowed_algs=["RS256", "none"]), "oidc.allowed_algs[1]"),
    "alg-hs256": (lambda: oidc_body(allowed_algs=["HS256"]), "oidc.allowed_algs[0]"),
    "unknown-oidc-setting": (lambda: oidc_body(secret="x"), "oidc.secret: unknown field"),
    "bad-mapping": (lambda: {**oidc_body(), "mapping": {"subjekt": "oid"}},
                    "mapping.subjekt: unknown field"),
    "bad-metadata-xml": (lambda: saml_body(metadata_xml="<md:EntityDescriptor"),
                         "IdP metadata: malformed XML"),
    "doctype-metadata": (lambda: saml_body(metadata_xml=idp_metadata(
        prolog='<!DOCTYPE md [<!ENTITY e SYSTEM "file:///etc/passwd">]>')), "DOCTYPE"),
    "not-idp-metadata": (lambda: saml_body(metadata_xml="<x/>"), "not an EntityDescriptor"),
    "no-saml-source": (lambda: saml_body(allow_sha1=True),
                       "give exactly one of metadata_xml and metadata_url"),
    **{f"metadata-url-{tag}": (lambda u=u: saml_body(metadata_url=u), "cannot fetch")
       for tag, u in (("private", "https://10.20.30.40/metadata"),
                      ("link-local", "https://169.254.169.254/latest/meta-data"),
                      ("loopback-v6", "https://[::1]/metadata"))},
    # refused by the model before any fetch
    **{f"metadata-url-{tag}": (lambda u=u: saml_body(metadata_url=u), f"saml.metadata_url: {m}")
       for tag, u, m in (("plain-http", "http://idp.corp.example/metadata", "must be https"),
                         ("loopback-http", "http://127.0.0.1:9/metadata", "must be https"),
                         ("userinfo", "https://user:pw@idp.corp.example/metadata",
                          "an absolute URL with a host and no userinfo"))},
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_bad_upstream_is_refused(http: httpx.AsyncClient, broker: Broker, case: str) -> None:
    tenant = await new_tenant(broker)
    make, fragment = REFUSED[case]
    r = await http.post(url(tenant, "/upstreams"), json=make(), headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert fragment in r.json()["error_description"], r.json()
    assert (await http.get(url(tenant, "/upstreams"), headers=ADMIN)).json() == []


async def test_duplicate_list_disable_enable(http: httpx.AsyncClient, broker: Broker) -> None:
    tenant = await new_tenant(broker)
    for body in (saml_body(), oidc_body()):
        assert (await http.post(url(tenant, "/upstreams"), json=body,
                                headers=ADMIN)).status_code == 201
    again = await http.post(url(tenant, "/upstreams"), json=oidc_body(), headers=ADMIN)
    assert again.status_code == 409 and "exists" in again.json()["error_description"]
    listed = (await http.get(url(tenant, "/upstreams"), headers=ADMIN)).json()
    assert [(u["name"], u["kind"]) for u in listed] == [("corp-oidc", "oidc"),
                                                        ("corp-saml", "saml")]
    off = await http.post(url(tenant, "/upstreams/corp-saml/disable"), headers=ADMIN)
    assert off.status_code == 200 and off.json()["status"] == "disabled"
    listed = (await http.get(url(tenant, "/upstreams"), headers=ADMIN)).json()
    assert {u["name"]: u["status"] for u in listed} == {"corp-oidc": "active",
                                                       "corp-saml": "disabled"}
    on = await http.post(url(tenant, "/upstreams/corp-saml/enable"), headers=ADMIN)
    assert on.json()["status"] == "active"
    ghost = await http.post(url(tenant, "/upstreams/ghost/disable"), headers=ADMIN)
    assert ghost.status_code == 404
    events = [e for e in await actions(broker, tenant) if e.startswith("upstream.")]
    assert events == ["upstream.created", "upstream.created", "upstream.disabled",
                      "upstream.active"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/upstreams"), ("POST", "/upstreams"), ("POST", "/upstreams/x/disable"),
    ("GET", "/authorization-details-types"), ("POST", "/authorization-details-types"),
    ("GET", "/users")])
async def test_unknown_tenant_and_missing_token(
    http: httpx.AsyncClient, broker: Broker, method: str, path: str,
) -> None:
    body = oidc_body() if path == "/upstreams" else {"type": "t", "schema": {"type": "object"}}
    kwargs: dict[str, Any] = {"json": body} if method == "POST" and "disable" not in path \
        else {}
    r = await http.request(method, url("no-such-tenant", path), headers=ADMIN, **kwargs)
    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
    tenant = await new_tenant(broker)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": ADMIN_TOKEN}):
        r = await http.request(method, url(tenant, path), headers=headers, **kwargs)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert [u for u in await actions(broker, tenant) if u != "tenant.created"] == []


PAYMENT = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 1000}},
           "required": ["amount"]}


@pytest.mark.parametrize(("schema", "fragment"), [
    ({"type": 12}, "invalid schema"), ([1, 2], "schema"),
    ({"$ref": "https://schemas.evil.example/payment.json"}, "remote references"),
    ({"properties": {"a": {"$ref": "http://x.example/#/a"}}}, "remote references"),
    ({"$schema": "http://json-schema.org/draft-04/schema#"}, "2020-12")])
async def test_bad_detail_type_schema_is_refused(
    http: httpx.AsyncClient, broker: Broker, schema: Any, fragment: str,
) -> None:
    tenant = await new_tenant(broker)
    r = await http.post(url(tenant, "/authorization-details-types"), headers=ADMIN,
                        json={"type": "payment", "schema": schema})
    assert r.status_code == 400 and fragment in r.json()["error_description"], r.text
    assert (await http.get(url(tenant, "/authorization-details-types"),
                           headers=ADMIN)).json() == []


async def test_detail_types_register_replace_and_list(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    tenant = await new_tenant(broker)
    path = url(tenant, "/authorization-details-types")
    r = await http.post(path, headers=ADMIN, json={"type": "payment", "schema": PAYMENT,
                                                   "description": "pay"})
    assert r.status_code == 201 and r.json()["type"] == "payment", r.text
    missing = await http.post(path, headers=ADMIN, json={"schema": PAYMENT})
    assert missing.status_code == 400 and missing.json()["field"] == "type"
    r = await http.put(path, headers=ADMIN, json={"type": "payment", "schema": PAYMENT,
                                                  "description": "pay up to 1000"})
    assert r.status_code == 200
    listed = (await http.get(path, headers=ADMIN)).json()
    assert listed == [{"type": "payment", "schema": PAYMENT, "description": "pay up to 1000"}]


async def test_users_list_shows_linked_users(http: httpx.AsyncClient, broker: Broker) -> None:
    tenant = await new_tenant(broker)
    assert (await http.get(url(tenant, "/users"), headers=ADMIN)).json() == []
    async with tenant_scope(broker.sessions, tenant) as scope:  # what a login does
        user = await users.link(scope, "corp-oidc", users.Profile(
            subject="idp-sub-1", email="dana@corp.example", name="Dana", groups=("eng",)),
            broker.clock.now())
    r = await http.get(url(tenant, "/users"), headers=ADMIN)
    assert r.status_code == 200
    [listed] = r.json()
    assert listed["sub"] == user.id and listed["sub"] != "idp-sub-1"
    assert (listed["email"], listed["name"], listed["groups"], listed["status"]) == (
        "dana@corp.example", "Dana", ["eng"], "active")
    assert listed["last_login_at"] is not None


# --- the command line -----------------------------------------------------------------------


def test_cli_upstreams_and_detail_types(cli: Cli, tmp_path: Path) -> None:
    cli("tenant", "create", "acme", "--json")
    metadata = tmp_path / "idp.xml"
    metadata.write_text(idp_metadata())
    saml = json.loads(cli("upstream", "add-saml", "--tenant", "acme", "--name", "corp-saml",
                          "--metadata-file", str(metadata), "--domain", "corp.example",
                          "--json").stdout)
    assert saml["acs_url"] == "http://127.0.0.1:8000/t/acme/saml/corp-saml/acs"
    assert saml["saml"]["idp_entity_id"] == f"{IDP}/saml"
    oidc = cli("upstream", "add-oidc", "--tenant", "acme", "--name", "corp-oidc", "--issuer",
               IDP, "--client-id", "tessera", "--client-secret-env", "CORP_SECRET", "--json",
               CORP_SECRET=SECRET)
    assert SECRET not in oidc.stdout + oidc.stderr
    with sqlite3.connect(tmp_path / "cli.db") as db:
        stored = dict(db.execute("select name, config from upstreams").fetchall())
    assert SECRET not in stored["corp-oidc"]
    assert json.loads(stored["corp-oidc"])["client_secret_sealed"]
    listed = json.loads(cli("upstream", "list", "--tenant", "acme", "--json").stdout)
    assert [(u["name"], u["kind"], u["status"]) for u in listed] == [
        ("corp-oidc", "oidc", "active"), ("corp-saml", "saml", "active")]
    plain = cli("upstream", "list", "--tenant", "acme").stdout
    assert 'name="corp-saml"' in plain and SECRET not in plain
    off = json.loads(cli("upstream", "disable", "--tenant", "acme", "corp-saml",
                         "--json").stdout)
    assert off["status"] == "disabled"
    # a variable named but not set is a usage error naming it (never an upstream without its secret)
    proc = cli("upstream", "add-oidc", "--tenant", "acme", "--name", "other", "--issuer", IDP,
               "--client-id", "x", "--client-secret-env", "UNSET_SECRET_VAR", check=False)
    assert proc.returncode == 2 and "UNSET_SECRET_VAR: the variable is not set" in proc.stderr
    metadata.write_text(idp_metadata(prolog="<!DOCTYPE x>"))
    proc = cli("upstream", "add-saml", "--tenant", "acme", "--name", "evil", "--metadata-file",
               str(metadata), check=False)
    assert proc.returncode == 5 and "DOCTYPE" in proc.stderr

    schema = tmp_path / "payment.json"
    schema.write_text(json.dumps(PAYMENT))
    added = json.loads(cli("detail-type", "add", "--tenant", "acme", "--type", "payment",
                           "--schema-file", str(schema), "--description", "pay",
                           "--json").stdout)
    assert added == {"type": "payment", "schema": PAYMENT, "description": "pay"}
    schema.write_text(json.dumps({"$ref": "https://evil.example/s.json"}))
    proc = cli("detail-type", "add", "--tenant", "acme", "--type", "evil", "--schema-file",
               str(schema), check=False)
    assert proc.returncode == 5 and "remote references" in proc.stderr
    listed = json.loads(cli("detail-type", "list", "--tenant", "acme", "--json").stdout)
    assert [t["type"] for t in listed] == ["payment"]

