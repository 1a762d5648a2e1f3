"""Watches: fire when funds at a watched target move, with the spending transaction and a one-hop trace.

A watch names an address, a cluster (funds leave it) or an incident (its seed addresses) on one chain. The
follower scans only the blocks it has not scanned yet, reading only the workspace parts that hold them
(parts record their lowest and highest height), filtered by the watched address ids: the cost follows the
new blocks, not the size of the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.errors import FieldError, NotFoundError
from fundtrail.incidents import get_incident
from fundtrail.model.address import normalize
from fundtrail.model.amount import format_units
from fundtrail.monitor.alerts import new_id, now_iso
from fundtrail.store import Workspace
from fundtrail.store import schema as S

TARGETS = ("address", "cluster", "incident")


@dataclass(frozen=True, slots=True)
class Watch:
    watch_id: str
    created: str
    chain: str
    target_kind: str  # address | cluster | incident
    target: str
    note: str | None
    from_height: int  # the chain's tip when the watch was made: movements after it fire
    key_name: str | None = None
    removed: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"watch_id": self.watch_id, "created": self.created, "chain": self.chain,
                "target_kind": self.target_kind, self.target_kind: self.target, "note": self.note,
                "from_height": self.from_height, "created_by": self.key_name, "removed": self.removed}


class WatchBook:
    _COLS = ("watch_id", "created", "chain", "target_kind", "target", "note", "from_height", "key_name", "removed")

    def __init__(self, db: Any) -> None:
        self.db = db

    def add(self, ws: Workspace, chain: str, *, address: str | None = None, cluster_id: int | None = None,
            incident: str | None = None, note: str | None = None, by: str | None = None) -> Watch:
        given = [k for k, v in (("address", address), ("cluster_id", cluster_id), ("incident", incident))
                 if v is not None]
        if len(given) != 1:
            raise FieldError("address", "give exactly one of address, cluster_id, incident")
        state = ws.chain(chain)
        if state is None:
            raise FieldError("chain", f"unknown chain {chain!r} (known: {', '.join(sorted(ws.chains())) or 'none'})")
        if address is not None:
            try:
                kind, target = "address", normalize(chain, address)
            except Exception as e:  # noqa: BLE001 - AddressError and friends: a bad field
                raise FieldError("address", f"{address!r} is not a valid {chain} address ({e})") from None
        elif cluster_id is not None:
            kind, target = "cluster", str(int(cluster_id))
        else:
            assert incident is not None
            try:
                inc = get_incident(ws, incident)
            except NotFoundError as e:
                raise FieldError("incident", str(e)) from None
            if chain not in inc.chains:
                raise FieldError("chain", f"incident {incident!r} has no seeds on {chain!r}")
            kind, target = "incident", incident
        tip = state.get("tip_height")
        w = Watch(new_id("w"), now_iso(), chain, kind, target, note, int(tip) if tip is not None else -1, by)
        self.db.execute("INSERT INTO watches (watch_id, created, chain, target_kind, target, note, from_height, "
                        "key_name) VALUES (?,?,?,?,?,?,?,?)",
                        (w.watch_id, w.created, w.chain, w.target_kind, w.target, w.note, w.from_height, by))
        return w

    def list(self, include_removed: bool = False, chain: str | None = None) -> list[Watch]:
        sql = f"SELECT {', '.join(self._COLS)} FROM watches"
        where, params = [], []
        if not include_removed:
            where.append("removed IS NULL")
        if chain:
            where.append("chain = ?")
            params.append(chain)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [Watch(*r) for r in self.db.execute(sql + " ORDER BY watch_id", params)]

    def get(self, watch_id: str) -> Watch:
        rows = self.db.execute(f"SELECT {', '.join(self._COLS)} FROM watches WHERE watch_id = ?", (watch_id,))
        if not rows:
            raise NotFoundError(f"no watch {watch_id!r}")
        return Watch(*rows[0])

    def remove(self, watch_id: str) -> Watch:
        w = self.get(watch_id)
        if w.removed is None:
            self.db.execute("UPDATE watches SET removed = ? WHERE watch_id = ?", (now_iso(), watch_id))
        return self.get(watch_id)


# --- scanning -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Movement:
    """One transaction that moved watched funds."""

    chain: str
    txid: str
    height: int
    block_hash: str | None
    time: str | None
    spent: tuple[tuple[int, str | None, str, int], ...]  # (address id, address, asset, amount) leaving ``ids``
    destinations: tuple[tuple[int | None, str | None, str, int], ...]  # the same: the one-hop trace


def _parts(ws: Workspace, table: str, chain: str, lo: int) -> list[Any]:
    return [ws.home / p.file for p in ws.parts(table, chain) if p.hi is None or p.hi > lo]


def _read(ws: Workspace, table: str, chain: str, lo: int, hi: int, flt: Any, columns: list[str]) -> pa.Table:
    schema = S.schema_of(table)
    f = (pc.field("height") > lo) & (pc.field("height") <= hi)
    if flt is not None:
        f = f & flt
    tables = [pq.read_table(p, columns=columns, filters=f, schema=schema) for p in _parts(ws, table, chain, lo)]
    if not tables:
        return schema.empty_table().select(columns)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def address_names(ws: Workspace, chain: str, ids: list[int]) -> dict[int, str]:
    """Address strings of ids (ids are dense per part, so Parquet statistics skip most parts)."""
    if not ids:
        return {}
    t = ws.read("addresses", chain, columns=["address_id", "address"], filter=pc.field("address_id").isin(ids))
    return dict(zip(t["address_id"].to_pylist(), t["address"].to_pylist(), strict=True))


class Targets:
    """The address ids behind watches, cached across cycles.

    The address dictionary is append-only, so an address found once keeps its id, and one not found yet can
    only appear in dictionary parts not searched yet: each cycle reads only those. A cluster's members are
    cached until the clustering changes (other cluster_members parts)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._ids: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str], frozenset[str]] = {}  # parts already searched for an unknown address
        self._clusters: dict[tuple[str, int], tuple[tuple[str, ...], np.ndarray]] = {}
        self._names: dict[tuple[str, int], str] = {}
        self._ranges: dict[str, tuple[int, int] | None] = {}  # id range of each dictionary part

    def prepare(self, watches: list[Watch]) -> None:
        """Resolve the addresses of ``watches`` in one pass (one read per dictionary part, not per watch)."""
        by: dict[str, list[str]] = {}
        for w in watches:
            if w.target_kind == "cluster":
                self.cluster(w.chain, int(w.target))
            else:
                by.setdefault(w.chain, []).extend(self._addresses(w))
        for chain, addrs in by.items():
            self.resolve(chain, addrs)

    def _addresses(self, w: Watch) -> list[str]:
        if w.target_kind == "address":
            return [w.target]
        inc = get_incident(self.ws, w.target)
        return [s.address for s in inc.seeds if s.chain == w.chain and s.address]

    def _range(self, f: str) -> tuple[int, int] | None:
        if f not in self._ranges:
            md = pq.ParquetFile(self.ws.home / f).metadata
            col = md.schema.names.index("address_id")
            lo, hi = None, None
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                if st is None or not st.has_min_max:
                    lo = hi = None
                    break
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
            self._ranges[f] = (int(lo), int(hi)) if lo is not None and hi is not None else None
        return self._ranges[f]

    def names(self, chain: str, ids: list[int]) -> dict[int, str]:
        """Address strings of ids, reading only the dictionary parts whose id range holds one of them."""
        want = sorted({int(i) for i in ids if (chain, int(i)) not in self._names})
        if want:
            arr = np.array(want, np.int64)
            schema = S.schema_of("addresses")
            for p in self.ws.parts("addresses", chain):
                r = self._range(p.file)
                if r is not None and not np.any((arr >= r[0]) & (arr <= r[1])):
                    continue
                t = pq.read_table(self.ws.home / p.file, columns=["address_id", "address"],
                                  filters=pc.field("address_id").isin(want), schema=schema)
                for i, a in zip(t["address_id"].to_pylist(), t["address"].to_pylist(), strict=True):
                    self._names[(chain, int(i))] = a
            if len(self._names) > 1_000_000:
                self._names.clear()
        return {int(i): self._names[(chain, int(i))] for i in ids if (chain, int(i)) in self._names}

    def resolve(self, chain: str, addresses: list[str]) -> dict[str, int]:
        missing = sorted({a for a in addresses if (chain, a) not in self._ids})
        if missing:
            current = [p.file for p in self.ws.parts("addresses", chain)]
            todo: dict[str, list[str]] = {}  # part -> the addresses not looked for in it yet
            for a in missing:
                seen = self._seen.get((chain, a), frozenset())
                for f in current:
                    if f not in seen:
                        todo.setdefault(f, []).append(a)
            schema = S.schema_of("addresses")
            for f, want in todo.items():
                t = pq.read_table(self.ws.home / f, columns=["address_id", "address"],
                                  filters=pc.field("address").isin(want), schema=schema)
                for i, a in zip(t["address_id"].to_pylist(), t["address"].to_pylist(), strict=True):
                    self._ids[(chain, a)] = int(i)
                    self._names[(chain, int(i))] = a
            searched = frozenset(current)  # one set shared by every address still unknown
            for a in missing:
                if (chain, a) not in self._ids:
                    self._seen[(chain, a)] = searched
        return {a: self._ids[(chain, a)] for a in addresses if (chain, a) in self._ids}

    def cluster(self, chain: str, cluster_id: int) -> np.ndarray:
        key = tuple(p.file for p in self.ws.parts("cluster_members", chain))
        hit = self._clusters.get((chain, cluster_id))
        if hit is not None and hit[0] == key:
            return hit[1]
        t = self.ws.read("cluster_members", chain, columns=["address_id"],
                         filter=pc.field("cluster_id") == cluster_id)
        ids = t["address_id"].to_numpy()
        self._clusters[(chain, cluster_id)] = (key, ids)
        return ids

    def of(self, w: Watch) -> np.ndarray:
        if w.target_kind == "cluster":
            return self.cluster(w.chain, int(w.target))
        return np.array(sorted(self.resolve(w.chain, self._addresses(w)).values()), np.int64)


