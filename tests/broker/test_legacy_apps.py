"""Registering legacy apps (SAML SPs): what is refused, the CLI as a user runs it, and the
audit trail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.errors import Conflict, InvalidRequest
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.conftest import new_tenant
from tests.peers.saml_sps import key_and_cert

APP = "https://legacy.example/sp"
ACS = "https://legacy.example/acs"


def body(**extra: Any) -> dict[str, Any]:
    return {"entity_id": APP, "acs_urls": [ACS], **extra}


@pytest.mark.parametrize(("fields", "message"), [
    ({"acs_urls": ["http://legacy.example/acs"]}, "must be https"),
    ({"acs_urls": ["http://127.0.0.1:9/acs"]}, "must be https"),  # loopback only in dev
    ({"acs_urls": ["https://legacy.example/acs#frag"]}, "fragment"),
    ({"acs_urls": []}, "acs_urls"),
    ({"entity_id": "not a uri"}, "entity_id"),
    ({"name_id_format": "x509"}, "name_id_format"),
    ({"attribute_mapping": {"mail": "e mail"}}, "attribute_mapping.mail"),
    ({"want_authn_requests_signed": True}, "sp_certs"),
    ({"sp_certs": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]}, "PEM"),
    ({"assertion_lifetime": 86_400}, "assertion_lifetime"),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"metadata": "<x/>"}, "SP metadata"),
])
async def test_bad_registrations_refused(broker: Broker, fields: dict[str, Any],
                                         message: str) -> None:
    tenant = await new_tenant(broker)
    with pytest.raises(InvalidRequest, match=message):
        await ops.create_legacy_app(broker, tenant, body(**fields))


async def test_register_list_disable(broker: Broker) -> None:
    tenant = await new_tenant(broker)
    _, cert = key_and_cert("sp")
    created = await ops.create_legacy_app(broker, tenant, body(
        attribute_mapping={"mail": "email"}, want_authn_requests_signed=True, sp_certs=[cert]))
    assert created["idp_metadata_url"].endswith(f"/t/{tenant}/saml/idp/metadata")
    assert created["sp_certs"] == 1 and created["name_id_format"] == "persistent"
    with pytest.raises(Conflict, match="exists"):
        await ops.create_legacy_app(broker, tenant, body())
    disabled = await ops.set_legacy_app_status(broker, tenant, APP, "disabled")
    assert disabled["status"] == "disabled"
    assert [a["status"] for a in await ops.list_legacy_apps(broker, tenant)] == ["disabled"]
    actions = [e["action"] for e in await _audit(broker, tenant)]
    assert "legacy_app.created" in actions and "legacy_app.disabled" in actions


async def _audit(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    return list(await ops.export_audit(broker, tenant))


def test_cli_add_from_fields_and_from_metadata(cli, tmp_path) -> None:
    def run(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    run("tenant", "create", "acme")
    added = run("legacy-app", "add", "--tenant", "acme", "--entity-id", APP, "--acs", ACS,
                "--name-id-format", "emailAddress", "--attribute", "mail=email",
                "--attribute", "memberOf=groups")
    assert added["attribute_mapping"] == {"mail": "email", "memberOf": "groups"}
    metadata = tmp_path / "sp.xml"
    metadata.write_text(
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'entityID="https://other.example/sp"><md:SPSSODescriptor protocolSupportEnumeration='
        '"urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:'
        'oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://other.example/acs" '
        'index="0"/></md:SPSSODescriptor></md:EntityDescriptor>')
    from_md = run("legacy-app", "add", "--tenant", "acme", "--metadata-file", str(metadata))
    assert from_md["acs_urls"] == ["https://other.example/acs"]
    listed = run("legacy-app", "list", "--tenant", "acme")
    assert sorted(a["entity_id"] for a in listed) == [APP, "https://other.example/sp"]
    assert run("legacy-app", "disable", "--tenant", "acme", APP)["status"] == "disabled"
