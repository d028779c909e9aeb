"""A real SAML 2.0 IdP for the test suite: pysaml2's ``saml2.server.Server`` behind a stdlib HTTP
server on 127.0.0.1, with a username-only login form.

Routes: ``GET /idp/metadata``; ``GET /sso/redirect`` / ``POST /sso/post`` (AuthnRequest in, login
form out); ``POST /login`` (Response out, as an HTTP-POST binding auto-post page to the ACS URL in
the SP's metadata). SPs must be registered with :meth:`SamlIdp.add_sp_metadata` first. Signing
is RSA-SHA256 over SHA-256 digests, done in process by python-xmlsec (tests/peers/pysaml2_xmlsec.py:
no ``xmlsec1`` program needed).

Negative tests set :attr:`SamlIdp.next_response_overrides`; the next *successful* ``/login``
consumes it (unknown keys give a 500 page). Keys:

- ``sign_response`` / ``sign_assertion`` (bool): both False for a wholly unsigned Response;
- ``audience`` (str): AudienceRestriction names this instead of the SP's entity ID;
- ``in_response_to`` (str): InResponseTo of the Response and of SubjectConfirmationData;
- ``recipient`` (str): Response Destination and SubjectConfirmationData Recipient (the form
  still posts to the real ACS);
- ``expired`` (bool): Conditions and SubjectConfirmationData validity lie in the past.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import secrets
import threading
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from lxml import etree

from tests.peers.pysaml2_xmlsec import python_xmlsec_config, use_python_xmlsec

with warnings.catch_warnings():  # pysaml2 still imports CFB from its deprecated location
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
    from saml2.assertion import Policy
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.server import Server
    from saml2.time_util import in_a_while
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

AUTHN_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
ALG_NS = "urn:oasis:names:tc:SAML:metadata:algsupport"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
OVERRIDE_KEYS = frozenset(
    {"sign_response", "sign_assertion", "audience", "in_response_to", "recipient", "expired"})


class SamlLoginError(Exception):
    """The IdP answered a browser step with an error page (``status``: 400, 401, 403, 500)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"IdP answered {status}: {body[:300]}")
        self.status, self.body = status, body


class _DefectPolicy(Policy):
    """Release policy that can put a foreign audience or stale validity into the assertion."""

    def __init__(self, mds: Any, audience: str | None, expired: bool) -> None:
        super().__init__(mds=mds)
        self.audience, self.expired = audience, expired

    def conditions(self, sp_entity_id: str) -> saml.Conditions:
        conds = super().conditions(self.audience or sp_entity_id)
        if self.expired:
            conds.not_before = in_a_while(minutes=-20)
        return conds

    def not_on_or_after(self, sp_entity_id: str) -> str:
        return in_a_while(minutes=-10) if self.expired else super().not_on_or_after(sp_entity_id)


@dataclass(frozen=True)
class _Pending:
    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str
    name_id_format: str | None


