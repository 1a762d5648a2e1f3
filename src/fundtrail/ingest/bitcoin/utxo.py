"""Previous-output resolution with bounded memory: an on-disk UTXO store (a DuckDB file).

The store holds the unspent outputs (key, value, address id, script type) of the ingested chain, not in
RAM: each batch inserts its outputs and resolves and deletes the outputs its inputs spend, with joins
inside DuckDB, in one DuckDB transaction that also records the store's height and tip hash.

Consistency with the workspace (docs/formats.md, "Crash safety"): the workspace commits a batch first and
the store second. On start the store is compared with the workspace's tip: behind -> rolled forward from the
committed ``utxo_outputs`` / ``utxo_inputs`` rows; ahead or on another hash -> rebuilt from the committed
tables (outputs + known prevouts - spent). A reorg rolls it back with the same committed rows (inputs carry
the value, address and type of what they spent).

Keys: the first 16 bytes of the txid (internal order) as two int64 plus the output index.

Known prevouts (outputs of blocks not ingested, e.g. the btcd ``*.utxostore`` test files) are supplied
with :func:`read_btcd_utxostore` and the service's ``prevouts=`` argument; they are kept in the workspace
table ``utxo_prevouts`` so the store can always be rebuilt.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from fundtrail.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS utxo (k1 BIGINT, k2 BIGINT, n INTEGER, value BIGINT, address_id BIGINT,
                                 stype TINYINT);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
"""


def keys_from_internal(txids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k1, k2) of (n, 32) txids in internal byte order."""
    t = np.ascontiguousarray(txids[:, :16])
    v = t.view("<i8")
    return v[:, 0].copy(), v[:, 1].copy()


def keys_from_hex(txids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(k1, k2) of hex txids in display order (as tables store them)."""
    if isinstance(txids, pa.ChunkedArray):
        txids = txids.combine_chunks()
    n = len(txids)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    chars = np.frombuffer(txids.buffers()[2], np.uint8)
    offs = np.frombuffer(txids.buffers()[1], np.int32)[txids.offset:txids.offset + n + 1]
    idx = offs[:-1, None] + np.arange(64)[None, :]
    c = chars[idx]
    nib = np.where(c >= 97, c - 87, c - 48).astype(np.uint8)
    raw = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return keys_from_internal(raw[:, ::-1])


class UtxoStore:
    """The unspent outputs of one chain, in ``HOME/utxo/CHAIN.duckdb``."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute(_SCHEMA)

    def close(self) -> None:
        self.con.close()

    # --- meta ------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        # fetchall, not fetchone: this DuckDB refuses register() while a result is partly fetched
        r = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        return r[0][0] if r else None

    @property
    def height(self) -> int | None:
        v = self.meta("height")
        return int(v) if v is not None else None

    @property
    def tip_hash(self) -> str | None:
        return self.meta("hash")

    @property
    def seeds(self) -> int:
        return int(self.meta("seeds") or 0)

    def _set_meta(self, **kv: object) -> None:
        for k, v in kv.items():
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, str(v)])

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM utxo").fetchall()[0][0])

    # --- batch work ------------------------------------------------------------------------------------
    def apply(self, outputs: pa.Table, inputs: pa.Table, *, height: int, tip_hash: str,
              extra_meta: dict[str, object] | None = None) -> pa.Table:
        """Add ``outputs`` (k1, k2, n, value, address_id, stype), then resolve and remove what ``inputs``
        (ord, k1, k2, n) spend; record ``height``/``tip_hash``. Returns (ord, value, address_id, stype) of
        the inputs found (duplicates of an outpoint: the first)."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_new_out", outputs)
            con.register("_new_in", inputs)
            if outputs.num_rows:
                con.execute("INSERT INTO utxo SELECT k1, k2, n, value, address_id, stype FROM _new_out")
            if inputs.num_rows:
                found = con.execute("""
                    SELECT i.ord, any_value(u.value) AS value, any_value(u.address_id) AS address_id,
                           any_value(u.stype) AS stype
                    FROM _new_in i JOIN utxo u ON u.k1 = i.k1 AND u.k2 = i.k2 AND u.n = i.n
                    GROUP BY i.ord""").to_arrow_table()
                con.execute("""DELETE FROM utxo USING _new_in i
                               WHERE utxo.k1 = i.k1 AND utxo.k2 = i.k2 AND utxo.n = i.n""")
            else:
                found = pa.table({"ord": pa.array([], pa.int64()), "value": pa.array([], pa.int64()),
                                  "address_id": pa.array([], pa.int64()), "stype": pa.array([], pa.int8())})
            self._set_meta(height=height, hash=tip_hash, **(extra_meta or {}))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_new_out")
            con.unregister("_new_in")
        return found

    def add(self, outputs: pa.Table) -> None:
        self.con.register("_add", outputs)
        try:
            self.con.execute("INSERT INTO utxo SELECT k1, k2, n, value, address_id, stype FROM _add")
        finally:
            self.con.unregister("_add")

    def remove(self, keys: pa.Table) -> None:
        self.con.register("_rm", keys)
        try:
            self.con.execute("DELETE FROM utxo USING _rm r WHERE utxo.k1 = r.k1 AND utxo.k2 = r.k2 "
                             "AND utxo.n = r.n")
        finally:
            self.con.unregister("_rm")

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self, **meta: object) -> None:
        self._set_meta(**meta)
        self.con.execute("COMMIT")

    def rollback_txn(self) -> None:
        self.con.execute("ROLLBACK")

    def clear(self) -> None:
        self.con.execute("DELETE FROM utxo")
        self.con.execute("DELETE FROM meta")


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


def read_btcd_utxostore(path: Path) -> pa.Table:
    """Decode a btcd test ``*.utxostore`` file (optionally .bz2): records of
    ``[txid (32)][output index (u32)][entry length (u32)][entry]`` where the entry is btcd's compressed
    utxo entry (VLQ header code = height << 1 | coinbase, compressed amount, compressed script).

    Returns (txid hex, n, value, script, height, coinbase)."""
    path = Path(path)
    raw = bz2.decompress(path.read_bytes()) if path.suffix == ".bz2" else path.read_bytes()
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
