"""Serialise transactions and blocks (legacy and segwit) and build the standard output scripts.

Used to write block files (tests, benchmarks, and anyone who needs a chain of their own) and by the
round-trip property test of the parser. Records are frozen dataclasses; hashes in internal byte order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from fundtrail.model.address import sha256d
from fundtrail.model.chain import BitcoinNetwork


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


@dataclass(frozen=True, slots=True)
class TxIn:
    prev_txid: bytes  # internal byte order
    prev_n: int
    script_sig: bytes = b""
    sequence: int = 0xFFFFFFFF
    witness: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    script: bytes


@dataclass(frozen=True, slots=True)
class Tx:
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    version: int = 2
    locktime: int = 0

    @property
    def has_witness(self) -> bool:
        return any(i.witness for i in self.inputs)

    def serialize(self, with_witness: bool = True) -> bytes:
        seg = with_witness and self.has_witness
        out = [struct.pack("<i", self.version)]
        if seg:
            out.append(b"\x00\x01")
        out.append(varint(len(self.inputs)))
        for i in self.inputs:
            out += [i.prev_txid, struct.pack("<I", i.prev_n), varint(len(i.script_sig)), i.script_sig,
                    struct.pack("<I", i.sequence)]
        out.append(varint(len(self.outputs)))
        for o in self.outputs:
            out += [struct.pack("<q", o.value), varint(len(o.script)), o.script]
        if seg:
            for i in self.inputs:
                out.append(varint(len(i.witness)))
                for item in i.witness:
                    out += [varint(len(item)), item]
        out.append(struct.pack("<I", self.locktime))
        return b"".join(out)

    def txid(self) -> bytes:
        return sha256d(self.serialize(with_witness=False))


@dataclass(frozen=True, slots=True)
class Block:
    prev_hash: bytes  # internal order
    txs: tuple[Tx, ...]
    time: int = 1_700_000_000
    bits: int = 0x207FFFFF  # regtest's minimum difficulty
    nonce: int = 0
    version: int = 0x20000000
    merkle_root: bytes | None = field(default=None)

    def header(self) -> bytes:
        root = self.merkle_root if self.merkle_root is not None else merkle([t.txid() for t in self.txs])
        return struct.pack("<i", self.version) + self.prev_hash + root + struct.pack("<III", self.time, self.bits,
                                                                                    self.nonce)

    def hash(self) -> bytes:
        return sha256d(self.header())

    def serialize(self) -> bytes:
        return self.header() + varint(len(self.txs)) + b"".join(t.serialize() for t in self.txs)


def merkle(txids: list[bytes]) -> bytes:
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def coinbase(height: int, value: int, script: bytes, tag: bytes = b"") -> Tx:
    """A coinbase stating its height (BIP-34)."""
    hb = height.to_bytes((height.bit_length() + 8) // 8 or 1, "little")
    sig = bytes([len(hb)]) + hb + tag
    if len(sig) < 2:
        sig += b"\x00"
    return Tx((TxIn(b"\0" * 32, 0xFFFFFFFF, sig),), (TxOut(value, script),))


def frame(block: bytes, network: BitcoinNetwork) -> bytes:
    """One block-file record: magic, size, block."""
    return network.magic + struct.pack("<I", len(block)) + block


# --- output scripts ----------------------------------------------------------------------------------------

def push(data: bytes) -> bytes:
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return b"\x4c" + bytes([n]) + data
    if n <= 0xFFFF:
        return b"\x4d" + struct.pack("<H", n) + data
    return b"\x4e" + struct.pack("<I", n) + data


def p2pk(pubkey: bytes) -> bytes:
    return push(pubkey) + b"\xac"


def p2pkh(h160: bytes) -> bytes:
    return b"\x76\xa9\x14" + h160 + b"\x88\xac"


def p2sh(h160: bytes) -> bytes:
    return b"\xa9\x14" + h160 + b"\x87"


def p2wpkh(h160: bytes) -> bytes:
    return b"\x00\x14" + h160


def p2wsh(h256: bytes) -> bytes:
    return b"\x00\x20" + h256


def p2tr(xonly: bytes) -> bytes:
    return b"\x51\x20" + xonly


def witness_program(version: int, program: bytes) -> bytes:
    return bytes([0 if version == 0 else 0x50 + version, len(program)]) + program


def multisig(m: int, pubkeys: list[bytes]) -> bytes:
    return bytes([0x50 + m]) + b"".join(push(k) for k in pubkeys) + bytes([0x50 + len(pubkeys)]) + b"\xae"


def op_return(*pushes: bytes) -> bytes:
    return b"\x6a" + b"".join(push(p) for p in pushes)
