"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document), as an MCP
client uses them: a URL client_id whose document tessera fetches through its SSRF guards, in a
tenant that opted in (and says so in discovery); every rule refused on its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from broker.client_metadata_document import DocumentClients
from registry.remote_keys import FetchPolicy, RemoteKeys
from tests.conftest import new_tenant

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Documents:
    """A loopback web server answering JSON documents by path."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.hits: list[str] = []
        docs, hits = self.docs, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = json.dumps(docs.get(self.path, {})).encode()
                self.send_response(200 if self.path in docs else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def documents(broker, monkeypatch) -> Iterator[Documents]:
    served = Documents()
    # a development deployment (http to loopback allowed), with a cache of its own
    monkeypatch.setattr(broker, "_documents", DocumentClients(RemoteKeys(
        broker.http, broker.clock, FetchPolicy(allow_http_loopback=True))))
    yield served
    served.server.shutdown()
    served.server.server_close()


def assertion(key: ECKey, client_id: str, aud: str) -> str:
    now = int(time.time())
    return jwt.encode({"alg": "ES256", "kid": "k1"},
                      {"iss": client_id, "sub": client_id, "aud": aud, "iat": now,
                       "exp": now + 60, "jti": f"j-{time.time_ns()}"}, key)


async def token(http, broker, tenant: str, client_id: str, key: ECKey):
    url = f"{broker.issuer(tenant)}/token"
    return await http.post(url, data={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_assertion_type": JWT_BEARER, "client_assertion": assertion(key, client_id, url)})


def document(url: str, key: ECKey, **changes: Any) -> dict[str, Any]:
    doc = {"client_id": url, "client_name": "MCP agent", "token_endpoint_auth_method":
           "private_key_jwt", "jwks": {"keys": [key.as_dict(private=False)]},
           "redirect_uris": ["http://127.0.0.1:33418/callback"], "scope": "read"}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


async def test_document_client_authenticates(http, broker, documents):
    tenant = await new_tenant(broker, client_id_metadata_documents=True)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    url = documents.url("/agent/client.json")
    documents.docs["/agent/client.json"] = document(url, key)
    r = await token(http, broker, tenant, url, key)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    meta = (await http.get(f"{broker.issuer(tenant)}/.well-known/openid-configuration")).json()
    assert meta["client_id_metadata_document_supported"] is True
    # cached: a second request does not fetch again
    assert (await token(http, broker, tenant, url, key)).status_code == 200
    assert documents.hits.count("/agent/client.json") == 1


@pytest.mark.parametrize("case", ["client_id mismatch", "secret", "secret method",
                                  "no jwks", "javascript redirect", "not found", "root path"])
async def test_document_refusals(http, broker, documents, case):
    tenant = await new_tenant(broker, client_id_metadata_documents=True)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    path = "/" if case == "root path" else f"/c/{case.replace(' ', '-')}.json"
    url = documents.url(path)
    doc = {
        "client_id mismatch": document(url, key, client_id=documents.url("/other.json")),
        "secret": document(url, key, client_secret="s3cret"),
        "secret method": document(url, key, token_endpoint_auth_method="client_secret_post"),
        "no jwks": document(url, key, jwks=None),
        "javascript redirect": document(url, key, redirect_uris=["javascript:alert(1)"]),
        "not found": None, "root path": document(url, key),
    }[case]
    if doc is not None:
        documents.docs[path] = doc
    r = await token(http, broker, tenant, url, key)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/client.json",  # link-local: cloud metadata
    "https://10.0.0.7/client.json",
    "https://user:pw@client.example/client.json",
    "http://client.example/client.json",
])
async def test_ssrf_guard_refuses_without_fetching(http, broker, url):
    tenant = await new_tenant(broker, client_id_metadata_documents=True)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    started = time.monotonic()
    r = await token(http, broker, tenant, url, key)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert time.monotonic() - started < 2  # refused before any connection attempt


async def test_tenant_that_did_not_opt_in(http, broker, documents):
    tenant = await new_tenant(broker)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    url = documents.url("/agent/client.json")
    documents.docs["/agent/client.json"] = document(url, key)
    r = await token(http, broker, tenant, url, key)
    assert r.status_code == 401 and documents.hits == []
    meta = (await http.get(f"{broker.issuer(tenant)}/.well-known/openid-configuration")).json()
    assert meta["client_id_metadata_document_supported"] is False


@pytest.mark.parametrize("client_id", ["https://[::1/client.json", "https://", "http://[zz]/x",
                                       "https://client.example/" + "a" * 3000])
async def test_hostile_client_id_urls(http, broker, client_id):
    tenant = await new_tenant(broker, client_id_metadata_documents=True)
    r = await http.post(f"{broker.issuer(tenant)}/token", data={
        "grant_type": "client_credentials", "client_id": client_id})
    assert r.status_code in (400, 401), r.text
    r = await http.get(f"{broker.issuer(tenant)}/authorize", params={
        "client_id": client_id, "response_type": "code", "redirect_uri": "https://x.example/cb"})
    assert r.status_code == 400, r.text
