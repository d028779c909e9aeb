"""SAML 2.0 service providers written by others, for the tests of tessera's IdP role:

* ``SamlifySP``: samlify (npm) through ``fixtures/peers/samlify_sp.mjs``, one Node.js process
  per call (creates AuthnRequests, parses a SAMLResponse, prints what it extracted);
* ``Pysaml2SP``: pysaml2's ``Saml2Client`` in process (signatures checked and made by
  python-xmlsec in process, tests/peers/pysaml2_xmlsec.py, where pysaml2 would by default run
  the ``xmlsec1`` program).

Both are given tessera's IdP metadata as their only trust; neither runs an HTTP server: the
ACS URL is an identifier, and the tests hand the SP the SAMLResponse that tessera's page would
have posted there.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from tests.interop.conftest import NPM_TIMEOUT, PEERS_DIR
from tests.peers.oidc_idp import node_or_skip
from tests.peers.pysaml2_xmlsec import python_xmlsec_config, use_python_xmlsec

with warnings.catch_warnings():  # pysaml2 still imports CFB from its deprecated location
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import create_metadata_string
    from saml2.validate import ResponseLifetimeExceed
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

__all__ = ["FormParser", "Pysaml2SP", "ResponseLifetimeExceed", "SamlifySP", "key_and_cert"]
SAMLIFY_SCRIPT = PEERS_DIR / "samlify_sp.mjs"
SAMLIFY_PACKAGES = ("samlify", "@authenio/samlify-node-xmllint")


def key_and_cert(common_name: str) -> tuple[str, str]:
    """An RSA key and a self-signed certificate (PEM) for an SP that signs its requests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


# --- samlify -------------------------------------------------------------------------------

def _npm_install_samlify() -> None:
    modules = PEERS_DIR / "node_modules"
    if all((modules / name).is_dir() for name in SAMLIFY_PACKAGES):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node is installed but npm is not: cannot install fixtures/peers deps")
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                          capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False)
    if proc.returncode != 0:
        pytest.fail(f"npm install in {PEERS_DIR} failed:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class SamlifySP:
    entity_id: str
    acs: str
    idp_metadata: str
    name_id_format: str | None = None
    private_key: str | None = None  # with it, AuthnRequests are signed
    cert: str | None = None
    node: str = field(default_factory=node_or_skip)

    def __post_init__(self) -> None:
        _npm_install_samlify()

    def _call(self, action: str, **extra: Any) -> dict[str, Any]:
        sp: dict[str, Any] = {"entityID": self.entity_id, "acs": self.acs}
        if self.name_id_format:
            sp["nameIDFormat"] = self.name_id_format
        if self.private_key:
            sp.update(privateKey=self.private_key, cert=self.cert)
        payload = {"action": action, "idp_metadata": self.idp_metadata, "sp": sp, **extra}
        proc = subprocess.run([self.node, str(SAMLIFY_SCRIPT)], input=json.dumps(payload),
                              capture_output=True, text=True, timeout=60, cwd=PEERS_DIR,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def login_request(self, binding: str = "redirect", relay_state: str = "",
                      force_authn: bool = False) -> dict[str, Any]:
        return self._call("login-request", binding=binding, relay_state=relay_state,
                          force_authn=force_authn)

    def metadata(self) -> str:
        return str(self._call("metadata")["metadata"])

    def parse(self, saml_response: str, relay_state: str = "",
              in_response_to: str | None = None) -> dict[str, Any]:
        return self._call("parse", saml_response=saml_response, relay_state=relay_state,
                          expect_in_response_to=in_response_to)


# --- pysaml2 -------------------------------------------------------------------------------

class Pysaml2SP:
    """pysaml2's SP client with tessera's IdP metadata inline."""

    def __init__(self, workdir: Path, *, entity_id: str, acs: str, idp_metadata: str,
                 name_id_format: str | None = None, sign_requests: bool = False,
                 allow_unsolicited: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.key_pem, self.cert_pem = key_and_cert("pysaml2 SP")
        (workdir / "sp-key.pem").write_text(self.key_pem)
        (workdir / "sp-cert.pem").write_text(self.cert_pem)
        sp: dict[str, Any] = {
            "endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]},
            "want_assertions_signed": True, "want_response_signed": False,
            "authn_requests_signed": sign_requests, "allow_unsolicited": allow_unsolicited,
        }
        if name_id_format:  # in metadata, and asked for in NameIDPolicy
            sp["name_id_format"] = [name_id_format]
            sp["name_id_policy_format"] = name_id_format
        self.entity_id, self.acs = entity_id, acs
        self.config = SPConfig().load(python_xmlsec_config({
            "entityid": entity_id, "service": {"sp": sp},
            "metadata": {"inline": [idp_metadata]},
            "key_file": str(workdir / "sp-key.pem"), "cert_file": str(workdir / "sp-cert.pem"),
            "accepted_time_diff": 5, "allow_unknown_attributes": True,
            "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
        }))
        self.client = use_python_xmlsec(Saml2Client(config=self.config))
        self.idp_entity_id = next(iter(self.client.metadata.identity_providers()))

    def metadata(self) -> str:
        return str(create_metadata_string(None, config=self.config))

    def redirect_request(self, relay_state: str = "", **extra: Any) -> tuple[str, str]:
        """(request ID, the HTTP-Redirect URL to tessera's SSO endpoint); ``extra``: pysaml2's
        AuthnRequest options (``is_passive="true"``, ``force_authn="true"``)."""
        request_id, info = self.client.prepare_for_authenticate(
            entityid=self.idp_entity_id, relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT, sigalg=SIG_RSA_SHA256, **extra)
        return request_id, dict(info["headers"])["Location"]

    def post_request(self, relay_state: str = "") -> tuple[str, str, dict[str, str]]:
        """(request ID, the SSO URL, the form fields) for the HTTP-POST binding."""
        request_id, info = self.client.prepare_for_authenticate(
            entityid=self.idp_entity_id, relay_state=relay_state, binding=BINDING_HTTP_POST)
        parser = FormParser()
        parser.feed(info["data"])
        assert parser.action is not None, info["data"]
        return request_id, parser.action, parser.fields

    def accept(self, saml_response: str, request_id: str | None = None) -> Any:
        """The SP's verdict: its AuthnResponse, or the exception pysaml2 raised."""
        outstanding = {request_id: "/"} if request_id else {}
        return self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                        outstanding=outstanding)


class FormParser(HTMLParser):
    """The first <form> of a page: its action and its named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and self.action is not None and not self._done and "name" in a:
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        self._done = self._done or (tag == "form" and self.action is not None)