def _blocks(ws: Workspace, chain: str, utxo: bool, heights: list[int]) -> dict[int, tuple[str, str | None]]:
    if not heights:
        return {}
    t = _read(ws, "utxo_blocks" if utxo else "evm_blocks", chain, min(heights) - 1, max(heights),
              pc.field("height").isin(heights), ["height", "hash", "time"])
    return {int(h): (hs, tm.strftime("%Y-%m-%dT%H:%M:%SZ") if tm is not None else None)
            for h, hs, tm in zip(t["height"].to_pylist(), t["hash"].to_pylist(), t["time"].to_pylist(), strict=True)}


def block_hashes(ws: Workspace, chain: str, heights: list[int]) -> dict[int, str | None]:
    """The stored hash at each height (None above the tip or below the first block)."""
    utxo = (ws.chain(chain) or {}).get("kind") == "utxo"
    got = _blocks(ws, chain, utxo, heights)
    return {h: (got[h][0] if h in got else None) for h in heights}


def movements(ws: Workspace, chain: str, ids: np.ndarray, lo: int, hi: int,
              targets: Targets | None = None) -> list[Movement]:
    """Transactions in blocks ``lo`` < height <= ``hi`` spending from ``ids``, with where the funds went
    (``targets`` names the addresses from its caches)."""
    if len(ids) == 0 or hi <= lo:
        return []
    utxo = (ws.chain(chain) or {}).get("kind") == "utxo"
    idl = pa.array(np.asarray(ids, np.int64))
    if utxo:
        sp = _read(ws, "utxo_inputs", chain, lo, hi, pc.field("address_id").isin(idl),
                   ["height", "txid", "value", "address_id"])
        if sp.num_rows == 0:
            return []
        txids = pc.unique(sp["txid"])
        dst = _read(ws, "utxo_outputs", chain, lo, hi, pc.field("txid").isin(txids),
                    ["height", "txid", "n", "value", "address_id"]).sort_by([("txid", "ascending"),
                                                                             ("n", "ascending")])
        sp_rows = [(bytes(t).hex(), int(h), a, "BTC", int(v)) for t, h, a, v in zip(
            sp["txid"].to_pylist(), sp["height"].to_pylist(), sp["address_id"].to_pylist(),
            sp["value"].to_pylist(), strict=True)]
        dst_rows = [(bytes(t).hex(), a, "BTC", int(v)) for t, a, v in zip(
            dst["txid"].to_pylist(), dst["address_id"].to_pylist(), dst["value"].to_pylist(), strict=True)]
    else:
        sp = _read(ws, "evm_transfers", chain, lo, hi, pc.field("from_id").isin(idl) & (pc.field("kind") != "fee"),
                   ["height", "txid", "from_id", "asset", "amount"])
        if sp.num_rows == 0:
            return []
        txids = pc.unique(sp["txid"])
        dst = _read(ws, "evm_transfers", chain, lo, hi, pc.field("txid").isin(txids) & (pc.field("kind") != "fee"),
                    ["height", "txid", "seq", "to_id", "asset", "amount"]).sort_by([("txid", "ascending"),
                                                                                   ("seq", "ascending")])
        sp_rows = [(t, int(h), a, s, int(v)) for t, h, a, s, v in zip(
            sp["txid"].to_pylist(), sp["height"].to_pylist(), sp["from_id"].to_pylist(), sp["asset"].to_pylist(),
            sp["amount"].to_pylist(), strict=True)]
        dst_rows = [(t, a, s, int(v)) for t, a, s, v in zip(
            dst["txid"].to_pylist(), dst["to_id"].to_pylist(), dst["asset"].to_pylist(), dst["amount"].to_pylist(),
            strict=True)]
    need = sorted({r[2] for r in sp_rows if r[2] is not None} | {r[1] for r in dst_rows if r[1] is not None})
    names = targets.names(chain, need) if targets is not None else address_names(ws, chain, need)
    blocks = _blocks(ws, chain, utxo, sorted({r[1] for r in sp_rows}))
    by_tx: dict[str, dict[str, Any]] = {}
    for txid, h, a, asset, v in sp_rows:
        e = by_tx.setdefault(txid, {"height": h, "spent": [], "dst": []})
        e["spent"].append((a, names.get(a), asset, v))
    for txid, a, asset, v in dst_rows:
        if txid in by_tx:
            by_tx[txid]["dst"].append((a, asset, v))
    out = []
    for txid, e in sorted(by_tx.items(), key=lambda kv: (kv[1]["height"], kv[0])):
        bh, bt = blocks.get(e["height"], (None, None))
        out.append(Movement(chain, txid, e["height"], bh, bt, tuple(e["spent"]),
                            tuple((a, names.get(a) if a is not None else None, s, v) for a, s, v in e["dst"])))
    return out


def amount_json(asset: str, amount: int, decimals: dict[str, int]) -> dict[str, Any]:
    d = 8 if asset == "BTC" else (18 if asset == "ETH" else decimals.get(asset))
    return {"asset": asset, "amount": format_units(amount, d) if d is not None else str(amount),
            "base_units": str(amount)}
