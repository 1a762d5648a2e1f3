"""The Bitcoin trace graph kept on disk, so that a new process opens it instead of building it again.

Building the output-level graph (:func:`~fundtrail.trace.graph.build_utxo_graph`) scans every block table
of the chain: seconds on a small world, minutes on one of ten million transactions. Every process that
traces paid that once (the CLI on every call, each service worker at start, the exposure build). The arrays
it produces are plain NumPy arrays, so they are written once as ``.npy`` files and later *memory-mapped*:
opening is instantaneous, only the pages a trace touches are read, and the service's workers share one copy
in the page cache.

Files: ``HOME/index/graph/CHAIN/KEY/`` with one ``NAME.npy`` per array, the OP_RETURN data as
``opret_nodes.npy`` / ``opret_offsets.npy`` / ``opret_data.npy``, the address -> outputs index
(:func:`~fundtrail.trace.graph.address_index`) as ``addr_ptr.npy`` / ``addr_order.npy`` (format 2: a
process that opens the graph looks up an address's outputs without a pass over every output), and
``meta.json`` (format version, chain, sizes). The format version is part of ``KEY``: a store written in an
older format is not read, the graph is built again and stored in the new one. ``KEY`` names the chain's committed part lists of the three tables the graph is built from
(``utxo_transactions``, ``utxo_outputs``, ``utxo_inputs``: file names and row counts), so a commit that adds
blocks gives a new key and the graph is built once more; commits that touch other tables (tags, clusters,
incidents) keep it. A directory appears whole or not at all (written under a temporary name, then renamed);
older keys of the chain are removed when a new one is written. It is derived data outside the manifest:
deleting ``HOME/index`` is always safe. A workspace the process may not write keeps its graph in the
temporary directory instead (``TMP/fundtrail-graph-UID/``).

The arrays are mapped copy-on-write (``mmap_mode="c"``): a caller that writes into one changes its own
private pages, never the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from fundtrail.store import Workspace
from fundtrail.store.derived import chain_dir, derived_root
from fundtrail.trace.asof import AsOfWorkspace

VERSION = 2  # 2: the address -> outputs index stored beside the arrays
TABLES = ("utxo_transactions", "utxo_outputs", "utxo_inputs")
ARRAYS = ("tx_height", "tx_time", "tx_fee", "tx_coinbase", "tx_out_ptr", "tx_in_ptr", "in_node", "in_value",
          "out_value", "out_addr", "out_n", "out_tx", "out_spent_tx", "out_opret")
INDEX = ("addr_ptr", "addr_order")
log = logging.getLogger(__name__)


def key(ws: Workspace, chain: str) -> str:
    """The key of the graph's inputs: the chain's committed part lists of the block tables."""
    parts = [[t, p.file, p.rows] for t in TABLES for p in ws.parts(t, chain)]
    return f"v{VERSION}-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _chain_dir(ws: Workspace, chain: str) -> Path:
    return chain_dir(derived_root(ws, "graph"), chain)


def load(ws: Workspace, chain: str, k: str) -> dict[str, Any] | None:
    """The stored graph of ``chain`` for key ``k`` as its fields (arrays memory-mapped, ``txid`` the (n, 32)
    byte matrix, ``op_return``, ``aux`` with the address index); None when there is none (or it is unreadable: it is then built again)."""
    d = _chain_dir(ws, chain) / k
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("version") != VERSION or meta.get("chain") != chain:
            return None
        arrays = {n: np.asarray(np.load(d / f"{n}.npy", mmap_mode="c")) for n in ARRAYS}
        raw = np.asarray(np.load(d / "txid.npy", mmap_mode="c"))
        addr_index = tuple(np.asarray(np.load(d / f"{n}.npy", mmap_mode="c")) for n in INDEX)
        nodes = np.load(d / "opret_nodes.npy")
        offsets = np.load(d / "opret_offsets.npy")
        blob = np.load(d / "opret_data.npy").tobytes()
    except (OSError, ValueError, json.JSONDecodeError) as e:
        if (d / "meta.json").exists():
            log.warning("trace graph cache %s unreadable (%s): building the graph again", d, e)
        return None
    op_return = {int(n): blob[int(offsets[i]):int(offsets[i + 1])] for i, n in enumerate(nodes.tolist())}
    return {"chain": chain, "txid": raw, "op_return": op_return, "aux": {"addr_index": addr_index}, **arrays}


def save(ws: Workspace, chain: str, k: str, g: Any) -> Path | None:
    """Write ``g`` as the stored graph of ``chain`` under key ``k`` (atomically); older keys are removed.
    Returns the directory, or None when it could not be written (the graph then stays in memory only)."""
    cdir = _chain_dir(ws, chain)
    final = cdir / k
    if final.exists():
        return final
    tmp = cdir / f".build-{uuid.uuid4().hex}"
    try:
        tmp.mkdir(mode=0o700, parents=True)
        for n in ARRAYS:
            np.save(tmp / f"{n}.npy", np.ascontiguousarray(getattr(g, n)))
        np.save(tmp / "txid.npy", np.ascontiguousarray(g.txid.raw))
        for n, a in zip(INDEX, g.address_index(), strict=True):
            np.save(tmp / f"{n}.npy", a)
        items = sorted(g.op_return.items())
        nodes = np.array([n for n, _ in items], np.int64)
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum([len(d) for _, d in items], out=offsets[1:])
        np.save(tmp / "opret_nodes.npy", nodes)
        np.save(tmp / "opret_offsets.npy", offsets)
        np.save(tmp / "opret_data.npy", np.frombuffer(b"".join(d for _, d in items), np.uint8))
        (tmp / "meta.json").write_text(json.dumps({"version": VERSION, "chain": chain, "key": k, "ntx": g.ntx,
                                                   "nout": g.nout, "nin": len(g.in_node)}))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process wrote the same key first
    except OSError as e:
        log.warning("trace graph of %s not kept on disk (%s)", chain, e)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    for old in cdir.iterdir():
        if old.name != k and not old.name.startswith(".build-"):
            shutil.rmtree(old, ignore_errors=True)  # a process still mapping it keeps its pages until it exits
    return final


def open_or_build(ws: Workspace, chain: str, build: Any, make: Any) -> Any:
    """The chain's graph from disk (``make(**fields)``) when its inputs have not changed, else
    ``build(ws, chain)``, then kept on disk. A view pinned at past heights (trace/asof.py) always builds:
    its graph is not the chain's, and replays are rare."""
    if isinstance(ws, AsOfWorkspace):
        return build(ws, chain)
    k = key(ws, chain)
    fields = load(ws, chain, k)
    if fields is not None:
        return make(**fields)
    g = build(ws, chain)
    if key(ws, chain) == k:  # no commit of blocks while it was built
        save(ws, chain, k, g)
    return g


__all__ = ["open_or_build", "load", "save", "key"]
