"""In-process benchmark of ES256 signing through the key backends: ``software`` against
``pkcs11`` (SoftHSM2 or a real token), one line per backend and thread count.

Each measurement signs a JWS-sized input (about 300 octets) with one ES256 key for
``--seconds`` after a short warm-up, from ``--threads`` threads sharing the backend (as the
event loop and worker threads of one process do), and prints signatures per second. Pin it to
one core with ``taskset -c 1`` for per-core figures. With ``--libraries`` it also measures the
two Python PKCS#11 bindings directly (python-pkcs11 and, if installed, PyKCS11), SHA-256 in
software + CKM_ECDSA, one thread, no backend around them: the figures the choice of
python-pkcs11 was made on.

    python scripts/bench_hsm.py --softhsm                  # a throwaway SoftHSM2 token
    python scripts/bench_hsm.py --softhsm --threads 1 2 4 --libraries
    TESSERA_PKCS11_PIN=... python scripts/bench_hsm.py --module /usr/lib/x/libpkcs11.so \\
        --token-label tessera-prod                         # an existing token (makes one key)

``--softhsm`` needs ``apt install softhsm2``; it makes the token in a temporary directory and
points SOFTHSM2_CONF at it for this process only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tenants.keys.backend import KeyBackend
from tenants.keys.backends import Pkcs11Config
from tenants.keys.software import SoftwareBackend

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")
DATA = b"e" * 300


def throughput(sign: Callable[[bytes], bytes], threads: int, seconds: float) -> float:
    """Signatures per second of ``sign`` called in a loop from ``threads`` threads."""
    counts = [0] * threads
    warm_until = time.perf_counter() + min(1.0, seconds / 3)
    while time.perf_counter() < warm_until:
        sign(DATA)
    start = time.perf_counter()
    stop = start + seconds

    def loop(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            sign(DATA)
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def backend_signer(backend: KeyBackend) -> Callable[[bytes], bytes]:
    context = f"bench|{secrets.token_urlsafe(8)}".encode()
    handle = backend.generate("ES256", context=context).handle

    def sign(data: bytes) -> bytes:
        return backend.sign("ES256", handle, data, context=context)

    return sign


def softhsm_token(root: Path, label: str, pin: str) -> None:
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", secrets.token_hex(8)], check=True, capture_output=True)


def library_figures(config: Pkcs11Config, seconds: float) -> dict[str, float]:
    """ES256 through each binding directly: SHA-256 here, CKM_ECDSA in the token."""
    figures: dict[str, float] = {}
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism

    token = pkcs11.lib(config.module).get_token(token_label=config.token_label)
    with token.open(rw=True) as session:  # the process is logged in (the backend did it)
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True)
        _, key = params.generate_keypair(store=False)
        assert isinstance(key, pkcs11.types.SignMixin)
        figures["python-pkcs11"] = throughput(
            lambda d: key.sign(hashlib.sha256(d).digest(), mechanism=Mechanism.ECDSA), 1,
            seconds)
    try:
        import PyKCS11
    except ImportError:
        return figures
    lib = PyKCS11.PyKCS11Lib()
    lib.load(config.module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == config.token_label)
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    _, private = session.generateKeyPair(
        [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
         (PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_EC_PARAMS, P256_PARAMS),
         (PyKCS11.CKA_VERIFY, True)],
        [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
         (PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_SENSITIVE, True),
         (PyKCS11.CKA_EXTRACTABLE, False), (PyKCS11.CKA_SIGN, True)],
        mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
    mechanism = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
    figures["PyKCS11"] = throughput(
        lambda d: bytes(session.sign(private, hashlib.sha256(d).digest(), mechanism)), 1,
        seconds)
    session.closeSession()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--softhsm", action="store_true", help="make a throwaway SoftHSM2 token")
    parser.add_argument("--module", default=SOFTHSM_MODULE)
    parser.add_argument("--token-label", default="tessera-bench")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--libraries", action="store_true",
                        help="also measure python-pkcs11 and PyKCS11 directly")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tessera-bench-hsm-") as tmp:
        if args.softhsm:
            pin = secrets.token_hex(8)
            softhsm_token(Path(tmp), args.token_label, pin)
        else:
            pin = os.environ.get("TESSERA_PKCS11_PIN", "")
        config = Pkcs11Config.of(module=args.module, token_label=args.token_label, pin=pin,
                                 pin_file=os.environ.get("TESSERA_PKCS11_PIN_FILE", ""),
                                 sessions=max(args.threads))
        from tenants.keys.hsm import Pkcs11Backend

        hsm = Pkcs11Backend(config)
        results = []
        for name, backend in (("software", SoftwareBackend(secrets.token_bytes(32))),
                              ("pkcs11", hsm)):
            sign = backend_signer(backend)
            for threads in args.threads:
                rate = throughput(sign, threads, args.seconds)
                results.append({"backend": name, "threads": threads, "es256_per_s": rate})
        libraries = library_figures(config, args.seconds) if args.libraries else {}
        hsm.close()

    if args.json:
        print(json.dumps({"results": results, "libraries": libraries}))
        return 0
    for r in results:
        print(f"{r['backend']:9s} threads={r['threads']:<2d} {r['es256_per_s']:9.0f} ES256 signs/s")
    for name, rate in libraries.items():
        print(f"{name:14s} (direct, 1 thread) {rate:9.0f} ES256 signs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
