"""``ingest_evm``: blocks, transactions, receipts, logs, traces and withdrawals of an EVM chain over
JSON-RPC into the workspace, in batches that each commit atomically.

Per batch of blocks: ``eth_getBlockByNumber(hex, true)`` for each block; receipts with
``eth_getBlockReceipts(hex)`` or, where the node lacks it, ``eth_getTransactionReceipt(txhash)``; traces with
``debug_traceBlockByNumber(hex, {"tracer": "callTracer"})`` or ``trace_block(hex)`` (whichever the node
offers, probed once per run; with neither, that is said once and the rest is ingested); ``eth_call`` for the
symbol/name/decimals of tokens seen for the first time. All requests of a step go out as JSON-RPC batches.

Resume: the chain's tip (height and hash) is stored in the manifest in the same commit as the batch's rows,
so a killed run leaves the last committed batch and the next run continues after it. Reorgs: before each
batch the stored tip is checked against the node (the next block's parentHash, and the node's block at the
stored tip height); on a mismatch the run walks back to the highest block whose hash still agrees and
removes every evm_* row above it (``truncate_above``) before going on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from fundtrail.errors import ChainMismatchError, RpcError, SourceError
from fundtrail.ingest.evm import mappers as M
from fundtrail.ingest.evm.client import METHOD_NOT_FOUND, CallError, RpcClient, open_client
from fundtrail.ingest.evm.tokens import fetch_tokens, tokens_table
from fundtrail.model.chain import EVM_CHAIN_IDS, check_chain_name, evm_native_asset
from fundtrail.netclient import HttpLimits
from fundtrail.progress import NullProgress, Progress
from fundtrail.store.addresses import AddressBook
from fundtrail.store.workspace import Workspace, writes

log = logging.getLogger(__name__)

# what reading an answer of the wrong shape raises (a string where a dict was expected, a missing field …)
MALFORMED = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)
EVM_TABLES = ("evm_blocks", "evm_transactions", "evm_transfers", "evm_logs")
TRACE_METHODS = ("debug", "trace", "none")
MAX_REORG_DEPTH = 10_000
# commits remembered with the address-id count after them (chain state ``id_marks``: [height, next id]),
# the points a reorganisation can roll the address dictionary back to
ID_MARKS = 512
_UNSUPPORTED_WORDS = ("not support", "unsupported", "does not exist", "not available", "method not found",
                      "not found", "unknown method", "not enabled")


@dataclass(frozen=True, slots=True)
class IngestStats:
    chain: str
    chain_id: int | None
    first_height: int | None
    last_height: int | None
    blocks: int
    transactions: int
    transfers: int
    logs: int
    tokens: int
    reorgs: int
    rolled_back_blocks: int
    trace_method: str  # debug | trace | none | unknown (nothing needed tracing)
    receipts_method: str  # block | tx | unknown
    requests: int
    seconds: float


def _unsupported(err: CallError) -> bool:
    msg = err.message.lower()
    return err.code == METHOD_NOT_FOUND or any(w in msg for w in _UNSUPPORTED_WORDS)


class _Run:
    def __init__(self, ws: Workspace, client: RpcClient, chain: str, progress: Progress, *, batch_blocks: int,
                 trace_method: str, receipts_method: str, trace_batch_txs: int = 200) -> None:
        self.trace_batch_txs = max(1, trace_batch_txs)
        self.ws = ws
        self.client = client
        self.chain = chain
        self.progress = progress
        self.batch_blocks = max(1, batch_blocks)
        self.trace_method = trace_method  # auto | debug | trace | none
        self.receipts_method = receipts_method  # auto | block | tx
        self.native = evm_native_asset(chain)
        self.book = AddressBook(ws, chain)
        self.known_tokens = set(ws.read("tokens", chain, columns=["address"])["address"].to_pylist())
        self.blocks = self.txs = self.transfers = self.logs = self.tokens = 0
        self.reorgs = self.rolled_back = 0
        self.first: int | None = None
        self.last: int | None = None
        self.chain_id: int | None = None
        self.task = progress.task(f"ingest {chain}", None, "blocks")

    # --- chain identity --------------------------------------------------------------------------
    def check_chain(self) -> None:
        state = self.ws.chain(self.chain)
        if state is not None and state.get("kind") not in (None, "evm"):
            raise ChainMismatchError(f"chain {self.chain!r} is a {state.get('kind')} chain in this workspace, "
                                     "not an EVM chain")
        r = self.client.batch([("eth_chainId", [])], errors=True)[0]
        if isinstance(r, CallError):
            if not _unsupported(r):
                r.raise_(self.client.url)
            self.task.note(f"{self.client.url}: the node does not answer eth_chainId; chain id not checked")
            got = None
        else:
            got = M.qty(r)
        want = EVM_CHAIN_IDS.get(self.chain)
        stored = state.get("chain_id") if state else None
        if got is not None:
            if want is not None and got != want:
                raise ChainMismatchError(f"the node at {self.client.url} is chain id {got}, but {self.chain!r} is "
                                         f"chain id {want}; pick another --chain name")
            if stored is not None and got != stored:
                raise ChainMismatchError(f"the node at {self.client.url} is chain id {got}, but this workspace "
                                         f"knows {self.chain!r} as chain id {stored}")
        self.chain_id = got if got is not None else stored

    def node_tip(self) -> int:
        r = self.client.batch([("eth_blockNumber", [])], errors=True)[0]
        if isinstance(r, CallError):
            if not _unsupported(r):
                r.raise_(self.client.url)
            b = self.client.call("eth_getBlockByNumber", ["latest", False])
            return int(M.qty(b["number"]) or 0)
        return int(M.qty(r) or 0)

    # --- probing ----------------------------------------------------------------------------------
    def probe(self, height: int) -> None:
        if self.receipts_method == "auto":
            r = self.client.batch([("eth_getBlockReceipts", [hex(height)])], errors=True)[0]
            if isinstance(r, CallError) and _unsupported(r):
                self.receipts_method = "tx"
            elif isinstance(r, CallError):
                r.raise_(self.client.url)
            else:
                self.receipts_method = "block"
        if self.trace_method == "auto":
            if height == 0:
                return  # genesis cannot be traced; probe on the next block
            # trace_block first: where a node offers both (anvil, Erigon, Reth, Nethermind) it is the cheap one
            # (anvil answers trace_block in ~2 ms a block; its callTracer re-executes the block once per
            # transaction, ~2.4 s for a 100-transaction block); geth offers only debug_traceBlockByNumber.
            r = self.client.batch([("trace_block", [hex(height)])], errors=True)[0]
            if not isinstance(r, CallError):
                self.trace_method = "trace"
                return
            if not _unsupported(r):
                r.raise_(self.client.url)
            r = self.client.batch([("debug_traceBlockByNumber", [hex(height), {"tracer": "callTracer"}])],
                                  errors=True)[0]
            if not isinstance(r, CallError):
                self.trace_method = "debug"
                return
            if not _unsupported(r):
                r.raise_(self.client.url)
            self.trace_method = "none"
            msg = (f"{self.client.url}: the node offers neither debug_traceBlockByNumber (callTracer) nor "
                   "trace_block: internal transfers (contract-to-address value, creations, self-destructs) are "
                   "NOT ingested for this run; top-level values, token transfers, fees and withdrawals are")
            log.warning(msg)
            self.task.note(msg)

    # --- reorgs -----------------------------------------------------------------------------------
    def stored_tip(self) -> tuple[int, str] | None:
        s = self.ws.chain(self.chain)
        if not s or s.get("tip_height") is None:
            return None
        return int(s["tip_height"]), str(s["tip_hash"])

    def check_tip(self) -> None:
        """Roll back if the node no longer has our tip block."""
        tip = self.stored_tip()
        if tip is None:
            return
        b = self.client.call("eth_getBlockByNumber", [hex(tip[0]), False])
        if b is None or str(b["hash"]).lower() != tip[1]:
            self.rollback()

    def rollback(self) -> None:
        tip = self.stored_tip()
        assert tip is not None
        height = tip[0]
        stored = self.ws.read("evm_blocks", self.chain, columns=["height", "hash"],
                              filter=pc.field("height") >= max(0, height - MAX_REORG_DEPTH))
        ours = dict(zip(stored["height"].to_pylist(), stored["hash"].to_pylist(), strict=True))
        fork: int | None = None
        fork_hash: str | None = None
        h = height
        while h >= 0 and fork is None and height - h <= MAX_REORG_DEPTH:
            lo = max(0, h - 31)
            heights = list(range(h, lo - 1, -1))
            res = self.client.batch([("eth_getBlockByNumber", [hex(x), False]) for x in heights])
            for x, b in zip(heights, res, strict=True):
                if b is not None and x in ours and str(b["hash"]).lower() == ours[x]:
                    fork, fork_hash = x, ours[x]
                    break
                if x not in ours and x < min(ours, default=0):
                    fork, fork_hash = x, None  # below what this workspace holds
                    break
            h = lo - 1
        if fork is None and h < 0:
            fork = -1
        if fork is None:
            raise SourceError(f"chain {self.chain}: reorg deeper than {MAX_REORG_DEPTH} blocks below {height}")
        # roll back to the last commit at or below the fork: the address ids handed out after it (in the
        # order of that batch) are dropped with its rows, so the dictionary holds no address seen only in
        # orphaned blocks and the ids equal those of a clean ingest of the final chain (same batches)
        marks = [m for m in (self.ws.chain(self.chain) or {}).get("id_marks") or [] if m[0] <= fork]
        first_id: int | None = None
        if marks:
            fork, first_id = int(marks[-1][0]), int(marks[-1][1])
            fork_hash = ours.get(fork)
        else:
            note = (f"chain {self.chain}: no address-id mark at or below height {fork} (a workspace ingested "
                    "before marks were kept, or a reorg deeper than they reach): the ids of addresses seen "
                    "only in the orphaned blocks are kept")
            log.warning(note)
            self.task.note(note)
        with self.ws.transaction() as txn:
            for t in EVM_TABLES:
                txn.truncate_above(t, self.chain, fork)
            txn.truncate_column_above("tokens", self.chain, "first_height", fork)
            if first_id is not None:
                txn.truncate_column_above("addresses", self.chain, "address_id", first_id - 1)
            if fork >= 0:
                if fork_hash is None:
                    b = self.client.call("eth_getBlockByNumber", [hex(fork), False])
                    fork_hash = str(b["hash"]).lower()
                txn.set_chain(self.chain, tip_height=fork, tip_hash=fork_hash, id_marks=marks)
            else:
                txn.set_chain(self.chain, tip_height=None, tip_hash=None, id_marks=marks)
        self.book = AddressBook(self.ws, self.chain)
        self.known_tokens = set(self.ws.read("tokens", self.chain, columns=["address"])["address"].to_pylist())
        self.reorgs += 1
        self.rolled_back += height - fork
        msg = f"chain {self.chain}: reorg: rolled back {height - fork} blocks to height {fork}"
        log.warning(msg)
        self.task.note(msg)

    # --- one batch --------------------------------------------------------------------------------
    def fetch_blocks(self, heights: Sequence[int]) -> list[dict[str, Any]] | None:
        """Full blocks of ``heights``, linked by parentHash; None when the node reorganised meanwhile."""
        blocks = self.client.batch([("eth_getBlockByNumber", [hex(h), True]) for h in heights])
        out = []
        for h, b in zip(heights, blocks, strict=True):
            if b is None:
                break  # beyond the node's tip (it may have shrunk)
            if out and str(b["parentHash"]).lower() != str(out[-1]["hash"]).lower():
                return None
            if M.qty(b["number"]) != h:
                raise RpcError(f"asked for block {h}, got {b.get('number')}", url=self.client.url,
                               method="eth_getBlockByNumber")
            out.append(b)
        return out

    def fetch_receipts(self, blocks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        with_txs = [b for b in blocks if b.get("transactions")]
        if not with_txs:
            return {}
        out: dict[str, dict[str, Any]] = {}
        if self.receipts_method == "block":
            res = self.client.batch([("eth_getBlockReceipts", [b["number"] if isinstance(b["number"], str)
                                                               else hex(b["number"])]) for b in with_txs])
            for b, rcs in zip(with_txs, res, strict=True):
                if rcs is None:
                    raise _Reorganised(f"no receipts for block {M.qty(b['number'])}")
                for rc in rcs:
                    out[str(rc["transactionHash"]).lower()] = rc
        else:
            hashes = [str(tx["hash"]).lower() for b in with_txs for tx in b["transactions"]]
            res = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            for h, rc in zip(hashes, res, strict=True):
                if rc is None:
                    raise _Reorganised(f"no receipt for transaction {h}")
                out[h] = rc
        for b in with_txs:
            bh = str(b["hash"]).lower()
            for tx in b["transactions"]:
                rc = out.get(str(tx["hash"]).lower())
                if rc is None:
                    raise _Reorganised(f"block {M.qty(b['number'])}: no receipt for {tx['hash']}")
                if rc.get("blockHash") is not None and str(rc["blockHash"]).lower() != bh:
                    raise _Reorganised(f"block {M.qty(b['number'])}: the receipt of {tx['hash']} is from block "
                                       f"{rc['blockHash']}")
        return out

    def fetch_traces(self, blocks: Sequence[dict[str, Any]]
                     ) -> list[tuple[dict[str, list[M.Move]] | None, list[M.Move]]]:
        """Per block: moves by tx hash (None when not traced) and rewards."""
        if self.trace_method in ("none", "auto"):
            return [(None, []) for _ in blocks]
        need = [b for b in blocks if b.get("transactions") or self.trace_method == "trace"]
        need = [b for b in need if M.qty(b["number"]) != 0]
        if self.trace_method == "debug":
            need = [b for b in need if b.get("transactions")]
            calls = [("debug_traceBlockByNumber", [hex(M.qty(b["number"]) or 0), {"tracer": "callTracer"}])
                     for b in need]
        else:
            calls = [("trace_block", [hex(M.qty(b["number"]) or 0)]) for b in need]
        # one JSON-RPC batch carries at most ``trace_batch_txs`` transactions (at least one block): the node's
        # tracing cost grows with the transactions (superlinearly for anvil's callTracer), and one huge batch
        # would outlast the HTTP timeout
        res: list[Any] = []
        i = 0
        while i < len(calls):
            j, txs = i, 0
            while j < len(calls) and (j == i or txs + len(need[j].get("transactions") or ()) <= self.trace_batch_txs):
                txs += len(need[j].get("transactions") or ())
                j += 1
            res.extend(self.client.batch(calls[i:j]))
            i = j
        got: dict[int, tuple[dict[str, list[M.Move]] | None, list[M.Move]]] = {}
        for b, r in zip(need, res, strict=True):
            h = M.qty(b["number"]) or 0
            if self.trace_method == "debug":
                got[h] = (callTracer_moves(b, r, h), [])
            else:
                got[h] = M.moves_from_parity(r or [])
        return [got.get(M.qty(b["number"]) or 0, ({}, [])) for b in blocks]

    def fetch(self, heights: Sequence[int]) -> _Fetched:
        """Everything the node has for ``heights`` (no workspace access: runs on the prefetch thread). A
        reorganisation while the batch is fetched (blocks that no longer link, receipts missing or from
        another block) fetches the whole batch again, up to 5 times."""
        why = ""
        for attempt in range(5):
            if attempt:
                time.sleep(0.5)
            blocks = self.fetch_blocks(heights)
            if blocks is None:
                why = "its blocks do not link"
                continue
            if not blocks:
                return _Fetched(list(heights), [], {}, [])
            try:
                receipts = self.fetch_receipts(blocks)
            except _Reorganised as e:
                why = str(e)
                log.info("chain %s: blocks %d..%d changed while fetched (%s); fetching them again", self.chain,
                         heights[0], heights[-1], e)
                continue
            return _Fetched(list(heights), blocks, receipts, self.fetch_traces(blocks))
        raise SourceError(f"chain {self.chain}: the node keeps reorganising blocks {heights[0]}..{heights[-1]} "
                          f"({why})")

    def ingest_batch(self, heights: Sequence[int], fetched: _Fetched | None = None) -> int:
        """Fetch (unless ``fetched`` was prefetched) and commit ``heights``; returns how many blocks were
        committed (0: reorg handled or nothing there; -1: the prefetched batch no longer links to our tip)."""
        tip = self.stored_tip()
        f = fetched if fetched is not None else self.fetch(heights)
        blocks = f.blocks
        if not blocks:
            return 0
        if tip is not None and M.qty(blocks[0]["number"]) == tip[0] + 1 and \
                str(blocks[0]["parentHash"]).lower() != tip[1]:
            if fetched is not None:
                return -1  # fetched before the node changed: fetch again before deciding it is a reorg
            self.rollback()
            return 0
        receipts, traces = f.receipts, f.traces
        ids_before = len(self.book)
        rows = M.Rows()
        for b, (moves, rewards) in zip(blocks, traces, strict=True):
            M.add_block(rows, b, receipts, moves, rewards, self.native)
        tables = M.to_tables(rows, self.chain, self.book.ids)
        new_tokens = [a for a in rows.token_first_seen if a not in self.known_tokens]
        tok = fetch_tokens(self.client, new_tokens) if new_tokens else []
        last = blocks[-1]
        marks = list((self.ws.chain(self.chain) or {}).get("id_marks") or [])
        if not marks:
            marks = [[M.qty(blocks[0]["number"]) - 1, ids_before]]
        marks = (marks + [[M.qty(last["number"]), len(self.book)]])[-ID_MARKS:]
        with self.ws.transaction() as txn:
            for name, t in tables.items():
                txn.append(name, self.chain, t)
            if tok:
                txn.append("tokens", self.chain, tokens_table(self.chain, tok, rows.token_first_seen))
            self.book.flush_into(txn)
            for name in (*tables, "tokens", "addresses"):  # few files per table (Workspace.merge_tail)
                txn.merge_tail(name, self.chain)
            txn.set_chain(self.chain, kind="evm", network=self.chain, chain_id=self.chain_id,
                          tip_height=M.qty(last["number"]), tip_hash=str(last["hash"]).lower(),
                          trace_method=self.trace_method if self.trace_method != "auto" else None,
                          native_asset=self.native, id_marks=marks)
        self.known_tokens.update(new_tokens)
        n = len(blocks)
        self.blocks += n
        self.txs += tables["evm_transactions"].num_rows
        self.transfers += tables["evm_transfers"].num_rows
        self.logs += tables["evm_logs"].num_rows
        self.tokens += len(tok)
        h0 = M.qty(blocks[0]["number"])
        self.first = h0 if self.first is None else self.first
        self.last = M.qty(last["number"])
        self.task.advance(n, transfers=tables["evm_transfers"].num_rows)
        return n


class _Reorganised(Exception):
    """The node's chain changed while a batch was being fetched."""


