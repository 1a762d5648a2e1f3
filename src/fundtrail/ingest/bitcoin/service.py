"""Bitcoin ingestion services: block files (:func:`ingest_block_files`) and Core JSON-RPC (:func:`ingest_rpc`).

Both feed raw blocks, batch by batch, through the same pipeline: parse (numba) -> classify scripts ->
address ids (only new addresses encoded) -> resolve prevouts in the on-disk UTXO index -> Arrow rows ->
one workspace commit per batch (tables, new addresses, the address and UTXO indexes' new runs, chain tip).
A SIGKILL at any moment leaves the workspace, indexes included, at the last committed batch; the next run
continues after the committed tip, so the tables end up exactly as in an uninterrupted run. Memory is
bounded by the batch size plus the indexes' RAM budget (``index_memory``), whatever the chain's length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.errors import ChainMismatchError, DecodeError, RpcError, WorkspaceError
from fundtrail.ingest.bitcoin import blockfiles as BF
from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin.addresses import WRITE_OPTIONS as ADDRESS_WRITE_OPTIONS
from fundtrail.ingest.bitcoin.addresses import AddressIndex
from fundtrail.ingest.bitcoin.hashing import sha256d_spans
from fundtrail.ingest.bitcoin.parallel import ParseAhead, Prepared, default_jobs
from fundtrail.ingest.bitcoin.parse import ParseFailure, merkle_roots, parse_blocks
from fundtrail.ingest.bitcoin.rows import build_rows, classify_outputs, display_txids
from fundtrail.ingest.bitcoin.rpc import CORE_CHAIN_NAMES, HttpRpc, RpcClient, raw_block_of, sat
from fundtrail.ingest.bitcoin.utxo import (
    UtxoIndex,
    outpoint_keys,
    outpoint_keys_at,
    outpoint_keys_display,
    read_btcd_utxostore,
    txids_internal,
)
from fundtrail.model.chain import BitcoinNetwork, bitcoin_network
from fundtrail.progress import NullProgress, Progress
from fundtrail.store.schema import schema_of
from fundtrail.store.workspace import Workspace, writes

TABLES = ("utxo_blocks", "utxo_transactions", "utxo_outputs", "utxo_inputs")
# Parquet writer options of the batch tables: lz4 by default (zstd level 1 makes files 8-15% smaller but
# writing them costs a quarter of the ingest's CPU; `--compression zstd` chooses it); dictionary encoding only on low-cardinality columns (txids and hashes are unique or nearly so);
# statistics only on the integer columns readers filter on (min/max of random hex strings prune nothing)
_LOW_CARD = ["chain", "height", "script_type", "is_coinbase", "has_witness", "version", "tx_count"]
WRITE_OPTIONS: dict[str, dict[str, Any]] = {
    name: dict(compression="lz4", compression_level=None, use_dictionary=[c for c in _LOW_CARD if c in cols],
               write_statistics=[c for c in ("height", "tx_index", "n", "prev_n", "address_id") if c in cols])
    for name, cols in (
        ("utxo_blocks", ["chain", "height", "version"]),
        ("utxo_transactions", ["chain", "height", "tx_index", "is_coinbase", "has_witness", "version"]),
        ("utxo_outputs", ["chain", "height", "n", "address_id", "script_type"]),
        ("utxo_inputs", ["chain", "height", "n", "prev_n", "address_id", "script_type"]),
    )
}
_TYPE_CODE = S.SCRIPT_TYPE_CODE
# commits remembered with the address-id count after them (chain state ``id_marks``: [height, next id]),
# the points a reorganisation can roll the address dictionary back to
log = logging.getLogger(__name__)
ID_MARKS = 512
MERGE_BELOW_BATCH_BYTES = 4 << 20  # batches smaller than this merge the newest small parts (merge_tail)


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


def _stored_txids(internal: np.ndarray) -> pa.Array:
    """A stored txid column (its type in the schema: 32-byte binary or hex, display order)."""
    display = np.ascontiguousarray(internal[:, ::-1])
    if pa.types.is_fixed_size_binary(schema_of("utxo_prevouts").field("txid").type):
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(display),
                                                    [None, pa.py_buffer(display.tobytes())])
    return pa.array([bytes(r).hex() for r in display], pa.string())


def _network(network: BitcoinNetwork | str) -> BitcoinNetwork:
    return network if isinstance(network, BitcoinNetwork) else bitcoin_network(network)


class Ingester:
    """The per-chain pipeline shared by the block-file and RPC sources (one writer at a time)."""

    def __init__(self, ws: Workspace, network: BitcoinNetwork, *,
                 verify_merkle: bool = True, compression: str | None = None,
                 index_memory: int = 256 << 20, write_threads: int = 1) -> None:
        self.ws = ws
        # threads encoding the batch's Parquet parts at once (pyarrow releases the GIL while it encodes)
        self.write_threads = max(1, write_threads)
        self.net = network
        self.chain = network.chain
        state = ws.chain(self.chain)
        if state is not None and state.get("network") not in (None, network.name):
            raise ChainMismatchError(f"chain {self.chain!r} in {ws.home} is network {state.get('network')!r}, "
                                     f"not {network.name!r}")
        # the RAM budget of the two on-disk indexes (the newest runs stay in memory), half each
        self.addr = AddressIndex(ws, self.chain, network, memory=index_memory // 2)
        self.utxo = UtxoIndex(ws, self.chain, memory=index_memory // 2)
        self.verify_merkle = verify_merkle
        # Parquet codec of the batch tables: None keeps WRITE_OPTIONS (lz4); "zstd" (level 1) trades ingest speed
        # for smaller files, "none" the other way
        codec = {} if compression is None else {"compression": compression,
                                                "compression_level": 1 if compression == "zstd" else None}
        self.write_options = {k: dict(v, **codec) for k, v in WRITE_OPTIONS.items()}
        self.totals = _Totals()
        if state is not None and state.get("tip_height") is not None and "address_index_next" not in state:
            raise WorkspaceError(f"chain {self.chain!r} in {ws.home} was written by an older fundtrail (it has no "
                                 "address and UTXO indexes): ingest it again into a new workspace")

    def close(self) -> None:
        pass

    # --- state ------------------------------------------------------------------------------------------
    def tip(self) -> tuple[int | None, str | None]:
        st = self.ws.chain(self.chain) or {}
        return st.get("tip_height"), st.get("tip_hash")

    def stored_hash_at(self, height: int) -> str | None:
        t = self.ws.read("utxo_blocks", self.chain, columns=["height", "hash"],
                         filter=pc.equal(pc.field("height"), height))
        return t["hash"][0].as_py() if t.num_rows else None

    def _parts(self, table: str, above: int) -> list[Path]:
        return [self.ws.home / p.file for p in self.ws.parts(table, self.chain) if p.hi is not None and p.hi > above]

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
        tx_int = txids_internal(table["txid"])
        rows = pa.table({
            "chain": pa.array([self.chain] * table.num_rows, pa.string()),
            "txid": _stored_txids(tx_int), "n": table["n"], "value": table["value"],
            "address_id": pa.array(ids, mask=ids < 0),
            "script_type": pa.array(S.SCRIPT_TYPES, pa.string()).take(pa.array(types)),
            "height": table["height"] if "height" in table.column_names else pa.nulls(table.num_rows, pa.int64()),
            "source": pa.array([source] * table.num_rows, pa.string()),
        })
        k1, k2 = outpoint_keys(tx_int, table["n"].to_numpy())
        self.utxo.apply(k1, k2, table["value"].to_numpy(), ids, types, np.zeros(0, np.uint64),
                        np.zeros(0, np.uint64))
        try:
            with self.ws.transaction() as txn:
                txn.append("utxo_prevouts", self.chain, rows)
                self.addr.flush_into(txn)
                self.utxo.flush_into(txn)
                txn.set_chain(self.chain, kind="utxo", network=self.net.name)
        except BaseException:
            self.addr.discard_pending()
            self.utxo.reload()
            raise
        return table.num_rows

    # --- one batch -------------------------------------------------------------------------------------
    def ingest_batch(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, first_height: int, *,
                     where: Callable[[int], tuple[str | None, int]] | None = None,
                     known: dict[int, tuple[int, bytes]] | None = None,
                     resolve_missing: Callable[[list[tuple[str, int]]], dict[int, tuple[int, bytes]]] | None = None,
                     chain_state: dict[str, Any] | None = None, parsed: Prepared | None = None) -> None:
        """Ingest consecutive blocks first_height.. (their bytes buf[starts[i]:ends[i]]) and commit.

        ``where(offset)`` maps a buffer offset to (file, file offset) for error messages. ``known``: previous
        outputs by input ordinal (among non-coinbase inputs) as (value, script), e.g. from getblock v3.
        ``resolve_missing(outpoints)`` is asked for what neither ``known`` nor the store has. ``parsed``:
        the batch already parsed, verified and classified by a worker (``--jobs``; its bytes are ``buf``).
        """
        nb_ = len(starts)
        heights = np.arange(first_height, first_height + nb_, dtype=np.int64)
        if parsed is not None:
            b, info = parsed.batch, parsed.info
        else:
            try:
                b = parse_blocks(buf, starts, ends)
            except ParseFailure as e:
                path, off = where(e.offset) if where else (None, e.offset)
                blk = int(np.searchsorted(starts, e.offset, side="right") - 1)
                raise DecodeError(f"{e.args[0].split(' at buffer')[0]}", path=path, offset=off,
                                  block=first_height + blk) from None
            if self.verify_merkle:
                self._check_merkle(b, heights, where)
            info = classify_outputs(b)
        ids_before = self.addr.next_id
        out_addr = self.addr.ids(info.keys)

        tx_index = np.arange(len(b.tx_start)) - b.blk_ftx[b.tx_blk]
        in_mask = tx_index[b.in_tx] != 0  # inputs of coinbase transactions spend nothing
        sel = np.flatnonzero(in_mask)
        nin = len(sel)
        out_n = np.arange(len(b.out_val), dtype=np.int64) - b.tx_fout[b.out_tx]
        spendable = info.types != S.ST_OP_RETURN  # provably unspendable: never enters the index
        o = np.flatnonzero(spendable)
        txid_flat = np.ascontiguousarray(b.txid).reshape(-1)
        ok1, ok2 = outpoint_keys_at(txid_flat, b.out_tx[o].astype(np.int64) * 32, out_n[o])
        # the previous txids in display order (the inputs' prev_txid column) and their outpoint keys, from
        # one gather of the scattered 32-byte fields
        prev_display = display_txids(b.buf, b.in_prev[sel])
        ik1, ik2 = outpoint_keys_display(prev_display, b.in_n[sel])
        tip_hex = sha256d_spans(b.buf, starts[-1:], 80)[0, ::-1].tobytes().hex()
        tip_h = int(heights[-1])
        try:
            in_found, in_value, in_addr, in_type = self.utxo.apply(ok1, ok2, b.out_val[o], out_addr[o],
                                                                   info.types[o], ik1, ik2,
                                                                   replaces=tx_index[b.out_tx[o]] == 0)
            if nin and not in_found.all() and (known or resolve_missing):
                self._fill_known(known or {}, in_value, in_addr, in_type, in_found,
                                 prev_display[:, ::-1], b.in_n[sel], resolve_missing)
            rows = build_rows(self.chain, b, heights, info, out_addr, in_value, in_addr, in_type, in_found,
                              in_mask, prev_display)
            with self.ws.transaction() as txn:
                tables = zip(TABLES, (rows.blocks, rows.transactions, rows.outputs, rows.inputs), strict=True)
                if self.write_threads > 1:
                    # the four parts and the address rows encoded at once, one thread each; every write
                    # finishes (or fails, aborting the commit) before the manifest is written
                    with ThreadPoolExecutor(min(self.write_threads, len(TABLES))) as ex:
                        futs = [ex.submit(txn.append, name, self.chain, t, **self.write_options[name])
                                for name, t in tables]
                        try:
                            new = self.addr.flush_into(txn)
                            self.utxo.flush_into(txn)
                        finally:
                            errors = [f.exception() for f in futs]
                    first = next((e for e in errors if e is not None), None)
                    if first is not None:
                        raise first
                else:
                    for name, t in tables:
                        txn.append(name, self.chain, t, **self.write_options[name])
                    new = self.addr.flush_into(txn)
                    self.utxo.flush_into(txn)
                if nb_ and int(ends[-1] - starts[0]) < MERGE_BELOW_BATCH_BYTES:
                    # a small batch (following the tip): merge the newest small parts so a long follow
                    # keeps few files. Bulk batches are left to `fundtrail compact`: merging during a bulk
                    # run cost ~50% of the ingest time for large parts and raised the peak RSS for small ones
                    for name in TABLES:
                        txn.merge_tail(name, self.chain, **self.write_options[name])
                    txn.merge_tail("addresses", self.chain, **ADDRESS_WRITE_OPTIONS["addresses"])
                marks = list((self.ws.chain(self.chain) or {}).get("id_marks") or [])
                if not marks:
                    marks = [[int(heights[0]) - 1, ids_before]]
                marks = (marks + [[tip_h, self.addr.next_id]])[-ID_MARKS:]
                txn.set_chain(self.chain, kind="utxo", network=self.net.name, tip_height=tip_h,
                              tip_hash=tip_hex, id_marks=marks, **(chain_state or {}))
        except BaseException:
            self.addr.discard_pending()
            self.utxo.reload()
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
        """Remove every block above ``fork_height`` (a reorg): the store first, then the workspace.

        The rollback goes to the last commit at or below the fork (chain state ``id_marks``), so the
        address ids handed out after it go too (:meth:`AddressIndex.forget_from`): the dictionary keeps no
        address seen only in orphaned blocks, and ids equal a clean ingest of the final chain (same
        batches). Returns how many blocks were removed."""
        tip_h, _ = self.tip()
        if tip_h is None or tip_h <= fork_height:
            return 0
        marks = [m for m in (self.ws.chain(self.chain) or {}).get("id_marks") or [] if m[0] <= fork_height]
        # a mark is usable where the workspace holds the block (its hash is the new tip), or at -1 (nothing)
        while marks and marks[-1][0] >= 0 and self.stored_hash_at(int(marks[-1][0])) is None:
            marks.pop()
        first_id: int | None = None
        if marks:
            fork_height, first_id = int(marks[-1][0]), int(marks[-1][1])
        else:
            log.warning("chain %s: no address-id mark at or below height %d: the ids of addresses seen only in "
                        "the orphaned blocks are kept", self.chain, fork_height)
        fork_hash = self.stored_hash_at(fork_height) if fork_height >= 0 else None
        # the index forgets the outputs created above the fork and gets back what was spent above it
        # (inputs carry the value, address and type of what they spent); outputs both created and spent
        # above the fork cancel out inside the one apply
        back = []
        for path in self._parts("utxo_inputs", fork_height):
            t = pq.read_table(path, columns=["height", "prev_txid", "prev_n", "value", "address_id",
                                             "script_type"])
            back.append(t.filter(pc.and_(pc.greater(t["height"], fork_height), pc.is_valid(t["value"]))))
        gone = []
        for path in self._parts("utxo_outputs", fork_height):
            t = pq.read_table(path, columns=["height", "txid", "n", "script_type"])
            gone.append(t.filter(pc.and_(pc.greater(t["height"], fork_height),
                                         pc.not_equal(t["script_type"], "op_return"))))
        bt = pa.concat_tables(back) if back else None
        gt = pa.concat_tables(gone) if gone else None
        k1, k2 = (outpoint_keys(txids_internal(bt["prev_txid"]), bt["prev_n"].to_numpy()) if bt is not None
                  else (np.zeros(0, np.uint64), np.zeros(0, np.uint64)))
        g1, g2 = (outpoint_keys(txids_internal(gt["txid"]), gt["n"].to_numpy()) if gt is not None
                  else (np.zeros(0, np.uint64), np.zeros(0, np.uint64)))
        codes = np.array([_TYPE_CODE.get(x, 0) for x in bt["script_type"].to_pylist()], np.int8) \
            if bt is not None else np.zeros(0, np.int8)
        try:
            self.utxo.apply(k1, k2, bt["value"].to_numpy() if bt is not None else np.zeros(0, np.int64),
                            bt["address_id"].fill_null(-1).to_numpy() if bt is not None else np.zeros(0, np.int64),
                            codes, g1, g2)
            with self.ws.transaction() as txn:
                for name in TABLES:
                    txn.truncate_above(name, self.chain, fork_height)
                self.utxo.flush_into(txn)
                if first_id is not None:
                    self.addr.forget_from(first_id, txn)
                txn.set_chain(self.chain, kind="utxo", network=self.net.name,
                              tip_height=fork_height if fork_height >= 0 else None, tip_hash=fork_hash,
                              id_marks=marks)
        except BaseException:
            self.utxo.reload()
            self.addr.discard_pending()
            raise
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

@writes("ingest bitcoin")
def ingest_block_files(ws: Workspace, blocks_dir: Path | str, network: BitcoinNetwork | str = "mainnet", *,
                       progress: Progress = NullProgress(), batch_bytes: int = 32 << 20,
                       batch_blocks: int = 100_000, prevouts: Path | str | None = None,
                       start_height: int | None = None, max_blocks: int | None = None,
                       verify_merkle: bool = True,
                       compression: str | None = None, index_memory: int = 256 << 20,
                       jobs: int = 1) -> IngestStats:
    """Ingest Bitcoin Core block files (``blk*.dat``, XOR-obfuscated or not, or ``.bz2``) into ``ws``.

    Continues after the workspace's tip for the network's chain; follows the most-work chain the files hold
    (out-of-order and stale blocks handled; a better fork below the tip rolls the tables back to the fork).
    Tuning: ``batch_bytes``/``batch_blocks`` (commit granularity), ``prevouts`` (a btcd ``*.utxostore``
    file of known previous outputs), ``start_height`` (height of the first block when the files start
    mid-chain without a BIP-34 height), ``max_blocks`` (stop after this many), ``compression`` (Parquet
    codec of the batch tables: default lz4; ``"zstd"`` (level 1) writes 8-15% smaller files more slowly,
    ``"none"`` the largest the fastest),
    ``index_memory`` (bytes of RAM for the address and UTXO indexes; the rest of them is read from disk),
    ``jobs`` (processes parsing batches ahead of the commit, see parallel.py; 1: none, 0: one per core; with
    more than one, the batch's Parquet parts are also encoded in parallel threads). The tables are the same
    for every ``jobs``.

    A framing error (truncated or corrupt file) is raised as :class:`BlockFileError` naming the file and
    byte offset after every block before it has been committed; a block that does not parse raises
    :class:`DecodeError` the same way.
    """
    net = _network(network)
    t0 = time.monotonic()
    blocks_dir = Path(blocks_dir)
    files = BF.list_block_files(blocks_dir)
    src = BF.BlockSource(files, BF.read_xor_key(blocks_dir), tmp_dir=ws.home / "tmp")
    jobs = default_jobs() if jobs == 0 else max(1, jobs)
    ing = Ingester(ws, net, verify_merkle=verify_merkle, compression=compression,
                   index_memory=index_memory, write_threads=jobs)
    # the workers start now, before any thread of this ingest, and wait while the files are scanned
    pool = ParseAhead(jobs, src, verify_merkle, ws.home, batch_bytes=batch_bytes) if jobs > 1 else None
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
            new_h, new_hex = ing.tip()
            if new_h != chain.fork_height:  # back to an earlier commit (its address-id mark): re-plan
                chain = BF.best_chain(index, net, read_block,
                                      tip_hash=bytes.fromhex(new_hex)[::-1] if new_hex else None,
                                      tip_height=new_h, start_height=start_height)
        rows = chain.rows if max_blocks is None else chain.rows[:max_blocks]
        chain.rows = rows
        task = progress.task(f"ingest {net.chain} blocks", total=len(rows), unit="blocks")
        try:
            batches = BF.iter_batches(chain, index, batch_bytes, batch_blocks)
            ahead = pool.run(index, batches, rows) if pool is not None else ((pos, None) for pos in batches)
            for pos, parsed in ahead:
                r = rows[pos]
                if parsed is not None:
                    buf, starts, ends = parsed.batch.buf, parsed.batch.blk_start, parsed.batch.blk_end
                else:
                    buf, starts, ends = BF.gather(src, index, r)

                def where(off: int, r=r, starts=starts) -> tuple[str, int]:
                    k = int(np.searchsorted(starts, off, side="right") - 1)
                    return str(files[int(index.file[r[k]])]), int(index.offset[r[k]]) + off - int(starts[k])

                h0 = chain.first_height + int(pos[0])
                try:
                    ing.ingest_batch(buf, starts, ends, h0, where=where, parsed=parsed)
                except DecodeError as e:
                    raise _keep_before(ing, e, buf, starts, ends, h0, where) from None
                task.advance(len(r), MB=float(ends[-1]) / 1e6)
        finally:
            task.close()
            ahead.close()
        if index.error is not None and max_blocks is None:
            raise index.error
        return ing.stats(time.monotonic() - t0, chain.unconnected)
    finally:
        if pool is not None:
            pool.close()  # the workers stop now (also when a batch failed)
        ing.close()
        src.close()


def _keep_before(ing: Ingester, e: DecodeError, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, h0: int,
                 where: Callable[[int], tuple[str, int]]) -> DecodeError:
    """A block of a batch does not parse or verify: commit the blocks before it (they are valid), and
    return the error, saying what is kept and how to go on."""
    k = int(e.block) - h0 if isinstance(e.block, int) and h0 <= e.block < h0 + len(starts) else 0
    if k > 0:
        ing.ingest_batch(buf, starts[:k], ends[:k], h0, where=where)
    tip_h, _ = ing.tip()
    kept = (f"every block up to height {tip_h} is committed" if tip_h is not None
            else "no block is committed")
    return DecodeError(f"{e.message}; {kept}: repair or replace the file (e.g. copy it again from the node, "
                       "or let the node re-download the block) and run the same command again to continue "
                       "from there", path=e.path, offset=e.offset, block=e.block, field=e.field)


@writes("ingest bitcoin --prevouts")
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
    """Ingest from a Bitcoin Core node's JSON-RPC (see :func:`ingest_from_node` for the tuning options)."""
    transport = tuning.pop("transport", None)
    client = HttpRpc(url, cookie=cookie, transport=transport, timeout=tuning.pop("timeout", 60.0),
                     limits=tuning.pop("limits", None), **{k: tuning.pop(k) for k in ("retries", "backoff")
                                                           if k in tuning})
    try:
        return ingest_from_node(ws, client, _network(network), follow=follow, progress=progress, **tuning)
    finally:
        client.close()


@writes("ingest bitcoin --rpc")
def ingest_from_node(ws: Workspace, client: RpcClient, net: BitcoinNetwork, *, follow: bool = False,
                     progress: Progress = NullProgress(), start: int | None = None, end: int | None = None,
                     batch_blocks: int = 50, poll_interval: float = 5.0, max_polls: int | None = None,
                     prevouts_via_rpc: bool = False, stop: Callable[[], bool] | None = None,
                     index_memory: int = 256 << 20):
    """Ingest blocks from ``client`` after the workspace's tip (or from ``start``, default 0) to the node's
    tip (or ``end``), handling reorganisations; with ``follow`` keep polling every ``poll_interval`` s
    (``max_polls`` / ``stop()`` bound it)."""
    t0 = time.monotonic()
    info = client.call("getblockchaininfo")
    if not isinstance(info, dict):
        raise RpcError(f"getblockchaininfo answered a {type(info).__name__}, not an object",
                       url=getattr(client, "url", None), method="getblockchaininfo")
    node_net = CORE_CHAIN_NAMES.get(str(info.get("chain")), str(info.get("chain")))
    if node_net != net.name:
        raise ChainMismatchError(f"the node is on {node_net!r}, not {net.name!r}")
    ing = Ingester(ws, net, index_memory=index_memory)
    task = progress.task(f"ingest {net.chain} via RPC", unit="blocks")

    def resolve_missing(outpoints: list[tuple[str, int]]) -> dict[int, tuple[int, bytes]]:
        txids = sorted({t for t, _ in outpoints})
        try:
            txs = client.batch([("getrawtransaction", [t, True]) for t in txids])
        except RpcError:
            return {}
        by = dict(zip(txids, txs, strict=True))
        out = {}
        for j, (t, n) in enumerate(outpoints):
            tx = by.get(t)
            if tx and n < len(tx["vout"]):
                v = tx["vout"][n]
                out[j] = (sat(v["value"]), bytes.fromhex(v["scriptPubKey"]["hex"]))
        return out

    polls = 0
    unsettled = 0  # consecutive fetches spoilt by a reorganisation
    client_url = getattr(client, "url", None)
    try:
        while True:
            tip_h, tip_hash = ing.tip()
            node_h = int(client.call("getblockcount"))
            if tip_h is not None:
                node_hash = client.call("getblockhash", [tip_h]) if tip_h <= node_h else None
                if node_hash != tip_hash:
                    fork = _find_fork(ing, client, tip_h, node_h)
                    task.note(f"reorganisation: stored tip {tip_h} {tip_hash} is not on the node's chain; "
                              f"rolling back to {fork}")
                    ing.rollback_to(fork)
                    continue
                nxt = tip_h + 1
            else:
                nxt = start if start is not None else 0
            target = node_h if end is None else min(end, node_h)
            reorged = False
            while nxt <= target:
                hs = list(range(nxt, min(nxt + batch_blocks, target + 1)))
                hashes = client.batch([("getblockhash", [h]) for h in hs])
                try:
                    blocks = client.batch([("getblock", [bh, 3]) for bh in hashes])
                except RpcError as e:
                    if e.code != -5:  # -5: a block of the range is gone: the chain changed in between
                        raise
                    blocks = None
                cur_tip = ing.tip()[1]
                if blocks is None or any(not isinstance(x, dict) for x in blocks) or \
                        (cur_tip is not None and blocks and blocks[0].get("previousblockhash") != cur_tip) or \
                        any(blocks[i].get("previousblockhash") != blocks[i - 1].get("hash")
                            for i in range(1, len(blocks))):
                    # the node reorganised while the range was fetched: nothing of it is written; the
                    # outer loop checks the stored tip against the node again and fetches anew
                    unsettled += 1
                    if unsettled > 5:
                        raise RpcError(f"the node keeps reorganising blocks {hs[0]}..{hs[-1]}", url=client_url)
                    reorged = True
                    break
                unsettled = 0
                raws, knowns = [], {}
                base = 0
                for blk in blocks:
                    raw, known = raw_block_of(blk)
                    raws.append(raw)
                    for k, v in known.items():
                        knowns[base + k] = v
                    base += sum(len(t.get("vin", [])) for t in blk["tx"][1:])
                sizes = np.array([len(r) for r in raws], np.int64)
                ends = np.cumsum(sizes)
                buf = np.frombuffer(b"".join(raws), np.uint8)
                ing.ingest_batch(buf, ends - sizes, ends, hs[0], known=knowns or None,
                                 resolve_missing=resolve_missing if prevouts_via_rpc else None)
                task.advance(len(hs), MB=float(ends[-1]) / 1e6)
                nxt += len(hs)
                if stop is not None and stop():
                    break
            if reorged:
                continue
            if not follow or (stop is not None and stop()):
                break
            polls += 1
            if max_polls is not None and polls > max_polls:
                break
            seen = ws.generation
            with ws.writer_paused():  # other writers (tags import, cluster, …) may commit while we wait
                time.sleep(poll_interval)
            if ws.generation != seen:  # they did: read the indexes again from what is committed now
                totals, ing = ing.totals, Ingester(ws, net, index_memory=index_memory)
                ing.totals = totals
        return ing.stats(time.monotonic() - t0)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as e:
        # an answer of the wrong shape (a hostile or broken node): a clear error, nothing half-written
        raise RpcError(f"unexpected answer from the node ({type(e).__name__}: {str(e)[:200]})",
                       url=getattr(client, "url", None)) from e
    finally:
        task.close()
        ing.close()


def _find_fork(ing, client: RpcClient, tip_h: int, node_h: int) -> int:
    h = min(tip_h, node_h)
    while h >= 0:
        stored = ing.stored_hash_at(h)
        if stored is None:
            return h  # below what we hold: nothing to compare with
        if client.call("getblockhash", [h]) == stored:
            return h
        h -= 1
    return -1
