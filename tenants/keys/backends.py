"""Which key backends a process runs: the one that makes new keys, and the others that still
hold keys of this deployment (a tenant moved to the HSM by rotation keeps its software keys
until they retire, so the software backend is always there).

This module does not import the PKCS#11 library: a deployment on software keys runs without it
(``pip install tessera[hsm]`` brings python-pkcs11).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tenants.keys.backend import KeyBackend
from tenants.keys.software import SoftwareBackend

BACKEND_NAMES = ("software", "pkcs11")


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the PKCS#11 keys live: the module (a shared library path), the token (by label;
    one token per deployment) and the user PIN, which no repr, log line or error shows."""

    module: str
    token_label: str
    pin: str = field(repr=False)
    sessions: int = 4  # session pool size: the concurrency of signing in one process

    @classmethod
    def of(cls, *, module: str, token_label: str, pin: str = "", pin_file: str = "",
           sessions: int = 4) -> Pkcs11Config:
        """The configuration from settings; the PIN from ``pin`` (TESSERA_PKCS11_PIN) or else
        read from ``pin_file`` (TESSERA_PKCS11_PIN_FILE), one line."""
        if not module:
            raise ValueError("the pkcs11 key backend needs pkcs11_module (TESSERA_PKCS11_MODULE),"
                             " the path of the token's PKCS#11 library")
        if not token_label:
            raise ValueError("the pkcs11 key backend needs pkcs11_token_label "
                             "(TESSERA_PKCS11_TOKEN_LABEL)")
        if not pin and pin_file:
            try:
                pin = Path(pin_file).read_text(encoding="utf-8").strip("\r\n")
            except OSError as exc:
                raise ValueError(f"cannot read the PKCS#11 PIN file {pin_file!r} "
                                 f"({type(exc).__name__})") from None
        if not pin:
            raise ValueError("the pkcs11 key backend needs the token's user PIN: set "
                             "TESSERA_PKCS11_PIN or TESSERA_PKCS11_PIN_FILE")
        if sessions < 1:
            raise ValueError("pkcs11_sessions must be at least 1")
        return cls(module, token_label, pin, sessions)


def key_backends(
    kind: str, master_key: bytes, *, module: str = "", token_label: str = "", pin: str = "",
    pin_file: str = "", sessions: int = 4, accepted: tuple[bytes, ...] = (),
) -> tuple[KeyBackend, tuple[KeyBackend, ...]]:
    """(the backend new keys are made in, the other backends whose keys still sign).

    ``kind`` is ``software`` or ``pkcs11``. With ``software`` and a PKCS#11 module configured,
    the token is opened too, so keys already in it keep signing until rotated out."""
    if kind not in BACKEND_NAMES:
        raise ValueError(f"unknown key backend {kind!r}; choose one of {BACKEND_NAMES}")
    software = SoftwareBackend(master_key, accepted=accepted)
    if kind == "software" and not module:
        return software, ()
    from tenants.keys.hsm import Pkcs11Backend  # needs python-pkcs11 (the hsm extra)

    hsm = Pkcs11Backend(Pkcs11Config.of(module=module, token_label=token_label, pin=pin,
                                        pin_file=pin_file, sessions=sessions))
    return (hsm, (software,)) if kind == "pkcs11" else (software, (hsm,))
