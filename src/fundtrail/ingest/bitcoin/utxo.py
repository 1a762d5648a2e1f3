"""Previous-output resolution with bounded memory: the unspent outputs in an on-disk index of sorted runs.

The index (:mod:`fundtrail.ingest.bitcoin.runs`, file group ``utxo_index``) maps an outpoint to the value,
address id and script type of the output. Each batch adds its outputs as a new run, then resolves its
inputs newest run first and marks what they spend deleted (so an output created and spent in the same
batch never reaches disk); runs merge as they grow, dropping spent records. The newest runs are held in
RAM up to a memory budget, older ones are read from disk block by block: memory does not grow with the
chain (1 bit per record for the deletion bitmaps and 8 bytes per 256 records for the fences aside).

Consistency: the index's new run, changed bitmaps and merges are written by the same workspace
transaction as the batch's rows (docs/formats.md, "Crash safety"), so after a crash the committed index
is exactly the one of the committed tip; a batch that fails is undone with :meth:`UtxoIndex.reload`.

Keys: the first 12 bytes of the txid (internal order) and the output index, as two uint64: a false match
needs two txids sharing 96 bits (about 10^-11 over a billion transactions). Values: the amount, and
``(address_id + 1) << 8 | script type`` (0 address: none).

Known prevouts (outputs of blocks not ingested, e.g. the btcd ``*.utxostore`` test files) are supplied
with :func:`read_btcd_utxostore` and the service's ``prevouts=`` argument; they are kept in the workspace
table ``utxo_prevouts`` as well as in the index.
"""

from __future__ import annotations

import io
from pathlib import Path

import numba as nb
import numpy as np
import pyarrow as pa

from fundtrail.decompress import CappedReader, DecompressLimits
from fundtrail.errors import InputError
from fundtrail.ingest.bitcoin.runs import RunSet
from fundtrail.store.workspace import Transaction, Workspace

GROUP = "utxo_index"


@nb.njit(cache=True)
def _keys_at(buf, offs, n, k1, k2):  # pragma: no cover - numba
    """k1/k2 of the outpoints whose internal-order txid starts at buf[offs[i]] (little-endian words)."""
    for i in range(offs.shape[0]):
        p = offs[i]
        a = np.uint64(0)
        for j in range(8):
            a |= np.uint64(buf[p + j]) << np.uint64(8 * j)
        b = np.uint64(0)
        for j in range(4):
            b |= np.uint64(buf[p + 8 + j]) << np.uint64(8 * j)
        k1[i] = a
        k2[i] = (b << np.uint64(32)) | np.uint64(n[i])


def outpoint_keys_at(buf: np.ndarray, offs: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k1, k2) of outpoints given as the offsets of their internal-order txids in ``buf`` (e.g. the
    previous-output fields of a block batch, or rows of a contiguous (m, 32) txid matrix viewed flat)."""
    k1 = np.empty(len(offs), np.uint64)
    k2 = np.empty(len(offs), np.uint64)
    if len(offs):
        _keys_at(buf, np.ascontiguousarray(offs, np.int64), np.ascontiguousarray(n, np.int64), k1, k2)
    return k1, k2


def outpoint_keys_display(display: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k1, k2) of outpoints given as a contiguous (m, 32) matrix of display-order txids: the internal
    order's little-endian words are the display order's big-endian ones, read from the end."""
    d = np.ascontiguousarray(display, np.uint8)
    if len(d) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    k1 = d.view(">u8")[:, 3].astype(np.uint64)
    k2 = (d.view(">u4")[:, 5].astype(np.uint64) << np.uint64(32)) | np.asarray(n, np.int64).astype(np.uint64)
    return k1, k2


def outpoint_keys(txids_internal: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k1, k2) of outpoints: (m, 32) txids in internal byte order and their output indexes."""
    t = np.ascontiguousarray(txids_internal[:, :16])
    k1 = t[:, :8].copy().view("<u8")[:, 0]
    hi = t[:, 8:12].copy().view("<u4")[:, 0].astype(np.uint64)
    k2 = (hi << np.uint64(32)) | np.asarray(n, np.int64).astype(np.uint64)
    return k1.astype(np.uint64), k2


def txids_internal(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(m, 32) uint8 internal-order txids of a stored txid column (32-byte binary in display order, or
    hex strings in display order)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    m = len(col)
    if m == 0:
        return np.zeros((0, 32), np.uint8)
    if pa.types.is_fixed_size_binary(col.type):
        raw = np.frombuffer(col.buffers()[1], np.uint8)[col.offset * 32:(col.offset + m) * 32].reshape(m, 32)
        return raw[:, ::-1]
    if pa.types.is_binary(col.type):
        raw = np.frombuffer(b"".join(col.to_pylist()), np.uint8).reshape(m, 32)
        return raw[:, ::-1]
    chars = np.frombuffer(col.buffers()[2], np.uint8)
    offs = np.frombuffer(col.buffers()[1], np.int32)[col.offset:col.offset + m + 1]
    c = chars[offs[:-1, None] + np.arange(64)[None, :]]
    nib = np.where(c >= 97, c - 87, c - 48).astype(np.uint8)
    raw = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return raw[:, ::-1]


class UtxoIndex:
    """The unspent outputs of one chain (see the module docstring)."""

    def __init__(self, ws: Workspace, chain: str, *, memory: int = 128 << 20) -> None:
        self.runs = RunSet(ws, GROUP, chain, 2, deletes=True, memory=memory)

    def __len__(self) -> int:
        return len(self.runs)

    def apply(self, out_k1: np.ndarray, out_k2: np.ndarray, value: np.ndarray, address_id: np.ndarray,
              stype: np.ndarray, in_k1: np.ndarray, in_k2: np.ndarray, *, replaces: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Add a batch's outputs, then resolve and delete what its inputs spend (newest first, so outputs
        of the same batch are found first). Returns (found, value, address_id (-1: none), stype) per input.
        ``replaces``: outputs that overwrite an unspent output with the same outpoint (coinbase outputs:
        the two BIP-30 duplicate coinbase txids of mainnet, 91842 and 91880, replaced the earlier outputs in
        Bitcoin Core, which became unspendable). Uncommitted until :meth:`flush_into`."""
        if replaces is not None and replaces.any():
            self.runs.lookup(np.asarray(out_k1, np.uint64)[replaces], np.asarray(out_k2, np.uint64)[replaces],
                             delete=True)
        packed = ((np.asarray(address_id, np.int64) + 1) << 8) | np.asarray(stype, np.int64).astype(np.uint8)
        self.runs.add(np.asarray(out_k1, np.uint64), np.asarray(out_k2, np.uint64),
                      np.stack([np.asarray(value, np.int64), packed], axis=1))
        found, vals = self.runs.lookup(np.asarray(in_k1, np.uint64), np.asarray(in_k2, np.uint64), delete=True)
        return found, vals[:, 0], (vals[:, 1] >> 8) - 1, (vals[:, 1] & 0xFF).astype(np.int8)

    def flush_into(self, txn: Transaction) -> None:
        self.runs.flush_into(txn)

    def reload(self) -> None:
        self.runs.reload()

    def memory_bytes(self) -> int:
        return self.runs.memory_bytes()


