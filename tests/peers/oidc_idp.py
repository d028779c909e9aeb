"""A real upstream OpenID Provider for the tests: panva's ``oidc-provider`` (Node.js) on loopback,
started by ``fixtures/peers/oidc_idp.mjs``, playing the enterprise IdP that tessera logs users
in through.

    idp = start_oidc_idp({"clients": [...], "users": {...}}, workdir)
    ...
    callback = await login_at_idp(http, authorize_url, "alice")  # the RP's redirect_uri?code=..
    idp.rotate_keys()
    idp.stop()

``start_oidc_idp`` skips the test (pytest.skip) where Node.js >= 20 is missing, and installs
fixtures/peers' npm dependencies first where they are not installed yet.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from tests.interop.conftest import MIN_NODE_MAJOR, NPM_TIMEOUT, PEERS_DIR
from tests.server_process import free_port

OIDC_IDP_SCRIPT = PEERS_DIR / "oidc_idp.mjs"
STARTUP_TIMEOUT = 30.0
RSA_KEY_POOL = 4  # the first signing key and three rotations
SHUTDOWN_TIMEOUT = 10.0
MAX_HOPS = 20
NODE_PACKAGES = ("oidc-provider", "openid-client")


# --- Node.js and npm ------------------------------------------------------------------------


def node_or_skip() -> str:
    """Path of a Node.js >= 20; pytest.skip where there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the oidc-provider IdP needs Node.js >= 20")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        pytest.skip(f"node {version.stdout.strip()} is too old for oidc-provider 9 "
                    f"(needs >= {MIN_NODE_MAJOR})")
    return node


def ensure_node_packages() -> None:
    """``npm install`` in fixtures/peers unless every package the peers use is there."""
    modules = PEERS_DIR / "node_modules"
    if all((modules / name).is_dir() for name in NODE_PACKAGES):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node is installed but npm is not: cannot install fixtures/peers deps")
    try:
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm install in {PEERS_DIR} took more than {NPM_TIMEOUT}s")
    if proc.returncode != 0:
        pytest.fail(f"npm install in {PEERS_DIR} failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}")


# --- the IdP process ----------------------------------------------------------------------


@dataclass
class OidcIdp:
    """A running oidc-provider. ``issuer`` is ``http://127.0.0.1:<port>`` unless the config
    named another; the endpoints are discovered at ``/.well-known/openid-configuration``."""

    issuer: str
    process: subprocess.Popen[bytes]
    port: int
    config: dict[str, Any]
    log_file: Path
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            response = httpx.get(f"{self.base_url}/.well-known/openid-configuration", timeout=10)
            assert response.status_code == 200, response.text
            self._metadata = response.json()
        return self._metadata

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata()["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata()["token_endpoint"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata()["userinfo_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata()["jwks_uri"])

    def jwks(self) -> dict[str, Any]:
        response = httpx.get(self.jwks_uri, timeout=10)
        assert response.status_code == 200, response.text
        value = response.json()
        assert isinstance(value, dict)
        return value

    def rotate_keys(self, keep_old: bool = False) -> list[str]:
        """New RS256 and ES256 signing keys, first in the JWKS and used from now on; the old ones
        are dropped from the JWKS unless ``keep_old``. Returns the kids now published."""
        response = httpx.post(f"{self.base_url}/__test/rotate",
                              params={"keep_old": "1"} if keep_old else None, timeout=30)
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        kids = response.json()["kids"]
        assert isinstance(kids, list)
        return [str(kid) for kid in kids]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no IdP log)"

    def stop(self) -> None:
        """SIGTERM, then wait; kill where it does not exit in time. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_oidc_idp(config: dict[str, Any], workdir: Path) -> OidcIdp:
    """Start ``oidc_idp.mjs`` with ``config`` (see the script's header for its shape; ``port``
    defaults to a free one) and wait for its READY line. Its stdout and stderr go to
    ``workdir/oidc-idp-<port>.log``. The caller stops it (``OidcIdp.stop``).

    Node with oidc-provider loaded sometimes stalled for many seconds in its first RSA key
    generation (about 1 start in 30 under load), so the RSA signing keys are made here and
    handed over (``rsa_keys``). A start that still has not said READY within
    ``STARTUP_TIMEOUT`` is killed and tried once more."""
    node = node_or_skip()
    ensure_node_packages()
    config = dict(config)
    config.setdefault("rsa_keys", [_rsa_jwk() for _ in range(RSA_KEY_POOL)])
    failures: list[str] = []
    for _attempt in range(2):
        idp, failure = _start_once(node, dict(config), workdir)
        if idp is not None:
            return idp
        failures.append(failure)
    pytest.fail("\n---\n".join(failures))


def _rsa_jwk() -> dict[str, Any]:
    """A private RSA JWK made here (see ``rsa_keys`` in oidc_idp.mjs for why not in Node)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return dict(RSAKey.import_key(key).as_dict(private=True))


