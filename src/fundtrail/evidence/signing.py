"""Ed25519 keys and signatures over a bundle's manifest (RFC 8032, pure Ed25519).

Keys are PEM files any tool reads: the private key as PKCS#8 (``-----BEGIN PRIVATE KEY-----``), the
public key as SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``). The signature is the 64 raw bytes
over the exact bytes of ``manifest.json``, so OpenSSL 3 checks it without fundtrail::

    openssl pkeyutl -verify -pubin -inkey signer.pub.pem -rawin -in manifest.json -sigfile manifest.sig
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from fundtrail.errors import InputError, UsageError


def keygen(out: Path | str) -> tuple[Path, Path]:
    """Write a new key pair: ``out`` (private, mode 0600) and ``out.pub`` (public). Refuses to overwrite."""
    priv = Path(out)
    pub = priv.with_name(priv.name + ".pub")
    for p in (priv, pub):
        if p.exists():
            raise UsageError(f"{p} exists: not overwriting a key")
    key = ECC.generate(curve="ed25519")
    priv.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.export_key(format="PEM"))
    pub.write_text(key.public_key().export_key(format="PEM"))
    return priv, pub


def load_private(path: Path | str) -> ECC.EccKey:
    p = Path(path)
    try:
        key = ECC.import_key(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{p}: no such key file") from None
    except (ValueError, IndexError, TypeError) as e:
        raise InputError(f"not an Ed25519 private key in PEM: {e}", path=p) from None
    if key.curve != "Ed25519" or not key.has_private():
        raise InputError("not an Ed25519 private key", path=p)
    return key


def public_pem(key: ECC.EccKey) -> str:
    return key.public_key().export_key(format="PEM")


def load_public(text: str, where: str) -> ECC.EccKey:
    try:
        key = ECC.import_key(text)
    except (ValueError, IndexError, TypeError) as e:
        raise InputError(f"not an Ed25519 public key in PEM: {e}", path=where) from None
    if key.curve != "Ed25519":
        raise InputError("not an Ed25519 key", path=where)
    return key.public_key()


def fingerprint(key: ECC.EccKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex (what the verify summary names the signer by)."""
    return hashlib.sha256(key.public_key().export_key(format="raw")).hexdigest()


def sign(key: ECC.EccKey, data: bytes) -> bytes:
    return eddsa.new(key, "rfc8032").sign(data)


def verify(key: ECC.EccKey, data: bytes, signature: bytes) -> bool:
    try:
        eddsa.new(key.public_key(), "rfc8032").verify(data, signature)
        return True
    except ValueError:
        return False
