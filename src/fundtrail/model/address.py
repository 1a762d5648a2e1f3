"""Address encodings: base58check, bech32 / bech32m (BIP-173, BIP-350), EVM hex with EIP-55 checksums.

``normalize(chain_kind, text, network=...)`` returns an address as tables store it (lower-case hex for EVM,
the canonical string for Bitcoin) or raises :class:`AddressError` saying why it is not valid.
"""

from __future__ import annotations

import hashlib
import re

from Crypto.Hash import keccak as _keccak

from fundtrail.errors import AddressError
from fundtrail.model.chain import BITCOIN_NETWORKS, BitcoinNetwork

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def keccak256(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


# --- base58check -------------------------------------------------------------------------------------

def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise ValueError(f"character {c!r} is not base58") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def b58check_encode(version: int, payload: bytes) -> str:
    raw = bytes([version]) + payload
    return b58encode(raw + sha256d(raw)[:4])


def b58check_decode(text: str) -> tuple[int, bytes]:
    raw = b58decode(text)
    if len(raw) < 5:
        raise ValueError("too short for base58check")
    body, check = raw[:-4], raw[-4:]
    if sha256d(body)[:4] != check:
        raise ValueError("base58check checksum mismatch")
    return body[0], body[1:]


# --- bech32 / bech32m ----------------------------------------------------------------------------------

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    ret = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise ValueError("invalid data value")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise ValueError("invalid padding")
    return ret


def segwit_encode(hrp: str, witver: int, program: bytes) -> str:
    const = _BECH32_CONST if witver == 0 else _BECH32M_CONST
    data = [witver] + _convertbits(program, 8, 5, True)
    values = _hrp_expand(hrp) + data
    polymod = _polymod(values + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[d] for d in data + checksum)


def segwit_decode(text: str) -> tuple[str, int, bytes]:
    """Decode a segwit address; returns (hrp, witness version, program). Enforces BIP-173/350 rules."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise ValueError("invalid character")
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    s = text.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s) or len(s) > 90:
        raise ValueError("bad bech32 separator or length")
    hrp = s[:pos]
    try:
        data = [BECH32_CHARSET.index(c) for c in s[pos + 1:]]
    except ValueError:
        raise ValueError("character not in the bech32 alphabet") from None
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise ValueError("bech32 checksum mismatch")
    witver = data[0]
    program = bytes(_convertbits(data[1:-6], 5, 8, False))
    if witver > 16 or not 2 <= len(program) <= 40:
        raise ValueError("bad witness version or program length")
    if witver == 0 and len(program) not in (20, 32):
        raise ValueError("v0 program must be 20 or 32 bytes")
    if (witver == 0) != (const == _BECH32_CONST):
        raise ValueError("wrong checksum variant for the witness version (bech32 vs bech32m)")
    return hrp, witver, program


# --- EVM -------------------------------------------------------------------------------------------------

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")


def eip55(address: str) -> str:
    """The EIP-55 checksummed form of a 0x address."""
    a = address.lower().removeprefix("0x")
    h = keccak256(a.encode()).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(h[i], 16) >= 8 else c for i, c in enumerate(a))


def normalize_evm(text: str) -> str:
    """Validate an EVM address (EIP-55 checked where the case is mixed); return it lower-case."""
    t = text.strip()
    if not _HEX40.match(t):
        raise AddressError("not a 0x-prefixed 40-hex-digit address", address=text)
    body = t[2:]
    if body != body.lower() and body != body.upper() and eip55(t) != t:
        raise AddressError("EIP-55 checksum mismatch", address=text)
    return t.lower()


# --- Bitcoin ---------------------------------------------------------------------------------------------

def bitcoin_address_kind(text: str, network: BitcoinNetwork) -> str:
    """Return the script type an address encodes (p2pkh, p2sh, p2wpkh, p2wsh, p2tr, witness_unknown)."""
    t = text.strip()
    if any(t.lower().startswith(n.hrp + "1") for n in BITCOIN_NETWORKS.values()):
        try:
            hrp, ver, prog = segwit_decode(t)
        except ValueError as e:
            raise AddressError(str(e), address=text, chain=network.chain) from None
        if hrp != network.hrp:
            raise AddressError(f"human-readable part {hrp!r} is not {network.hrp!r}", address=text,
                               chain=network.chain)
        if ver == 0:
            return "p2wpkh" if len(prog) == 20 else "p2wsh"
        if ver == 1 and len(prog) == 32:
            return "p2tr"
        return "witness_unknown"
    try:
        version, payload = b58check_decode(t)
    except ValueError as e:
        raise AddressError(str(e), address=text, chain=network.chain) from None
    if len(payload) != 20:
        raise AddressError("base58 payload is not 20 bytes", address=text, chain=network.chain)
    if version == network.p2pkh_prefix:
        return "p2pkh"
    if version == network.p2sh_prefix:
        return "p2sh"
    raise AddressError(f"version byte {version:#04x} is not one of {network.name}'s", address=text,
                       chain=network.chain)


def normalize_bitcoin(text: str, network: BitcoinNetwork) -> str:
    t = text.strip()
    bitcoin_address_kind(t, network)
    return t.lower() if t.lower().startswith(network.hrp + "1") else t


def normalize(chain: str, text: str) -> str:
    """Validate ``text`` as an address of ``chain`` and return its stored form.

    Bitcoin chains are known by their table name (bitcoin, testnet, signet, regtest); every other chain
    name is taken as an EVM chain.
    """
    for net in BITCOIN_NETWORKS.values():
        if net.chain == chain:
            return normalize_bitcoin(text, net)
    return normalize_evm(text)
