"""What the admin lifecycle tests share: the admin header, SAML IdP keys and metadata, a
loopback webhook receiver, a replica that may call it, and reading a tenant's audit events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from broker.runtime import Broker
from tenants.models import AuditEvent
from tests.conftest import ADMIN_TOKEN, OffsetClock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IDP = "https://idp.corp.example/saml"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
Key = tuple[bytes, bytes]  # a SAML IdP's private key and certificate (PEM)


def new_key() -> Key:
    key, name = rsa.generate_private_key(65537, 2048), x509.Name([])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
            .public_key(key.public_key()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def metadata(key: Key, entity_id: str = IDP) -> str:
    der = x509.load_pem_x509_certificate(key[1]).public_bytes(serialization.Encoding.DER)
    return (f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:'
            'protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{base64.b64encode(der).decode()}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            f'<md:SingleSignOnService Binding="{REDIRECT}" Location="https://idp.corp.example'
            '/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')




class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers, body) and answers 204."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received.append(({k.lower(): v for k, v in self.headers.items()},
                                 self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def nth(self, count: int, within: float = 10.0) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            assert time.monotonic() < deadline, "no webhook arrived"
            await asyncio.sleep(0.02)
        return self.received[count - 1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def loopback_replica(broker: Broker) -> tuple[Broker, OffsetClock]:
    """Another replica of ``broker`` that may call http://127.0.0.1 (development setting),
    with a clock of its own."""
    clock = OffsetClock()
    settings = broker.settings.replace(allow_http_loopback=True)
    return Broker.build(settings, clock=clock), clock


async def events(broker: Broker, tenant: str, action: str | None = None) -> list[AuditEvent]:
    async with broker.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.tenant_id == tenant)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list((await session.execute(query.order_by(AuditEvent.seq))).scalars())
