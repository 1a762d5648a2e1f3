"""Bitcoin ingestion services: block files (:func:`ingest_block_files`) and Core JSON-RPC (:func:`ingest_rpc`).

Both feed raw blocks, batch by batch, through the same pipeline: parse (numba) -> classify scripts ->
address ids (only new addresses encoded) -> resolve prevouts in the on-disk UTXO store -> Arrow rows ->
one workspace commit per batch (tables, new addresses, chain tip) -> UTXO store commit. A SIGKILL at any
moment leaves the workspace at the last committed batch; the next run syncs the UTXO store to it and
continues after the committed tip, so the tables end up exactly as in an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.errors import ChainMismatchError, DecodeError
from fundtrail.ingest.bitcoin import blockfiles as BF
from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin.addresses import AddressIndex
from fundtrail.ingest.bitcoin.hashing import sha256d_spans
from fundtrail.ingest.bitcoin.parse import ParseFailure, gather_spans, merkle_roots, parse_blocks
from fundtrail.ingest.bitcoin.rows import build_rows, classify_outputs
from fundtrail.ingest.bitcoin.utxo import UtxoStore, keys_from_hex, keys_from_internal, read_btcd_utxostore
from fundtrail.model.chain import BitcoinNetwork, bitcoin_network
from fundtrail.progress import NullProgress, Progress
from fundtrail.store.workspace import Workspace

TABLES = ("utxo_blocks", "utxo_transactions", "utxo_outputs", "utxo_inputs")
# Parquet writer options of the batch tables: zstd level 1 (level 3 cost ~2x the time for ~10% smaller
# files); dictionary encoding only on low-cardinality columns (txids and hashes are unique or nearly so);
# statistics only on the integer columns readers filter on (min/max of random hex strings prune nothing)
_LOW_CARD = ["chain", "height", "script_type", "is_coinbase", "has_witness", "version", "tx_count"]
WRITE_OPTIONS: dict[str, dict[str, Any]] = {
    name: dict(compression="zstd", compression_level=1, use_dictionary=[c for c in _LOW_CARD if c in cols],
               write_statistics=[c for c in ("height", "tx_index", "n", "prev_n", "address_id") if c in cols])
    for name, cols in (
        ("utxo_blocks", ["chain", "height", "version"]),
        ("utxo_transactions", ["chain", "height", "tx_index", "is_coinbase", "has_witness", "version"]),
        ("utxo_outputs", ["chain", "height", "n", "address_id", "script_type"]),
        ("utxo_inputs", ["chain", "height", "n", "prev_n", "address_id", "script_type"]),
    )
}
_TYPE_CODE = S.SCRIPT_TYPE_CODE


@dataclass(frozen=True, slots=True)
class IngestStats:
    chain: str
    blocks: int = 0
    transactions: int = 0
    inputs: int = 0
    outputs: int = 0
    bytes: int = 0
    first_height: int | None = None
    tip_height: int | None = None
    tip_hash: str | None = None
    unresolved_inputs: int = 0  # inputs whose previous output is not known (value/address null)
    new_addresses: int = 0
    batches: int = 0
    stale_blocks: int = 0  # block records not on the chosen chain (stale forks, unconnected fragments)
    rolled_back: int = 0  # blocks removed by a reorganisation
    seconds: float = 0.0


@dataclass(slots=True)
class _Totals:
    blocks: int = 0
    transactions: int = 0
    inputs: int = 0
    outputs: int = 0
    bytes: int = 0
    unresolved: int = 0
    new_addresses: int = 0
    batches: int = 0
    first_height: int | None = None
    rolled_back: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _network(network: BitcoinNetwork | str) -> BitcoinNetwork:
    return network if isinstance(network, BitcoinNetwork) else bitcoin_network(network)


class Ingester:
    """The per-chain pipeline shared by the block-file and RPC sources (one writer at a time)."""

    def __init__(self, ws: Workspace, network: BitcoinNetwork, *, duckdb_threads: int | None = None,
                 verify_merkle: bool = True, compression: str | None = None) -> None:
        self.ws = ws
        self.net = network
        self.chain = network.chain
        state = ws.chain(self.chain)
        if state is not None and state.get("network") not in (None, network.name):
            raise ChainMismatchError(f"chain {self.chain!r} in {ws.home} is network {state.get('network')!r}, "
                                     f"not {network.name!r}")
        self.addr = AddressIndex(ws, self.chain, network)
        self.store = UtxoStore(ws.home / "utxo" / f"{self.chain}.duckdb", threads=duckdb_threads)
        self.verify_merkle = verify_merkle
        # Parquet codec of the batch tables: None keeps WRITE_OPTIONS (zstd level 1); "lz4" / "none" trade
        # file size for ingest speed
        self.write_options = {k: (dict(v, compression=compression, compression_level=None) if compression else v)
                              for k, v in WRITE_OPTIONS.items()}
        self.totals = _Totals()
        self.sync_store()

    def close(self) -> None:
        self.store.close()

    # --- state ------------------------------------------------------------------------------------------
    def tip(self) -> tuple[int | None, str | None]:
        st = self.ws.chain(self.chain) or {}
        return st.get("tip_height"), st.get("tip_hash")

    def stored_hash_at(self, height: int) -> str | None:
        t = self.ws.read("utxo_blocks", self.chain, columns=["height", "hash"],
                         filter=pc.equal(pc.field("height"), height))
        return t["hash"][0].as_py() if t.num_rows else None

    # --- UTXO store consistency -------------------------------------------------------------------------
    def _parts(self, table: str, above: int) -> list[Path]:
        return [self.ws.home / p.file for p in self.ws.parts(table, self.chain) if p.hi is not None and p.hi > above]

    def _replay(self, above: int) -> None:
        """Apply the committed outputs and spends with height > above to the (open) store transaction."""
        for path in self._parts("utxo_outputs", above):
            t = pq.read_table(path, columns=["height", "txid", "n", "value", "address_id", "script_type"])
            t = t.filter(pc.greater(t["height"], above))
            self.store.add(self._store_rows(t))
        for path in self._parts("utxo_inputs", above):
            t = pq.read_table(path, columns=["height", "prev_txid", "prev_n"])
            t = t.filter(pc.greater(t["height"], above))
            k1, k2 = keys_from_hex(t["prev_txid"])
            self.store.remove(pa.table({"k1": k1, "k2": k2, "n": t["prev_n"].cast(pa.int32())}))

    def _store_rows(self, t: pa.Table, txid_col: str = "txid", n_col: str = "n") -> pa.Table:
        k1, k2 = keys_from_hex(t[txid_col])
        codes = pa.array(np.array([_TYPE_CODE.get(x, 0) if x else 0
                                   for x in pc.unique(t["script_type"]).to_pylist()], np.int8))
        idx = pc.index_in(t["script_type"], pc.unique(t["script_type"]))
        stype = codes.take(idx.fill_null(0)) if len(codes) else pa.array(np.zeros(t.num_rows, np.int8))
        return pa.table({"k1": k1, "k2": k2, "n": t[n_col].cast(pa.int32()), "value": t["value"],
                         "address_id": t["address_id"], "stype": stype})

    def sync_store(self) -> None:
        tip_h, tip_hash = self.tip()
        st = self.store
        seeds = self.ws.row_count("utxo_prevouts", self.chain)
        sh = st.height
        if tip_h is None and seeds == 0:
            if sh is not None or st.count():
                st.begin()
                st.con.execute("DELETE FROM utxo")
                st.con.execute("DELETE FROM meta")
                st.con.execute("COMMIT")
            return
        tip_h = -1 if tip_h is None else tip_h
        if sh is not None and sh == tip_h and st.seeds == seeds and (st.tip_hash or None) == (tip_hash or None):
            return
        st.begin()
        try:
            if sh is not None and sh < tip_h and st.seeds == seeds:
                self._replay(sh)  # roll forward over batches committed after the store's last commit
            else:  # ahead, on another chain, or seeded differently: rebuild from the committed tables
                st.con.execute("DELETE FROM utxo")
                for path in self.ws.part_paths("utxo_prevouts", self.chain):
                    st.add(self._store_rows(pq.read_table(path)))
                self._replay(-(2**62))
            st.commit(height=tip_h, hash=tip_hash or "", seeds=seeds)
        except BaseException:
            st.rollback_txn()
            raise

    # --- known prevouts ---------------------------------------------------------------------------------
    def seed_prevouts(self, table: pa.Table, source: str) -> int:
        """Add known previous outputs (txid, n, value, script[, height]) to the workspace and the store."""
        if table.num_rows == 0:
            return 0
        scripts = table["script"].to_pylist()
        types = np.zeros(len(scripts), np.int8)
        keys = np.zeros((len(scripts), S.KEYW), np.uint8)
        for i, sc in enumerate(scripts):
            t, k = S.script_key(sc)
            types[i] = t
            keys[i] = np.frombuffer(k, np.uint8)
        ids = self.addr.ids(keys)
        rows = pa.table({
            "chain": pa.array([self.chain] * table.num_rows, pa.string()),
            "txid": table["txid"], "n": table["n"], "value": table["value"],
            "address_id": pa.array(ids, mask=ids < 0),
            "script_type": pa.array(S.SCRIPT_TYPES, pa.string()).take(pa.array(types)),
            "height": table["height"] if "height" in table.column_names else pa.nulls(table.num_rows, pa.int64()),
            "source": pa.array([source] * table.num_rows, pa.string()),
        })
        with self.ws.transaction() as txn:
            txn.append("utxo_prevouts", self.chain, rows)
            self.addr.flush_into(txn)
            txn.set_chain(self.chain, kind="utxo", network=self.net.name)
        self.sync_store()
        return table.num_rows

    # --- one batch -------------------------------------------------------------------------------------
    def ingest_batch(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, first_height: int, *,
                     where: Callable[[int], tuple[str | None, int]] | None = None,
                     known: dict[int, tuple[int, bytes]] | None = None,
                     resolve_missing: Callable[[list[tuple[str, int]]], dict[int, tuple[int, bytes]]] | None = None,
                     chain_state: dict[str, Any] | None = None) -> None:
        """Ingest consecutive blocks first_height.. (their bytes buf[starts[i]:ends[i]]) and commit.

        ``where(offset)`` maps a buffer offset to (file, file offset) for error messages. ``known``: previous
        outputs by input ordinal (among non-coinbase inputs) as (value, script), e.g. from getblock v3.
        ``resolve_missing(outpoints)`` is asked for what neither ``known`` nor the store has.
        """
        try:
            b = parse_blocks(buf, starts, ends)
        except ParseFailure as e:
            path, off = where(e.offset) if where else (None, e.offset)
            blk = int(np.searchsorted(starts, e.offset, side="right") - 1)
            raise DecodeError(f"{e.args[0].split(' at buffer')[0]}", path=path, offset=off,
                              block=first_height + blk) from None
        nb_ = len(starts)
        heights = np.arange(first_height, first_height + nb_, dtype=np.int64)
        if self.verify_merkle:
            self._check_merkle(b, heights, where)
        info = classify_outputs(b)
        out_addr = self.addr.ids(info.keys)

        tx_index = np.arange(len(b.tx_start)) - b.blk_ftx[b.tx_blk]
        in_mask = tx_index[b.in_tx] != 0  # inputs of coinbase transactions spend nothing
        sel = np.flatnonzero(in_mask)
        nin = len(sel)
        prev = gather_spans(b.buf, b.in_prev[sel], 32)
        ik1, ik2 = keys_from_internal(prev)
        ok1, ok2 = keys_from_internal(b.txid)
        out_n = np.arange(len(b.out_val), dtype=np.int64) - b.tx_fout[b.out_tx]
        store_out = pa.table({"k1": ok1[b.out_tx], "k2": ok2[b.out_tx], "n": out_n.astype(np.int32),
                              "value": b.out_val, "address_id": pa.array(out_addr, mask=out_addr < 0),
                              "stype": info.types})
        store_in = pa.table({"ord": np.arange(nin, dtype=np.int64), "k1": ik1, "k2": ik2,
                             "n": b.in_n[sel].astype(np.int32)})
        tip_hex = sha256d_spans(b.buf, starts[-1:], 80)[0, ::-1].tobytes().hex()
        tip_h = int(heights[-1])
        st = self.store
        st.begin()
        try:
            st.con.register("_new_out", store_out)
            st.con.register("_new_in", store_in)
            if store_out.num_rows:
                st.con.execute("INSERT INTO utxo SELECT k1, k2, n, value, address_id, stype FROM _new_out")
            if nin:
                found = st.con.sql("""
                    SELECT i.ord, any_value(u.value) AS value, any_value(u.address_id) AS address_id,
                           any_value(u.stype) AS stype
                    FROM _new_in i JOIN utxo u ON u.k1 = i.k1 AND u.k2 = i.k2 AND u.n = i.n
                    GROUP BY i.ord""").to_arrow_table()
                st.con.execute("""DELETE FROM utxo USING _new_in i
                                  WHERE utxo.k1 = i.k1 AND utxo.k2 = i.k2 AND utxo.n = i.n""")
            st.con.unregister("_new_out")
            st.con.unregister("_new_in")
            in_value = np.zeros(nin, np.int64)
            in_addr = np.full(nin, -1, np.int64)
            in_type = np.zeros(nin, np.int8)
            in_found = np.zeros(nin, np.bool_)
            if nin and found.num_rows:
                o = found["ord"].to_numpy()
                in_value[o] = found["value"].to_numpy()
                in_addr[o] = found["address_id"].fill_null(-1).to_numpy()
                in_type[o] = found["stype"].to_numpy()
                in_found[o] = True
            if nin and not in_found.all() and (known or resolve_missing):
                self._fill_known(known or {}, in_value, in_addr, in_type, in_found, prev, b.in_n[sel],
                                 resolve_missing)
            rows = build_rows(self.chain, b, heights, info, out_addr, in_value, in_addr, in_type, in_found,
                              in_mask)
            with self.ws.transaction() as txn:
                for name, t in zip(TABLES, (rows.blocks, rows.transactions, rows.outputs, rows.inputs),
                                   strict=True):
                    txn.append(name, self.chain, t, **self.write_options[name])
                new = self.addr.flush_into(txn)
                txn.set_chain(self.chain, kind="utxo", network=self.net.name, tip_height=tip_h,
                              tip_hash=tip_hex, **(chain_state or {}))
            st.commit(height=tip_h, hash=tip_hex, seeds=self.ws.row_count("utxo_prevouts", self.chain))
        except BaseException:
            try:
                st.rollback_txn()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            self.addr.discard_pending()
            raise
        t = self.totals
        t.blocks += nb_
        t.transactions += len(b.tx_start)
        t.inputs += nin
        t.outputs += len(b.out_val)
        t.bytes += int(ends[-1] - starts[0]) if nb_ else 0
        t.unresolved += rows.unresolved
        t.new_addresses += new
        t.batches += 1
        if t.first_height is None:
            t.first_height = first_height

    def _check_merkle(self, b, heights, where) -> None:
        roots = merkle_roots(b)
        st = b.blk_start
        stored = b.buf[st[:, None] + np.arange(36, 68)[None, :]]
        bad = np.flatnonzero((roots != stored).any(axis=1))
        if len(bad):
            k = int(bad[0])
            s = int(st[k])
            path, off = where(s) if where else (None, s)
            raise DecodeError("merkle root does not match the transactions (corrupt block)", path=path,
                              offset=off, block=int(heights[k]))

    def _fill_known(self, known, in_value, in_addr, in_type, in_found, prev, prev_n, resolve_missing) -> None:
        todo = [i for i in np.flatnonzero(~in_found).tolist()]
        got: dict[int, tuple[int, bytes]] = {i: known[i] for i in todo if i in known}
        rest = [i for i in todo if i not in got]
        if rest and resolve_missing is not None:
            asked = resolve_missing([(prev[i][::-1].tobytes().hex(), int(prev_n[i])) for i in rest])
            for j, i in enumerate(rest):
                if j in asked:
                    got[i] = asked[j]
        if not got:
            return
        idx = np.array(sorted(got), np.int64)
        keys = np.zeros((len(idx), S.KEYW), np.uint8)
        types = np.zeros(len(idx), np.int8)
        for j, i in enumerate(idx.tolist()):
            t, k = S.script_key(got[i][1])
            types[j] = t
            keys[j] = np.frombuffer(k, np.uint8)
            in_value[i] = got[i][0]
        in_addr[idx] = self.addr.ids(keys)
        in_type[idx] = types
        in_found[idx] = True

    # --- reorganisation --------------------------------------------------------------------------------
    def rollback_to(self, fork_height: int) -> int:
        """Remove every block above ``fork_height`` (a reorg): the store first, then the workspace."""
        tip_h, _ = self.tip()
        if tip_h is None or tip_h <= fork_height:
            return 0
        fork_hash = self.stored_hash_at(fork_height) if fork_height >= 0 else None
        st = self.store
        st.begin()
        try:
            for path in self._parts("utxo_inputs", fork_height):
                t = pq.read_table(path, columns=["height", "prev_txid", "prev_n", "value", "address_id",
                                                 "script_type"])
                t = t.filter(pc.and_(pc.greater(t["height"], fork_height), pc.is_valid(t["value"])))
                st.add(self._store_rows(t, "prev_txid", "prev_n"))
            for path in self._parts("utxo_outputs", fork_height):
                t = pq.read_table(path, columns=["height", "txid", "n"])
                t = t.filter(pc.greater(t["height"], fork_height))
                k1, k2 = keys_from_hex(t["txid"])
                st.remove(pa.table({"k1": k1, "k2": k2, "n": t["n"].cast(pa.int32())}))
            st.commit(height=fork_height, hash=fork_hash or "")
        except BaseException:
            st.rollback_txn()
            raise
        with self.ws.transaction() as txn:
            for name in TABLES:
                txn.truncate_above(name, self.chain, fork_height)
            txn.set_chain(self.chain, kind="utxo", network=self.net.name,
                          tip_height=fork_height if fork_height >= 0 else None, tip_hash=fork_hash)
        n = tip_h - fork_height
        self.totals.rolled_back += n
        return n

    def stats(self, seconds: float, stale: int = 0) -> IngestStats:
        t = self.totals
        tip_h, tip_hash = self.tip()
        return IngestStats(self.chain, t.blocks, t.transactions, t.inputs, t.outputs, t.bytes, t.first_height,
                           tip_h, tip_hash, t.unresolved, t.new_addresses, t.batches, stale, t.rolled_back,
                           seconds)


# --- block files -----------------------------------------------------------------------------------------

def ingest_block_files(ws: Workspace, blocks_dir: Path | str, network: BitcoinNetwork | str = "mainnet", *,
                       progress: Progress = NullProgress(), batch_bytes: int = 32 << 20,
                       batch_blocks: int = 100_000, prevouts: Path | str | None = None,
                       start_height: int | None = None, max_blocks: int | None = None,
                       duckdb_threads: int | None = None, verify_merkle: bool = True,
                       compression: str | None = None) -> IngestStats:
    """Ingest Bitcoin Core block files (``blk*.dat``, XOR-obfuscated or not, or ``.bz2``) into ``ws``.

    Continues after the workspace's tip for the network's chain; follows the most-work chain the files hold
    (out-of-order and stale blocks handled; a better fork below the tip rolls the tables back to the fork).
    Tuning: ``batch_bytes``/``batch_blocks`` (commit granularity), ``prevouts`` (a btcd ``*.utxostore``
    file of known previous outputs), ``start_height`` (height of the first block when the files start
    mid-chain without a BIP-34 height), ``max_blocks`` (stop after this many), ``compression`` (Parquet
    codec of the batch tables: default zstd level 1; ``"lz4"`` or ``"none"`` write faster, 2-4x larger).

    A framing error (truncated or corrupt file) is raised as :class:`BlockFileError` naming the file and
    byte offset after every block before it has been committed; a block that does not parse raises
    :class:`DecodeError` the same way.
    """
    net = _network(network)
    t0 = time.monotonic()
    blocks_dir = Path(blocks_dir)
    files = BF.list_block_files(blocks_dir)
    src = BF.BlockSource(files, BF.read_xor_key(blocks_dir), tmp_dir=ws.home / "tmp")
    ing = Ingester(ws, net, duckdb_threads=duckdb_threads, verify_merkle=verify_merkle, compression=compression)
    try:
        if prevouts is not None:
            p = Path(prevouts)
            ing.seed_prevouts(read_btcd_utxostore(p), source=p.name)
        index = BF.build_index(src, net)
        tip_h, tip_hex = ing.tip()

        def read_block(row: int) -> bytes:
            out = np.empty(int(index.size[row]), np.uint8)
            src.read(int(index.file[row]), int(index.offset[row]), int(index.size[row]), out)
            return out.tobytes()

        chain = BF.best_chain(index, net, read_block,
                              tip_hash=bytes.fromhex(tip_hex)[::-1] if tip_hex else None,
                              tip_height=tip_h, start_height=start_height)
        if chain.fork_height is not None:
            ing.rollback_to(chain.fork_height)
        rows = chain.rows if max_blocks is None else chain.rows[:max_blocks]
        chain.rows = rows
        task = progress.task(f"ingest {net.chain} blocks", total=len(rows), unit="blocks")
        try:
            for pos in BF.iter_batches(chain, index, batch_bytes, batch_blocks):
                r = rows[pos]
                buf, starts, ends = BF.gather(src, index, r)

                def where(off: int, r=r, starts=starts) -> tuple[str, int]:
                    k = int(np.searchsorted(starts, off, side="right") - 1)
                    return str(files[int(index.file[r[k]])]), int(index.offset[r[k]]) + off - int(starts[k])

                ing.ingest_batch(buf, starts, ends, chain.first_height + int(pos[0]), where=where)
                task.advance(len(r), MB=float(ends[-1]) / 1e6)
        finally:
            task.close()
        if index.error is not None and max_blocks is None:
            raise index.error
        return ing.stats(time.monotonic() - t0, chain.unconnected)
    finally:
        ing.close()
        src.close()


def seed_prevouts(ws: Workspace, path: Path | str, network: BitcoinNetwork | str = "mainnet") -> int:
    """Supply known previous outputs from a btcd ``*.utxostore`` file (see utxo.read_btcd_utxostore)."""
    ing = Ingester(ws, _network(network))
    try:
        p = Path(path)
        return ing.seed_prevouts(read_btcd_utxostore(p), source=p.name)
    finally:
        ing.close()


def ingest_rpc(ws: Workspace, url: str, network: BitcoinNetwork | str = "mainnet", *, cookie: Path | str | None = None,
               follow: bool = False, progress: Progress = NullProgress(), **tuning: Any) -> IngestStats:
    """Ingest from a Bitcoin Core node's JSON-RPC (see rpc.ingest_from_node for the tuning options)."""
    from fundtrail.ingest.bitcoin.rpc import HttpRpc, ingest_from_node

    transport = tuning.pop("transport", None)
    client = HttpRpc(url, cookie=cookie, transport=transport, timeout=tuning.pop("timeout", 60.0))
    try:
        return ingest_from_node(ws, client, _network(network), follow=follow, progress=progress, **tuning)
    finally:
        client.close()