# --- btcd utxostore files (known prevouts for test blocks) ---------------------------------------------

def _vlq(b: bytes, p: int) -> tuple[int, int]:
    n = 0
    while True:
        v = b[p]
        p += 1
        n = (n << 7) | (v & 0x7F)
        if v & 0x80:
            n += 1
        else:
            return n, p


def decompress_amount(x: int) -> int:
    """Bitcoin Core's / btcd's amount decompression."""
    if x == 0:
        return 0
    x -= 1
    e = x % 10
    x //= 10
    if e < 9:
        d = x % 9 + 1
        x //= 9
        n = x * 10 + d
    else:
        n = x + 1
    return n * 10 ** e


_P = 2**256 - 2**32 - 977


def decompress_pubkey(prefix: int, x: bytes) -> bytes:
    """The 65-byte uncompressed secp256k1 public key of a compressed one."""
    xi = int.from_bytes(x, "big")
    y = pow((pow(xi, 3, _P) + 7) % _P, (_P + 1) // 4, _P)
    if y % 2 != prefix % 2:
        y = _P - y
    return b"\x04" + x + y.to_bytes(32, "big")


def _decompress_script(b: bytes, p: int) -> tuple[bytes, int]:
    code, p = _vlq(b, p)
    if code == 0:
        return b"\x76\xa9\x14" + b[p:p + 20] + b"\x88\xac", p + 20
    if code == 1:
        return b"\xa9\x14" + b[p:p + 20] + b"\x87", p + 20
    if code in (2, 3):
        return b"\x21" + bytes([code]) + b[p:p + 32] + b"\xac", p + 32
    if code in (4, 5):
        return b"\x41" + decompress_pubkey(code - 2, b[p:p + 32]) + b"\xac", p + 32
    ln = code - 6
    return b[p:p + ln], p + ln


# a prevouts file is read whole into memory: 512 MiB decompressed at most (btcd's test stores are a few MB)
PREVOUT_LIMITS = DecompressLimits(max_bytes=512 << 20, max_ratio=200.0, ratio_floor=16 << 20)


def read_btcd_utxostore(path: Path) -> pa.Table:
    """Decode a btcd test ``*.utxostore`` file (optionally .bz2): records of
    ``[txid (32)][output index (u32)][entry length (u32)][entry]`` where the entry is btcd's compressed
    utxo entry (VLQ header code = height << 1 | coinbase, compressed amount, compressed script).

    Returns (txid hex, n, value, script, height, coinbase)."""
    path = Path(path)
    if path.suffix == ".bz2":  # streamed under a size and ratio cap (a 1.5 KB bomb used to take 4.4 GB)
        with open(path, "rb") as fh:
            raw = io.BufferedReader(CappedReader(fh, "bz2", PREVOUT_LIMITS, what=str(path)), 1 << 20).read()
    else:
        raw = path.read_bytes()
    txids, ns, values, scripts, heights, cbs = [], [], [], [], [], []
    p = 0
    while p < len(raw):
        start = p
        if p + 40 > len(raw):
            raise InputError("truncated utxostore record", path=path, offset=start)
        txid = raw[p:p + 32]
        n = int.from_bytes(raw[p + 32:p + 36], "little")
        ln = int.from_bytes(raw[p + 36:p + 40], "little")
        p += 40
        entry = raw[p:p + ln]
        if len(entry) != ln:
            raise InputError("truncated utxostore entry", path=path, offset=start)
        p += ln
        try:
            code, q = _vlq(entry, 0)
            amount, q = _vlq(entry, q)
            script, q = _decompress_script(entry, q)
        except IndexError:
            raise InputError("malformed utxostore entry", path=path, offset=start) from None
        txids.append(txid[::-1].hex())
        ns.append(n)
        values.append(decompress_amount(amount))
        scripts.append(script)
        heights.append(code >> 1)
        cbs.append(bool(code & 1))
    return pa.table({"txid": pa.array(txids, pa.string()), "n": pa.array(ns, pa.int64()),
                     "value": pa.array(values, pa.int64()), "script": pa.array(scripts, pa.binary()),
                     "height": pa.array(heights, pa.int64()), "coinbase": pa.array(cbs, pa.bool_())})
