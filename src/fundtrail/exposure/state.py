"""What an index version keeps so that the next one can be made incrementally: ``vNNNNNN/state/``.

``state.json``
    ``format``; per chain: ``kind``, ``height`` and ``tip`` (the tip hash at build), the ``address_parts``
    the address table was read from and ``max_address_id``; per UTXO chain also ``complete`` (no input names
    an output the workspace lacks) and ``runs`` (one per kernel run, in emission order: ``gid``,
    ``direction``, ``max_hops``, ``include_seeds``, ``hop_offset``, ``prefix``, ``kind``); per chain the
    sources the update needs without resolving attribution again: ``since`` and ``seed_txids`` per gid;
    ``injections`` (the bridge crossings of stolen funds: chain -> [gid, release txid, amount, deposit
    txid]); ``pending_bridges``: the incidents whose trace stopped at a bridge deposit not released yet.
``static-<chain>.npz``
    what only a full build changes: per address id ``cluster`` (-1: none) and ``addr_stop`` (int8: 0 none,
    1 service, 2 pool; ids beyond either array: none), ``svc`` (bool per cluster id: a service's cluster),
    group members ``mem_gid`` / ``mem_aid``; shared by hard link between incremental versions.
``utxo-<chain>.npz``
    per address id ``recv``, ``sent`` (int64 totals); the hits (per run and address, emission order) ``h_run``, ``h_address_id``,
    ``h_amount``, ``h_hops``, ``h_best``; the frontier (per forward run, the reached outputs still unspent)
    ``f_run``, ``f_txid`` (n x 32 bytes), ``f_n``, ``f_value``, ``f_taint``, ``f_hop``, ``f_address_id``,
    ``f_peel``.
``paths-<chain>.parquet`` / ``frontier-paths-<chain>.parquet``
    one ``path`` (list of txids) per hit / frontier row, in the same order.
``evm-<chain>.json``
    the EVM chain's sources: ``members`` (gid -> address ids), ``stop`` (address id -> 1 service / 2 pool).

Only the newest two versions keep ``state/`` (it is not needed to replay a verdict).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.exposure.npz import read_npz
from fundtrail.store import Workspace

FORMAT = 1
DIR = "state"


def _paths_table(paths: list[list[str]]) -> pa.Table:
    return pa.table({"path": pa.array(paths, pa.list_(pa.string()))})


def write_state(vdir: Path, ws: Workspace, chains: list[str], all_chains: dict[str, dict[str, Any]], srcs: dict,
                parts: dict, inj: dict[str, list], addr_tables: dict[str, dict[str, np.ndarray]],
                pending: list[int]) -> None:
    d = vdir / DIR
    d.mkdir()
    doc: dict[str, Any] = {"format": FORMAT, "chains": {}, "injections": {c: [list(x) for x in v]
                                                                           for c, v in inj.items()},
                           "pending_bridges": sorted(pending)}
    for chain in chains:
        src = srcs[chain]
        info = all_chains[chain]
        ids = addr_tables[chain]["id"]
        c: dict[str, Any] = {"kind": info.get("kind"), "height": info.get("tip_height"), "tip": info.get("tip_hash"),
                             "address_parts": sorted(p.file for p in ws.parts("addresses", chain)),
                             "max_address_id": int(ids.max(initial=-1)),
                             "since": {str(g): v for g, v in src.since.items()},
                             "seed_txids": {str(g): v for g, v in src.seed_txids.items()}}
        part = parts.get(chain)
        if part is not None:
            c["complete"] = part.complete
            c["runs"] = part.runs
            mem = [(g, a) for g, ids_ in src.members.items() for a in ids_]
            h, f = part.hits, part.frontier
            np.savez(d / f"static-{chain}.npz", cluster=part.cluster, addr_stop=part.addr_stop, svc=part.svc,
                     mem_gid=np.array([g for g, _ in mem], np.int64), mem_aid=np.array([a for _, a in mem], np.int64))
            np.savez(d / f"utxo-{chain}.npz", recv=part.recv, sent=part.sent, h_run=h["run"], h_address_id=h["address_id"], h_amount=h["amount"], h_hops=h["hops"],
                     h_best=h["best"], f_run=f["run"], f_txid=f["txid"], f_n=f["n"], f_value=f["value"],
                     f_taint=f["taint"], f_hop=f["hop"], f_address_id=f["address_id"], f_peel=f["peel"])
            pq.write_table(_paths_table(h["path"]), d / f"paths-{chain}.parquet")
            pq.write_table(_paths_table(f["path"]), d / f"frontier-paths-{chain}.parquet")
        else:
            (d / f"evm-{chain}.json").write_text(json.dumps({
                "members": {str(g): [int(a) for a in v] for g, v in src.members.items()},
                "stop": {str(a): int(k) for a, k in src.stop.items()}}))
        doc["chains"][chain] = c
    (d / "state.json").write_text(json.dumps(doc))


@dataclass(slots=True)
class UtxoState:
    """A UTXO chain's stored state (arrays as loaded; paths read on demand)."""

    info: dict[str, Any]
    arrays: dict[str, np.ndarray]
    dir: Path
    chain: str

    def hit_paths(self) -> list[list[str]]:
        return pq.read_table(self.dir / f"paths-{self.chain}.parquet")["path"].to_pylist()

    def frontier_paths(self, rows: np.ndarray) -> dict[int, list[str]]:
        if not len(rows):
            return {}
        col = pq.read_table(self.dir / f"frontier-paths-{self.chain}.parquet")["path"]
        got = col.take(pa.array(rows)).to_pylist()
        return dict(zip(rows.tolist(), got, strict=True))


def read_doc(vdir: Path) -> dict[str, Any] | None:
    p = vdir / DIR / "state.json"
    try:
        doc = json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return doc if doc.get("format") == FORMAT else None


def read_utxo(vdir: Path, doc: dict[str, Any], chain: str) -> UtxoState:
    arrays: dict[str, np.ndarray] = {}
    for name in (f"static-{chain}.npz", f"utxo-{chain}.npz"):
        if not (vdir / DIR / name).exists() and name.startswith("static-"):
            continue  # an early layout kept these in utxo-<chain>.npz
        arrays.update(read_npz(vdir / DIR / name))
    return UtxoState(doc["chains"][chain], arrays, vdir / DIR, chain)


def read_evm(vdir: Path, chain: str) -> dict[str, Any]:
    return json.loads((vdir / DIR / f"evm-{chain}.json").read_text())


__all__ = ["write_state", "read_doc", "read_utxo", "read_evm", "UtxoState", "FORMAT"]