def _start_once(node: str, config: dict[str, Any], workdir: Path
                ) -> tuple[OidcIdp | None, str]:
    port = int(config.setdefault("port", free_port()))
    config.setdefault("issuer", f"http://127.0.0.1:{port}")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / f"oidc-idp-{port}.json"
    config_file.write_text(json.dumps(config, indent=2))
    log_file = workdir / f"oidc-idp-{port}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen([node, str(OIDC_IDP_SCRIPT), str(config_file)], cwd=PEERS_DIR,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    idp = OidcIdp(issuer=str(config["issuer"]), process=proc, port=port, config=config,
                  log_file=log_file)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if f"READY {idp.issuer}" in log_file.read_text(errors="replace"):
            return idp, ""
        if proc.poll() is not None:
            return None, (f"oidc_idp.mjs exited with {proc.returncode} before READY:\n"
                          f"{log_file.read_text(errors='replace')}")
        time.sleep(0.05)
    idp.stop()
    return None, (f"oidc_idp.mjs not READY after {STARTUP_TIMEOUT}s:\n"
                  f"{log_file.read_text(errors='replace')}")


# --- a browser, driven by httpx -----------------------------------------------------------


class IdpLoginError(AssertionError):
    """The IdP answered a page that is neither a login form nor a redirect: an error page."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(f"{message}: HTTP {response.status_code} at {response.url}\n"
                         f"{response.text[:2000]}")
        self.response = response


@dataclass
class _Form:
    action: str | None = None
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(action=attr.get("action"),
                                    method=attr.get("method", "get").lower()))
        elif tag == "input" and self.forms and attr.get("name"):
            kind = attr.get("type", "text").lower()
            if kind in ("text", "email"):
                self.forms[-1].text_fields.append(attr["name"])
            elif kind not in ("submit", "button", "checkbox", "radio"):
                self.forms[-1].fields[attr["name"]] = attr.get("value", "")


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


async def login_at_idp(http: httpx.AsyncClient, authorize_url: str, login: str) -> str:
    """Play the user's browser from ``authorize_url`` on: follow the IdP's redirects while they
    stay on the IdP's origin (cookies kept in ``http``), fill in the login form with ``login``
    and submit it, and return the first redirect that leaves the IdP (the RP's redirect_uri with
    code, state and iss, or with an error) without requesting it. Raises IdpLoginError where
    the IdP answers an error page instead (an unknown user, a bad request)."""
    idp_origin = _origin(authorize_url)
    url = authorize_url
    response = await http.get(url, follow_redirects=False)
    submitted = False
    for _ in range(MAX_HOPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != idp_origin:
                return target
            response = await http.get(target, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise IdpLoginError("the IdP answered an error", response)
        parser = _FormParser()
        parser.feed(response.text)
        form = next((f for f in parser.forms if "login" in f.text_fields), None)
        if form is None or submitted:
            raise IdpLoginError("no login form where one was expected", response)
        action = urljoin(str(response.url), form.action or str(response.url))
        if _origin(action) != idp_origin:
            raise IdpLoginError(f"the login form posts off the IdP, to {action}", response)
        submitted = True
        data = {**form.fields, "login": login}
        if form.method == "post":
            response = await http.post(action, data=data, follow_redirects=False)
        else:
            response = await http.get(action, params=data, follow_redirects=False)
    raise AssertionError(f"more than {MAX_HOPS} hops at the IdP, last at {response.url}")


async def follow_within(http: httpx.AsyncClient, url: str) -> str:
    """GET ``url`` and follow the redirects that stay on its origin; return the first redirect
    that leaves it, without requesting it. Fails on any answer that is not a redirect."""
    origin = _origin(url)
    response = await http.get(url, follow_redirects=False)
    for _ in range(MAX_HOPS):
        if not response.is_redirect:
            raise AssertionError(f"expected a redirect: HTTP {response.status_code} at "
                                 f"{response.url}\n{response.text[:2000]}")
        target = urljoin(str(response.url), response.headers["location"])
        if _origin(target) != origin:
            return target
        response = await http.get(target, follow_redirects=False)
    raise AssertionError(f"more than {MAX_HOPS} redirects at {response.url}")


async def sign_in_at_broker(authorize_url: str, idp: OidcIdp, login: str) -> str:
    """Play a fresh browser through a whole sign-in at tessera as an OpenID Provider: its
    authorization endpoint (``authorize_url``) sends the browser to the upstream ``idp``, the
    user logs in there as ``login``, the IdP sends the browser back to tessera's callback, and
    tessera to the client. Returns that last redirect (the client's redirect_uri with code,
    state and iss, or with an error) without requesting it. Tessera and the IdP get a cookie
    jar each (a real browser shares one across the ports of 127.0.0.1; no cookie names clash)."""
    async with httpx.AsyncClient(timeout=20.0) as at_broker, \
            httpx.AsyncClient(timeout=20.0) as at_idp:
        idp_url = await follow_within(at_broker, authorize_url)
        if _origin(idp_url) != _origin(idp.base_url):
            raise AssertionError(f"tessera did not send the browser to the IdP: {idp_url}")
        callback = await login_at_idp(at_idp, idp_url, login)
        if _origin(callback) != _origin(authorize_url):
            raise AssertionError(f"the IdP did not send the browser back to tessera: {callback}")
        return await follow_within(at_broker, callback)
