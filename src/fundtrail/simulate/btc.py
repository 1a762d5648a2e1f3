"""Bitcoin serialisation for simulated worlds: keys, scripts, transactions, blocks and blk*.dat framing.

Everything here produces real consensus serialisation: txids are the double SHA-256 of the non-witness
serialisation, merkle roots are computed as Bitcoin Core does (duplicating the last hash of odd levels),
segwit blocks carry the witness commitment in the coinbase, coinbases start with the BIP34 height, and
block headers chain by previous hash with regtest proof of work (bits 0x207fffff, a few nonce tries).

Keys are synthetic: a "public key" is 0x02 followed by 32 pseudo-random bytes (not checked to be a curve
point) and signatures are DER-shaped pseudo-random bytes. Nothing verifies signatures when block files are
read, and addresses derive correctly from the scripts (hash160 of the public key, etc.).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fundtrail.model.address import b58check_encode, hash160, segwit_encode, sha256d
from fundtrail.model.chain import BitcoinNetwork

COIN = 100_000_000
MAX_BLK_FILE = 128 * 1024 * 1024  # Bitcoin Core's MAX_BLOCKFILE_SIZE
REGTEST_BITS = 0x207FFFFF


def _sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def push(data: bytes) -> bytes:
    """A minimal script push of ``data``."""
    n = len(data)
    if n < 0x4C:
        return bytes((n,)) + data
    if n <= 0xFF:
        return b"\x4c" + bytes((n,)) + data
    if n <= 0xFFFF:
        return b"\x4d" + struct.pack("<H", n) + data
    return b"\x4e" + struct.pack("<I", n) + data


def script_num(n: int) -> bytes:
    """CScriptNum serialisation (little-endian, sign bit) of a non-negative integer."""
    if n == 0:
        return b""
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0)
    return bytes(out)


def bip34_height(height: int) -> bytes:
    """The height as ``CScript() << nHeight`` writes it (OP_0 / OP_1..OP_16 for small heights)."""
    if height == 0:
        return b"\x00"
    if 1 <= height <= 16:
        return bytes((0x50 + height,))
    return push(script_num(height))


# --- keys and scripts --------------------------------------------------------------------------------

SCRIPT_TYPES = ("p2pkh", "p2wpkh", "p2sh", "p2tr")


@dataclass(frozen=True, slots=True)
class Key:
    """A synthetic key: 33-byte compressed-looking public key and 32-byte x-only key (taproot)."""

    secret: bytes

    @property
    def pub(self) -> bytes:
        return b"\x02" + _sha256(b"pub" + self.secret)

    @property
    def xonly(self) -> bytes:
        return _sha256(b"xonly" + self.secret)

    def sig(self, msg: bytes) -> bytes:
        """A DER-shaped 71-byte signature (plus sighash byte) — not a valid ECDSA signature."""
        h = _sha256(self.secret + msg)
        r = b"\x00" + h[:31] if h[0] & 0x80 else h
        s = _sha256(h)
        s = b"\x00" + s[:31] if s[0] & 0x80 else s
        return b"\x30\x44\x02\x20" + r[:32] + b"\x02\x20" + s[:32] + b"\x01"

    def schnorr(self, msg: bytes) -> bytes:
        return _sha256(b"r" + self.secret + msg) + _sha256(b"s" + self.secret + msg)


@dataclass(frozen=True, slots=True)
class Owned:
    """An address a simulated party controls: its key, script type, scriptPubKey and address string."""

    key: Key
    kind: str  # p2pkh | p2wpkh | p2sh (P2SH-P2WPKH) | p2tr
    script: bytes
    address: str

    def spend(self, msg: bytes) -> tuple[bytes, list[bytes]]:
        """(scriptSig, witness) spending an output locked to this address."""
        k = self.key
        if self.kind == "p2pkh":
            return push(k.sig(msg)) + push(k.pub), []
        if self.kind == "p2wpkh":
            return b"", [k.sig(msg), k.pub]
        if self.kind == "p2sh":
            redeem = b"\x00\x14" + hash160(k.pub)
            return push(redeem), [k.sig(msg), k.pub]
        if self.kind == "p2tr":
            return b"", [k.schnorr(msg)]
        raise ValueError(self.kind)


def make_owned(key: Key, kind: str, net: BitcoinNetwork) -> Owned:
    if kind == "p2pkh":
        h = hash160(key.pub)
        return Owned(key, kind, b"\x76\xa9\x14" + h + b"\x88\xac", b58check_encode(net.p2pkh_prefix, h))
    if kind == "p2wpkh":
        h = hash160(key.pub)
        return Owned(key, kind, b"\x00\x14" + h, segwit_encode(net.hrp, 0, h))
    if kind == "p2sh":
        h = hash160(b"\x00\x14" + hash160(key.pub))
        return Owned(key, kind, b"\xa9\x14" + h + b"\x87", b58check_encode(net.p2sh_prefix, h))
    if kind == "p2tr":
        x = key.xonly
        return Owned(key, kind, b"\x51\x20" + x, segwit_encode(net.hrp, 1, x))
    raise ValueError(f"unknown script type {kind!r}")


def op_return_script(data: bytes) -> bytes:
    return b"\x6a" + push(data)


# --- transactions --------------------------------------------------------------------------------------

@dataclass(slots=True)
class TxIn:
    prev_txid: bytes  # internal byte order (as serialised)
    prev_n: int
    script_sig: bytes = b""
    witness: list[bytes] = field(default_factory=list)
    sequence: int = 0xFFFFFFFD


@dataclass(slots=True)
class TxOut:
    value: int
    script: bytes


def serialize_tx(version: int, vin: list[TxIn], vout: list[TxOut], locktime: int,
                 witness: bool) -> bytes:
    parts = [struct.pack("<i", version)]
    if witness:
        parts.append(b"\x00\x01")
    parts.append(varint(len(vin)))
    for i in vin:
        parts += [i.prev_txid, struct.pack("<I", i.prev_n), varint(len(i.script_sig)), i.script_sig,
                  struct.pack("<I", i.sequence)]
    parts.append(varint(len(vout)))
    for o in vout:
        parts += [struct.pack("<q", o.value), varint(len(o.script)), o.script]
    if witness:
        for i in vin:
            parts.append(varint(len(i.witness)))
            for item in i.witness:
                parts += [varint(len(item)), item]
    parts.append(struct.pack("<I", locktime))
    return b"".join(parts)


@dataclass(slots=True)
class RawTx:
    """A finished transaction: its bytes (with witness when it has one), txid and wtxid (internal order)."""

    raw: bytes
    txid: bytes
    wtxid: bytes

    @property
    def txid_hex(self) -> str:
        return self.txid[::-1].hex()


def finish_tx(version: int, vin: list[TxIn], vout: list[TxOut], locktime: int = 0) -> RawTx:
    has_wit = any(i.witness for i in vin)
    base = serialize_tx(version, vin, vout, locktime, False)
    txid = sha256d(base)
    if not has_wit:
        return RawTx(base, txid, txid)
    full = serialize_tx(version, vin, vout, locktime, True)
    return RawTx(full, txid, sha256d(full))


def merkle_root(hashes: list[bytes]) -> bytes:
    level = list(hashes)
    if not level:
        return b"\x00" * 32
    while len(level) > 1:
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


WITNESS_RESERVED = b"\x00" * 32


def merkle_root_array(hashes: np.ndarray) -> bytes:
    """:func:`merkle_root` of an (n, 32) uint8 array, in one compiled call (the ingester's batch kernel)."""
    from fundtrail.ingest.bitcoin.hashing import merkle_roots

    n = len(hashes)
    if not n:
        return b"\x00" * 32
    return merkle_roots(hashes, np.zeros(1, np.int64), np.array([n], np.int64))[0].tobytes()


def coinbase_tx(height: int, outputs: list[TxOut], wtxids: list[bytes] | None, tag: bytes = b"/fundtrail-sim/",
                *, witness_root: bytes | None = None) -> RawTx:
    """A coinbase paying ``outputs``; with ``wtxids`` (the block's other transactions) or their
    ``witness_root`` (the merkle root of a zero hash and the wtxids) it carries the BIP141 witness
    commitment."""
    sig = bip34_height(height) + push(tag)
    vin = [TxIn(b"\x00" * 32, 0xFFFFFFFF, sig, [], 0xFFFFFFFF)]
    vout = list(outputs)
    if wtxids is not None or witness_root is not None:
        root = witness_root if witness_root is not None else merkle_root([b"\x00" * 32] + wtxids)
        commitment = sha256d(root + WITNESS_RESERVED)
        vout.append(TxOut(0, b"\x6a\x24\xaa\x21\xa9\xed" + commitment))
        vin[0].witness = [WITNESS_RESERVED]
    return finish_tx(2, vin, vout, 0)


def _target(bits: int) -> int:
    exp = bits >> 24
    mant = bits & 0xFFFFFF
    return mant << (8 * (exp - 3))


def block_header(version: int, prev: bytes, merkle: bytes, time: int, bits: int = REGTEST_BITS
                 ) -> tuple[bytes, bytes]:
    """(header bytes, block hash internal order), with a nonce meeting the target (regtest: ~2 tries)."""
    target = _target(bits)
    head = struct.pack("<i", version) + prev + merkle + struct.pack("<II", time, bits)
    nonce = 0
    while True:
        h = head + struct.pack("<I", nonce)
        bh = sha256d(h)
        if int.from_bytes(bh, "little") <= target:
            return h, bh
        nonce += 1


def regtest_genesis() -> tuple[bytes, bytes]:
    """The regtest genesis block (raw bytes, hash internal order): mainnet's genesis transaction with
    regtest's time, bits and nonce."""
    sig = bytes.fromhex(
        "04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b"
        "206f66207365636f6e64206261696c6f757420666f722062616e6b73")
    pk = bytes.fromhex(
        "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c"
        "384df7ba0b8d578a4c702b6bf11d5f")
    tx = finish_tx(1, [TxIn(b"\x00" * 32, 0xFFFFFFFF, sig, [], 0xFFFFFFFF)],
                   [TxOut(50 * COIN, push(pk) + b"\xac")], 0)
    head = struct.pack("<i", 1) + b"\x00" * 32 + tx.txid + struct.pack("<III", 1296688602, REGTEST_BITS, 2)
    return head + varint(1) + tx.raw, sha256d(head)


class BlockFileWriter:
    """Writes blocks into ``blk00000.dat``, ``blk00001.dat`` … with Bitcoin Core's framing (network
    magic, little-endian length, block), starting a new file before one would exceed 128 MiB."""

    def __init__(self, directory: Path, magic: bytes, max_file: int = MAX_BLK_FILE) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.magic = magic
        self.max_file = max_file
        self.file_no = -1
        self._f: BinaryIO | None = None
        self._size = 0
        self.bytes_written = 0
        self._open_next()

    def _open_next(self) -> None:
        if self._f is not None:
            self._f.close()
        self.file_no += 1
        self._f = open(self.dir / f"blk{self.file_no:05d}.dat", "wb")
        self._size = 0

    def write(self, block: bytes) -> None:
        rec = self.magic + struct.pack("<I", len(block)) + block
        if self._size and self._size + len(rec) > self.max_file:
            self._open_next()
        assert self._f is not None
        self._f.write(rec)
        self._size += len(rec)
        self.bytes_written += len(rec)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
