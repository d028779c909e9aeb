"""A pysaml2 crypto backend that signs and verifies XML in process with python-xmlsec (the
``xmlsec`` package tessera depends on anyway) instead of running the ``xmlsec1`` program, so
the pysaml2 peers (tests/peers/saml_idp.py, tests/peers/saml_sps.py) work on a machine
without it.

pysaml2 picks its backend by name (``crypto_backend``: ``xmlsec1`` runs the program,
``XMLSecurity`` expects pyXMLSecurity, another package that is also imported as ``xmlsec``).
:func:`use_python_xmlsec` builds a pysaml2 entity with ``XMLSecurity`` (so nothing looks for
the program) and then replaces the entity's backend with :class:`PythonXmlsecBackend`. Only
signing and verifying are implemented: the peers encrypt nothing.

What pysaml2 hands the backend is what it hands ``xmlsec1``: the whole document, the qualified
name of the element to sign or check (``urn:...:assertion:Assertion``) and its ``ID``; signing
fills in the ``ds:Signature`` template pysaml2 put into that element. Verification uses only
the certificate pysaml2 passes (from the peer's metadata), never the document's ``KeyInfo``,
and refuses references that are not same-document (``xmlsec1 --enabled-reference-uris
empty,same-doc``).
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import xmlsec
from cryptography.utils import CryptographyDeprecationWarning
from lxml import etree

with warnings.catch_warnings():  # pysaml2 still imports CFB from its deprecated location
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2.entity import Entity
    from saml2.sigver import (
        CryptoBackend,
        RSACrypto,
        SignatureError,
        XmlsecError,
        import_rsa_key_from_file,
    )

DS = "http://www.w3.org/2000/09/xmldsig#"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_blank_text=False)
E = TypeVar("E", bound=Entity)


def _target(root: etree._Element, node_name: str, node_id: str | None) -> etree._Element:
    """The element called ``node_name`` ("namespace:local") whose ``ID`` is ``node_id`` (the
    first one of that name when pysaml2 gives no ID)."""
    namespace, _, local = node_name.rpartition(":")
    for element in root.iter(f"{{{namespace}}}{local}"):
        if node_id is None or element.get("ID") == node_id:
            return element
    raise XmlsecError(f"no {node_name} with ID {node_id!r} in the document")


def _own_signature(element: etree._Element) -> etree._Element:
    """The enveloped ``ds:Signature`` of ``element`` (a direct child, as SAML places it)."""
    signature = element.find(f"{{{DS}}}Signature")
    if signature is None:
        raise XmlsecError(f"{etree.QName(element).localname} {element.get('ID')} is not signed")
    return signature


def _parse(text: str | bytes) -> etree._Element:
    return etree.fromstring(text.encode() if isinstance(text, str) else text, _PARSER)


class PythonXmlsecBackend(CryptoBackend):
    """pysaml2's ``CryptoBackend`` on python-xmlsec (libxmlsec1 in process)."""

    @property
    def version(self) -> str:
        return ".".join(str(part) for part in xmlsec.get_libxmlsec_version())

    def sign_statement(self, statement: Any, node_name: str, key_file: str,
                       node_id: str | None) -> str:
        root = _parse(statement if isinstance(statement, str | bytes) else str(statement))
        element = _target(root, node_name, node_id)
        ctx = xmlsec.SignatureContext()
        ctx.register_id(element, "ID")
        try:
            ctx.key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
            ctx.sign(_own_signature(element))
        except xmlsec.Error as exc:
            raise SignatureError(f"signing {node_name} {node_id}: {exc}") from exc
        return etree.tostring(root, encoding="unicode")

    def validate_signature(self, signedtext: str | bytes, cert_file: str, cert_type: str,
                           node_name: str, node_id: str | None) -> bool:
        """True when the element's own signature verifies with the certificate in
        ``cert_file``; raises ``SignatureError`` otherwise (pysaml2 then tries its next
        certificate, as it does when ``xmlsec1`` exits non-zero)."""
        if cert_type != "pem":
            raise SignatureError(f"only PEM certificates, not {cert_type}")
        element = _target(_parse(signedtext), node_name, node_id)
        signature = _own_signature(element)
        for reference in signature.iter(f"{{{DS}}}Reference"):
            if not reference.get("URI", "").startswith("#") and reference.get("URI"):
                raise SignatureError(f"reference to another document: {reference.get('URI')}")
        ctx = xmlsec.SignatureContext()
        ctx.register_id(element, "ID")
        try:
            ctx.key = xmlsec.Key.from_file(cert_file, xmlsec.constants.KeyDataFormatCertPem)
            ctx.verify(signature)
        except xmlsec.Error as exc:
            raise SignatureError(f"{node_name} {node_id} does not verify: {exc}") from exc
        return True


def python_xmlsec_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a pysaml2 configuration dict) set up for :func:`use_python_xmlsec`: the
    ``XMLSecurity`` backend name, so building the entity never looks for ``xmlsec1``."""
    return {**config, "crypto_backend": "XMLSecurity", "xmlsec_binary": None}


def use_python_xmlsec(entity: E) -> E:
    """Give ``entity`` (a pysaml2 ``Server`` or ``Saml2Client`` built from a
    :func:`python_xmlsec_config` configuration) the python-xmlsec backend for XML signatures,
    and pysaml2's own RSA signer (``cryptography``) for HTTP-Redirect binding signatures, the
    one ``xmlsec1`` configurations get."""
    entity.sec.crypto = PythonXmlsecBackend()
    if entity.config.key_file:
        entity.sec.sec_backend = RSACrypto(import_rsa_key_from_file(entity.config.key_file))
    return entity