@dataclass(eq=False)
class SamlIdp:
    base_url: str
    entity_id: str  # also the metadata URL
    metadata_url: str
    cert_pem: str
    key_pem: str
    users: dict[str, dict[str, list[str]]]
    sign_response: bool
    sign_assertion: bool
    _metadata: bytes = field(repr=False)
    _server: Server = field(repr=False)
    _httpd: ThreadingHTTPServer = field(repr=False)
    next_response_overrides: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(repr=False, default_factory=threading.Lock)
    _pending: dict[str, _Pending] = field(repr=False, default_factory=dict)

    def metadata_xml(self) -> bytes:
        return self._metadata

    def add_sp_metadata(self, xml: bytes | str) -> None:
        """Trust an SP (an EntityDescriptor); registering an entity ID again replaces it."""
        with self._lock:
            store = self._server.metadata.metadata  # loader key -> InMemoryMetaData
            before = dict(store)
            self._server.metadata.load("inline", xml.decode() if isinstance(xml, bytes) else xml)
            added = {eid for key, md in store.items() if key not in before for eid in md.keys()}
            for key, md in before.items():
                if added & set(md.keys()):
                    del store[key]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- request handling (from the HTTP handler threads) -----------------------------------
    def begin(self, binding: str, saml_request: str, relay_state: str) -> tuple[int, str]:
        with self._lock:
            try:
                req = self._server.parse_authn_request(saml_request, binding).message
                sp = req.issuer.text.strip()
                if sp not in self._server.metadata.keys():
                    return 403, _page("Unknown SP", f"no metadata registered for {sp}")
                acs = self._server.response_args(req, [BINDING_HTTP_POST])["destination"]
            except Exception as exc:
                return 400, _page("Bad AuthnRequest", repr(exc))
            nid_format = req.name_id_policy.format if req.name_id_policy is not None else None
            key = secrets.token_urlsafe(16)
            self._pending[key] = _Pending(req.id, sp, acs, relay_state, nid_format)
        return 200, _page("Sign in", f'<form method="post" action="{self.base_url}/login">'
                          '<input name="username" autocomplete="username">'
                          f'<input type="hidden" name="key" value="{key}">'
                          '<button type="submit">Sign in</button></form>', raw=True)

    def finish(self, key: str, username: str) -> tuple[int, str]:
        with self._lock:
            if (pending := self._pending.get(key)) is None:
                return 400, _page("No such login", "unknown or already used request key")
            if username not in self.users:
                return 401, _page("Login failed", f"unknown user {username!r}")
            del self._pending[key]
            over, self.next_response_overrides = dict(self.next_response_overrides), {}
            if unknown := set(over) - OVERRIDE_KEYS:
                return 500, _page("Bad next_response_overrides", ", ".join(sorted(unknown)))
            response = self._server.create_authn_response(
                identity={k: list(v) for k, v in self.users[username].items()},
                userid=username,
                in_response_to=over.get("in_response_to", pending.request_id),
                destination=over.get("recipient", pending.acs_url),
                sp_entity_id=pending.sp_entity_id,
                name_id=self._name_id(username, pending),
                authn={"class_ref": AUTHN_CLASS, "authn_auth": self.entity_id},
                sign_response=over.get("sign_response", self.sign_response),
                sign_assertion=over.get("sign_assertion", self.sign_assertion),
                sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
                release_policy=_DefectPolicy(self._server.metadata, over.get("audience"),
                                             bool(over.get("expired"))),
            )
            info = self._server.apply_binding(BINDING_HTTP_POST, str(response), pending.acs_url,
                                              pending.relay_state, response=True)
        return 200, info["data"]

    def _name_id(self, username: str, pending: _Pending) -> saml.NameID:
        fmt = pending.name_id_format
        if fmt == saml.NAMEID_FORMAT_EMAILADDRESS:
            attrs = self.users[username]
            text = (attrs.get("mail") or attrs.get("email") or [username])[0]
            return saml.NameID(format=fmt, text=text)
        if fmt == saml.NAMEID_FORMAT_TRANSIENT:
            return saml.NameID(format=fmt, text=f"_{secrets.token_hex(16)}")
        # otherwise persistent and pairwise: stable per (SP, user), different across SPs
        digest = hashlib.sha256(f"{pending.sp_entity_id}!{username}".encode()).hexdigest()
        return saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, name_qualifier=self.entity_id,
                           sp_name_qualifier=pending.sp_entity_id, text=digest)


def _page(title: str, body: str, *, raw: bool = False) -> str:
    content, title = (body if raw else f"<p>{html.escape(body)}</p>"), html.escape(title)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1>{content}</body></html>")


class _IdpHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    idp: SamlIdp


class _Handler(BaseHTTPRequestHandler):
    server: _IdpHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output quiet

    def do_GET(self) -> None:
        self._dispatch(self.path.partition("?")[2])

    def do_POST(self) -> None:
        self._dispatch(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())

    def _dispatch(self, params: str) -> None:
        idp, route = self.server.idp, (self.command, urlsplit(self.path).path)
        form = {k: v[0] for k, v in parse_qs(params).items()}
        ctype, body, text = "text/html", b"", ""
        try:
            if route == ("GET", "/idp/metadata"):
                status, body, ctype = 200, idp.metadata_xml(), "application/samlmetadata+xml"
            elif route in (("GET", "/sso/redirect"), ("POST", "/sso/post")):
                binding = BINDING_HTTP_REDIRECT if self.command == "GET" else BINDING_HTTP_POST
                status, text = idp.begin(binding, form.get("SAMLRequest", ""),
                                         form.get("RelayState", ""))
            elif route == ("POST", "/login"):
                status, text = idp.finish(form.get("key", ""), form.get("username", ""))
            else:
                status, text = 404, _page("Not found", " ".join(route))
        except Exception as exc:
            status, text = 500, _page("IdP error", repr(exc))
        data = body or text.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


def _write_key_and_cert(workdir: Path) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tessera test IdP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (workdir / "idp-key.pem").write_text(key_pem)
    (workdir / "idp-cert.pem").write_text(cert_pem)
    return key_pem, cert_pem