@dataclass(slots=True)
class _Fetched:
    heights: list[int]
    blocks: list[dict[str, Any]]
    receipts: dict[str, dict[str, Any]]
    traces: list[tuple[dict[str, list[M.Move]] | None, list[M.Move]]]


def callTracer_moves(block: dict[str, Any], result: Any, height: int) -> dict[str, list[M.Move]]:  # noqa: N802
    txs = block.get("transactions") or []
    out: dict[str, list[M.Move]] = {}
    for i, item in enumerate(result or []):
        if item.get("error") and not item.get("result"):
            raise RpcError(f"block {height}: tracing transaction {i} failed: {item['error']}",
                           method="debug_traceBlockByNumber")
        txh = item.get("txHash") or (txs[i]["hash"] if i < len(txs) else None)
        frame = item.get("result", item)
        if txh is None:
            raise RpcError(f"block {height}: trace {i} has no transaction", method="debug_traceBlockByNumber")
        out[str(txh).lower()] = M.moves_from_calltracer(frame)
    return out


@writes("ingest evm")
def ingest_evm(ws: Workspace, rpc_url: str, chain: str, *, start: int | None = None, end: int | None = None,
               follow: bool = False, progress: Progress | None = None, batch_blocks: int = 20,
               max_batch: int = 100, trace_method: str = "auto", receipts_method: str = "auto",
               poll_interval: float = 2.0, max_polls: int | None = None, client: RpcClient | None = None,
               should_stop: Callable[[], bool] | None = None, prefetch: bool = True, trace_batch_txs: int = 200,
               timeout: float = 60.0, limits: HttpLimits | None = None, retries: int = 6) -> IngestStats:
    """Ingest blocks ``start``..``end`` (default: after the stored tip, up to the node's tip) of the EVM
    chain named ``chain`` from ``rpc_url`` (http(s):// or a file:// replay). With ``follow``, keep polling
    for new blocks (``poll_interval`` seconds; ``max_polls`` bounds it, e.g. for tests).

    ``batch_blocks`` blocks are fetched and committed together; ``max_batch`` bounds the requests of one
    JSON-RPC batch. ``trace_method`` forces debug | trace | none (default: probe, trace_block first).
    With ``prefetch`` the next batch is fetched on a second thread while the current one is mapped and
    committed (commits stay in order, one per batch, on the calling thread). Trace requests go out in JSON-RPC
    batches of at most ``trace_batch_txs`` transactions. ``timeout``: seconds per HTTP request (a batch that
    times out is split; a single request that keeps timing out raises RpcError naming method and block).
    ``limits``: size cap and per-call deadline of each HTTP call (``client.DEFAULT_LIMITS``); ``retries``:
    attempts after the first for errors worth retrying (with exponential backoff).
    """
    if trace_method not in ("auto", *TRACE_METHODS):
        raise ValueError(f"trace_method must be auto, debug, trace or none, not {trace_method!r}")
    check_chain_name(chain)
    t0 = time.monotonic()
    own = client is None
    cl = client or open_client(rpc_url, max_batch=max_batch, timeout=timeout, limits=limits, retries=retries)
    run = _Run(ws, cl, chain, progress or NullProgress(), batch_blocks=batch_blocks, trace_method=trace_method,
               receipts_method=receipts_method, trace_batch_txs=trace_batch_txs)
    pool: ThreadPoolExecutor | None = None
    try:
        run.check_chain()
        run.check_tip()
        polls = 0
        while True:
            tip = run.stored_tip()
            nxt = tip[0] + 1 if tip else (start or 0)
            if start is not None and tip is not None and start > nxt:
                nxt = start  # a gap was asked for
            target = end if end is not None else run.node_tip()
            ahead: Future[_Fetched] | None = None  # the next batch, fetched while this one is mapped and committed
            while nxt <= target:
                if should_stop is not None and should_stop():
                    break
                if run.receipts_method == "auto" or run.trace_method == "auto":
                    run.probe(max(nxt, 1) if nxt == 0 and target >= 1 else nxt)
                heights = list(range(nxt, min(target, nxt + run.batch_blocks - 1) + 1))
                fetched = None
                if ahead is not None:
                    if ahead.done() or not ahead.cancel():
                        got = ahead.result()  # a fetch error surfaces here, as it would have inline
                        fetched = got if got.heights == heights else None
                    ahead = None
                if heights[-1] < target and prefetch and "auto" not in (run.trace_method, run.receipts_method):
                    h1 = heights[-1] + 1
                    pool = pool or ThreadPoolExecutor(1, thread_name_prefix="evm-prefetch")
                    ahead = pool.submit(run.fetch, list(range(h1, min(target, h1 + run.batch_blocks - 1) + 1)))
                done = run.ingest_batch(heights, fetched)
                if done < 0:
                    if ahead is not None and not ahead.cancel():
                        with contextlib.suppress(Exception):
                            ahead.result()
                    ahead = None
                    done = run.ingest_batch(heights)
                if done == 0:
                    if ahead is not None and not ahead.cancel():
                        with contextlib.suppress(Exception):
                            ahead.result()
                    ahead = None
                    tip = run.stored_tip()
                    new_nxt = tip[0] + 1 if tip else (start or 0)
                    if new_nxt == nxt:
                        break  # the node has no more blocks for now
                    nxt = new_nxt
                    continue
                nxt += done
            if not follow or (should_stop is not None and should_stop()):
                break
            polls += 1
            if max_polls is not None and polls > max_polls:
                break
            seen = ws.generation
            with ws.writer_paused():  # other writers (tags import, cluster, …) may commit while we wait
                time.sleep(poll_interval)
            if ws.generation != seen:  # they did: read the address ids and tokens again
                run.book = AddressBook(ws, chain)
                run.known_tokens = set(ws.read("tokens", chain, columns=["address"])["address"].to_pylist())
            run.check_tip()
    except MALFORMED as e:  # an answer of the wrong shape (a hostile or broken node): a clear error
        raise RpcError(f"unexpected answer from the node ({type(e).__name__}: {str(e)[:200]})",
                       url=cl.url) from e
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        run.task.close()
        if own:
            cl.close()
    return IngestStats(chain, run.chain_id, run.first, run.last, run.blocks, run.txs, run.transfers, run.logs,
                       run.tokens, run.reorgs, run.rolled_back, run.trace_method if run.trace_method != "auto"
                       else "unknown", run.receipts_method if run.receipts_method != "auto" else "unknown",
                       cl.requests_sent, time.monotonic() - t0)