def _idp_metadata(config: IdPConfig) -> bytes:
    """pysaml2's metadata, advertising the algorithms in use (SAML V2.0 Metadata Profile for
    Algorithm Support: pysaml2 lists them only when it asks ``xmlsec1``, and then all it knows,
    MD5 and SHA-1 included)."""
    root = etree.fromstring(create_metadata_string(None, config=config))
    extensions = root.find("md:Extensions", {"md": MD_NS})
    if extensions is None:
        extensions = etree.Element(f"{{{MD_NS}}}Extensions")
        root.insert(0, extensions)
    for elem in list(extensions.iter(f"{{{ALG_NS}}}DigestMethod",
                                     f"{{{ALG_NS}}}SigningMethod")):
        elem.getparent().remove(elem)
    for name, algorithm in (("DigestMethod", DIGEST_SHA256), ("SigningMethod", SIG_RSA_SHA256)):
        etree.SubElement(extensions, f"{{{ALG_NS}}}{name}", Algorithm=algorithm,
                         nsmap={"alg": ALG_NS})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def start_saml_idp(workdir: Path, *, users: dict[str, dict[str, list[str]]],
                   sign_response: bool = False, sign_assertion: bool = True,
                   port: int | None = None) -> SamlIdp:
    """Start the IdP on 127.0.0.1 (on a free port unless ``port``); ``users`` maps usernames to
    attributes (pysaml2 sends well-known names such as ``mail`` as ``urn:oid:`` names with a
    FriendlyName, others under their own name). Call ``stop()`` when done."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_pem, cert_pem = _write_key_and_cert(workdir)
    httpd = _IdpHTTPServer(("127.0.0.1", port or 0), _Handler)
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    entity_id = f"{base_url}/idp/metadata"
    config = IdPConfig().load(python_xmlsec_config({
        "entityid": entity_id,
        "service": {"idp": {
            "name": "tessera test IdP",
            "endpoints": {"single_sign_on_service": [
                (f"{base_url}/sso/redirect", BINDING_HTTP_REDIRECT),
                (f"{base_url}/sso/post", BINDING_HTTP_POST)]},
            "name_id_format": [saml.NAMEID_FORMAT_PERSISTENT, saml.NAMEID_FORMAT_EMAILADDRESS,
                               saml.NAMEID_FORMAT_TRANSIENT],
            "sign_response": sign_response, "sign_assertion": sign_assertion,
            "want_authn_requests_signed": False,
        }},
        "key_file": str(workdir / "idp-key.pem"), "cert_file": str(workdir / "idp-cert.pem"),
        # pysaml2 defaults to RSA-SHA1/SHA-1 (a process-wide singleton): set both explicitly
        "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
        "metadata": {},  # an empty store that add_sp_metadata fills
    }))
    idp = SamlIdp(base_url=base_url, entity_id=entity_id, metadata_url=entity_id,
                  cert_pem=cert_pem, key_pem=key_pem, users=users, sign_response=sign_response,
                  sign_assertion=sign_assertion, _metadata=_idp_metadata(config),
                  _server=use_python_xmlsec(Server(config=config)), _httpd=httpd)
    httpd.idp = idp
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     name="saml-idp", daemon=True).start()
    return idp


# --- the browser side -----------------------------------------------------------------------
class _FormParser(HTMLParser):
    """The first <form>: its action and its named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.closed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and self.action is not None and not self.closed and "name" in a:
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        self.closed = self.closed or (tag == "form" and self.action is not None)


def _form(response: httpx.Response) -> tuple[str, dict[str, str]]:
    if response.status_code != 200:
        raise SamlLoginError(response.status_code, response.text)
    parser = _FormParser()
    parser.feed(response.text)
    if parser.action is None:
        raise SamlLoginError(response.status_code, "no <form> in: " + response.text)
    return urljoin(str(response.url), parser.action), parser.fields


async def saml_login(http: httpx.AsyncClient, redirect_url: str,
                     username: str) -> tuple[str, dict[str, str]]:
    """Follow the SP's redirect to the IdP, sign in as ``username`` and return the auto-post
    form (ACS URL, {"SAMLResponse", "RelayState"}) without posting it. Raises SamlLoginError
    for an IdP error page (401 for an unknown user, 403 for an unregistered SP)."""
    login_url, fields = _form(await http.get(redirect_url, follow_redirects=True))
    acs_url, post = _form(await http.post(login_url, data={**fields, "username": username}))
    return acs_url, {"SAMLResponse": post["SAMLResponse"], "RelayState": post.get("RelayState", "")}
