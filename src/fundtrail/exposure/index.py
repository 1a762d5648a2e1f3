"""The exposure index: built from the workspace, stored as versions, loaded by the screening service.

A version is a directory ``HOME/exposure/vNNNNNN/`` (written under a temporary name, then renamed, then
named in ``CURRENT``): ``meta.json`` (heights per chain, tags digest, input digest, parameters, groups),
``exposure.parquet`` (one row per subject, direction, group and asset), ``labels.parquet`` (the resolved
attribution), ``sanctions.parquet`` (sanctions tags with their validity) and ``addresses-<chain>.npz``
(every address of the chain as a 64-bit key with its id and cluster id). Old versions are kept (``keep``)
so a verdict can be replayed on the data it was made with.

Subjects: an address in a cluster that is not a service is judged through its cluster (the wallet: the
sum over its addresses); a service's address (an exchange's deposit address) and an unclustered address
alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.exposure import evm as E
from fundtrail.exposure import utxo as U
from fundtrail.exposure.sources import STOLEN, Group, collect
from fundtrail.model.amount import format_units
from fundtrail.store import GLOBAL, Workspace

DIR = "exposure"
DEFAULT_MAX_HOPS = 6
DEFAULT_KEEP = 50
DIRECTIONS = ("received", "sent")

EXPOSURE_SCHEMA = pa.schema([
    ("chain", pa.string()), ("subject", pa.string()), ("subject_id", pa.int64()), ("address_id", pa.int64()),
    ("direction", pa.string()), ("gid", pa.int32()), ("asset", pa.string()), ("decimals", pa.int32()),
    ("amount", pa.string()), ("total", pa.float64()), ("hops", pa.int32()), ("path", pa.list_(pa.string())),
])


def _root(ws: Workspace) -> Path:
    return ws.home / DIR


def address_key(address: str) -> tuple[int, int]:
    """The 128-bit key an address is looked up by (BLAKE2b-128 as two signed int64: the sorted key and a
    check word, so that two addresses sharing the first 64 bits are still told apart)."""
    k = np.frombuffer(hashlib.blake2b(address.encode(), digest_size=16).digest(), "<i8")
    return int(k[0]), int(k[1])


def input_digest(ws: Workspace) -> dict[str, Any]:
    """What an index depends on: heights and tip hashes per chain, the tags/actors/incidents/cluster parts.
    Parts are immutable, so their names identify their content."""
    ws.refresh()

    def parts(table: str) -> list[str]:
        return sorted(p.file for p in ws.parts(table)) if ws.table_chains(table) else []

    tags = hashlib.sha256(json.dumps([parts("tags"), parts("actors")]).encode()).hexdigest()[:16]
    chains = ws.chains()
    heights = {c: v.get("tip_height") for c, v in sorted(chains.items())}
    rest = json.dumps([heights, {c: v.get("tip_hash") for c, v in sorted(chains.items())}, tags,
                       parts("incidents"), parts("cluster_members")])
    return {"heights": heights, "tags_digest": tags, "digest": hashlib.sha256(rest.encode()).hexdigest()[:16]}


# --- building ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Acc:
    """Rows being aggregated per (subject, direction, gid, asset)."""

    rows: dict[tuple, list[Any]] = field(default_factory=dict)

    def add(self, key: tuple, address_id: int, amount: int, hops: int, path: list[str], total: float) -> None:
        r = self.rows.get(key)
        if r is None:
            self.rows[key] = [address_id, amount, hops, path, total, amount]
        else:
            r[1] += amount
            r[2] = min(r[2], hops)
            if amount > r[5]:
                r[0], r[3], r[5] = address_id, path, amount


class ClusterMap:
    """Address id -> cluster id as a dense array (-1: not clustered)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def get(self, aid: int) -> int | None:
        if 0 <= aid < len(self.array):
            c = int(self.array[aid])
            return c if c >= 0 else None
        return None

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), -1, np.int64)
        ok = (ids >= 0) & (ids < len(self.array))
        out[ok] = self.array[ids[ok]]
        return out


def _cluster_map(ws: Workspace, chain: str) -> ClusterMap:
    if chain not in ws.table_chains("cluster_members"):
        return ClusterMap(np.full(0, -1, np.int64))
    t = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
    aid = np.asarray(t["address_id"].to_numpy(zero_copy_only=False), np.int64)
    cid = np.asarray(t["cluster_id"].to_numpy(zero_copy_only=False), np.int64)
    arr = np.full(int(aid.max(initial=-1)) + 1, -1, np.int64)
    arr[aid] = cid
    return ClusterMap(arr)


def _incident_injections(ws: Workspace, groups: list[Group], cs: dict, max_hops: int) -> dict[str, list]:
    """Stolen funds that crossed a bridge: (chain, gid, release txid, tainted amount) per crossing, from the
    trace of each incident (haircut, forward)."""
    from fundtrail.incidents import get_incident
    from fundtrail.trace.service import trace

    out: dict[str, list] = {}
    for g in groups:
        if g.category != STOLEN:
            continue
        inc = get_incident(ws, g.entity)
        seeds = [s for s in inc.seeds if s.chain in cs]
        if not seeds:
            continue
        res = trace(ws, seeds, model="haircut", max_hops=max_hops, since=inc.since)
        for c in res.bridges:
            if getattr(c, "kind", "bridge") == "bridge" and c.out_txid and c.to_chain in cs and c.to_amount > 0:
                out.setdefault(c.to_chain, []).append((g.gid, c.out_txid, int(c.to_amount), c.in_txid))
    return out


def _decimals(ws: Workspace, chain: str, assets: list[str]) -> dict[str, int]:
    dec = {a: 18 for a in assets}
    try:
        t = ws.query(f"SELECT lower(token) AS token, decimals FROM evm_tokens WHERE chain = '{chain}'")
        for tok, d in zip(t["token"].to_pylist(), t["decimals"].to_pylist(), strict=True):
            if tok in dec and d is not None:
                dec[tok] = int(d)
    except Exception:  # noqa: BLE001 - no token table: 18 decimals
        pass
    return dec


def _build_utxo(ws: Workspace, chain: str, groups: list[Group], src, inj: list, stop_kind: dict[int, bool],
                cmap: ClusterMap, max_hops: int, acc: _Acc) -> None:
    from fundtrail.trace.graph import utxo_graph

    g_ = utxo_graph(ws, chain)
    astop = U.stop_array(g_, src.stop)
    recv, sent = U.totals(g_)
    # per cluster (not a service): totals received and sent over its addresses
    cl = cmap.lookup(np.arange(len(recv), dtype=np.int64))
    svc = np.zeros(max(int(cl.max(initial=-1)) + 1, 1), np.bool_)
    for c in stop_kind:
        if c < len(svc):
            svc[c] = True
    keep = (cl >= 0) & ~svc[np.maximum(cl, 0)]
    ctot_r = np.bincount(cl[keep], weights=recv[keep], minlength=len(svc))
    ctot_s = np.bincount(cl[keep], weights=sent[keep], minlength=len(svc))
    by_gid = {g.gid: g for g in groups}

    def emit(h: U.Hits, gid: int, direction: str, hop_offset: int = 0, prefix: list[str] | None = None) -> None:
        for i, aid in enumerate(h.address_id.tolist()):
            path = (prefix or []) + h.paths[i]
            c = cmap.get(aid)
            if c is not None and not stop_kind.get(c, False):
                key = (chain, "cluster", c, direction, gid, "BTC")
                total = float((ctot_r if direction == "received" else ctot_s)[c])
            else:
                key = (chain, "address", aid, direction, gid, "BTC")
                total = float((recv if direction == "received" else sent)[aid]) if aid < len(recv) else 0.0
            acc.add(key, aid, int(h.amount[i]), int(h.hops[i]) + hop_offset, path, total)

    for gid, ids in src.members.items():
        g = by_gid[gid]
        seeds = U.seeds_of(g_, ids, src.since.get(gid), src.seed_txids.get(gid, []))
        if not len(seeds):
            continue
        emit(U.propagate(g_, astop, seeds, g_.out_value[seeds], max_hops, True), gid, "received")
        if g.category != STOLEN:
            emit(U.propagate(g_, astop, seeds, g_.out_value[seeds], max_hops, False), gid, "sent")
    for gid, txid, amount, in_txid in inj:
        t = g_.tx_number(txid)
        if t is None:
            continue
        nodes = np.arange(g_.tx_out_ptr[t], g_.tx_out_ptr[t + 1])
        nodes = nodes[~g_.out_opret[nodes] & (g_.out_addr[nodes] >= 0)]
        nodes = nodes[[astop[a] == 0 if a < len(astop) else True for a in g_.out_addr[nodes].tolist()]]
        if not len(nodes):
            continue
        w = g_.out_value[nodes]
        share = np.minimum((w * (amount / max(int(w.sum()), 1))).astype(np.int64), w)
        emit(U.propagate(g_, astop, nodes, share, max(max_hops - 1, 0), True, include_seeds=True), gid,
             "received", hop_offset=1, prefix=[in_txid, txid])


def _build_evm(ws: Workspace, chain: str, groups: list[Group], src, inj: list, stop_kind: dict[int, bool],
               cmap: ClusterMap, max_hops: int, acc: _Acc) -> None:
    from fundtrail.trace.graph import evm_ledger

    L = evm_ledger(ws, chain)
    amts = E.amounts(L)
    tot = E.totals(L, amts)
    dec = _decimals(ws, chain, L.assets)
    ctot: dict[tuple[int, int], list[int]] = {}
    for (a, asset), v in tot.items():
        c = cmap.get(a)
        if c is not None and not stop_kind.get(c, False):
            t = ctot.setdefault((c, asset), [0, 0])
            t[0] += v[0]
            t[1] += v[1]
    by_gid = {g.gid: g for g in groups}
    injections = []
    prefix: dict[int, str] = {}
    for gid, txid, amount, in_txid in inj:
        for e in L.tx_rows(txid):
            if L.dst[e] >= 0 and src.stop.get(int(L.dst[e])) is None:
                injections.append((e, gid, amount, 1))
                prefix[e] = in_txid
                break

    def emit(h: E.EvmHits, direction: str) -> None:
        j = 0 if direction == "received" else 1
        for (aid, asset, gid), (amount, hops, _e) in h.rows.items():
            name = L.assets[asset]
            c = cmap.get(aid)
            if c is not None and not stop_kind.get(c, False):
                key = (chain, "cluster", c, direction, gid, name)
                total = float(ctot.get((c, asset), [0, 0])[j])
            else:
                key = (chain, "address", aid, direction, gid, name)
                total = float(tot.get((aid, asset), [0, 0])[j])
            path = h.paths[(aid, asset, gid)]
            if path and prefix:
                first = next((e for e in prefix if L.txid_of(e) == path[0]), None)
                if first is not None:
                    path = [prefix[first]] + path
            acc.add(key, aid, amount, hops, path, total)
        acc.rows.setdefault(("__decimals__", chain), [dec])

    members = {g: ids for g, ids in src.members.items() if ids}
    emit(E.propagate(L, members, src.since, src.stop, max_hops, injections, amts), "received")
    back = {g: ids for g, ids in members.items() if by_gid[g].category != STOLEN}
    if back:
        R = evm_ledger(ws, chain, reverse=True)
        emit(E.propagate(R, back, {}, src.stop, max_hops, None, E.amounts(R), reverse=True), "sent")


def address_keys(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """:func:`address_key` of every string of an Arrow array: an (n, 2) int64 array."""
    buf = b"".join(hashlib.blake2b(x.encode(), digest_size=16).digest() for x in arr.to_pylist())
    return np.frombuffer(buf, "<i8").reshape(-1, 2) if buf else np.zeros((0, 2), np.int64)


def _address_table(ws: Workspace, chain: str, cmap: ClusterMap) -> dict[str, np.ndarray]:
    t = ws.read("addresses", chain, columns=["address_id", "address"])
    ids = np.asarray(t["address_id"].to_numpy(zero_copy_only=False), np.int64)
    keys = address_keys(t["address"].fill_null(""))
    cl = cmap.lookup(ids)
    order = np.argsort(keys[:, 0], kind="stable")
    return {"key": keys[order, 0].copy(), "check": keys[order, 1].copy(), "id": ids[order], "cluster": cl[order]}


def build_index(ws: Workspace, *, max_hops: int = DEFAULT_MAX_HOPS, keep: int = DEFAULT_KEEP,
                chains: list[str] | None = None) -> Path:
    """Build a new version of the index from the workspace and make it current; returns its directory."""
    t0 = time.perf_counter()
    if max_hops < 1:
        raise UsageError("max_hops: must be 1 or more")
    digest = input_digest(ws)
    all_chains = ws.chains()
    chains = sorted(chains or all_chains)
    for c in chains:
        ws.require_chain(c)
    groups, srcs = collect(ws, chains)
    timings: dict[str, float] = {"sources": round(time.perf_counter() - t0, 3)}
    t1 = time.perf_counter()
    inj = _incident_injections(ws, groups, srcs, max_hops)
    timings["incident_traces"] = round(time.perf_counter() - t1, 3)
    acc = _Acc()
    label_tables = []
    addr_tables: dict[str, dict[str, np.ndarray]] = {}
    for chain in chains:
        t1 = time.perf_counter()
        src = srcs[chain]
        cmap = _cluster_map(ws, chain)
        lab = src.labels
        stop_kind: dict[int, bool] = {}
        for cid, svc in zip(lab["cluster_id"].to_pylist(), lab["is_service"].to_pylist(), strict=True):
            if cid is not None and svc:
                stop_kind[int(cid)] = True
        build = _build_utxo if all_chains[chain].get("kind") == "utxo" else _build_evm
        build(ws, chain, groups, src, inj.get(chain, []), stop_kind, cmap, max_hops, acc)
        label_tables.append(lab)
        addr_tables[chain] = _address_table(ws, chain, cmap)
        timings[f"chain:{chain}"] = round(time.perf_counter() - t1, 3)
    decimals: dict[str, dict[str, int]] = {}
    rows: dict[str, list] = {n: [] for n in EXPOSURE_SCHEMA.names}
    for key, r in acc.rows.items():
        if key[0] == "__decimals__":
            decimals[key[1]] = r[0]
            continue
        chain, subj, sid, direction, gid, asset = key
        d = 8 if asset == "BTC" else decimals.get(chain, {}).get(asset, 18)
        for n, v in zip(EXPOSURE_SCHEMA.names, (chain, subj, sid, r[0], direction, gid, asset, d, str(r[1]),
                                                r[4], r[2], r[3]), strict=True):
            rows[n].append(v)
    exposure = pa.table(rows, schema=EXPOSURE_SCHEMA)
    sanctions = _sanctions(ws, chains)
    root = _root(ws)
    root.mkdir(parents=True, exist_ok=True)
    version = _next_version(root)
    tmp = root / f".tmp-{version:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    pq.write_table(exposure, tmp / "exposure.parquet")
    labels = pa.concat_tables(label_tables, promote_options="permissive") if label_tables else pa.table({})
    pq.write_table(labels, tmp / "labels.parquet")
    pq.write_table(sanctions, tmp / "sanctions.parquet")
    for chain, arrs in addr_tables.items():
        np.savez(tmp / f"addresses-{chain}.npz", **arrs)
    timings["total"] = round(time.perf_counter() - t0, 3)
    meta = {"version": version, "built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "heights": {c: digest["heights"].get(c) for c in chains}, "tags_digest": digest["tags_digest"],
            "digest": digest["digest"], "max_hops": max_hops, "model": "haircut",
            "groups": [_group_json(g) for g in groups], "rows": exposure.num_rows, "timings": timings,
            "kinds": {c: all_chains[c].get("kind") for c in chains}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    final = root / f"v{version:06d}"
    os.replace(tmp, final)
    _write_current(root, final.name)
    _prune(root, keep)
    return final


def _group_json(g: Group) -> dict[str, Any]:
    d = g.to_row()
    for k in ("sanctioned_from", "sanctioned_to"):
        v = d[k]
        d[k] = v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, dt.datetime) else None
    return d


def _sanctions(ws: Workspace, chains: list[str]) -> pa.Table:
    from fundtrail.exposure.sources import sanction_windows

    ts = [sanction_windows(ws, c) for c in chains]
    ts = [t for t in ts if t.num_rows]
    if not ts:
        return pa.table({"chain": pa.array([], pa.string()), "address": pa.array([], pa.string()),
                         "address_id": pa.array([], pa.int64()), "entity": pa.array([], pa.string()),
                         "source": pa.array([], pa.string()),
                         "valid_from": pa.array([], pa.timestamp("us", tz="UTC")),
                         "valid_to": pa.array([], pa.timestamp("us", tz="UTC")), "country": pa.array([], pa.string())})
    return pa.concat_tables(ts, promote_options="permissive")


def _versions(root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in root.glob("v[0-9]*") if p.is_dir() and p.name[1:].isdigit())


def _next_version(root: Path) -> int:
    vs = _versions(root)
    return (vs[-1] + 1) if vs else 1


def _write_current(root: Path, name: str) -> None:
    tmp = root / f".CURRENT.{os.getpid()}"
    tmp.write_text(name)
    os.replace(tmp, root / "CURRENT")


def _prune(root: Path, keep: int) -> None:
    vs = _versions(root)
    for v in vs[:-keep] if keep > 0 else []:
        shutil.rmtree(root / f"v{v:06d}", ignore_errors=True)


def current_version(ws: Workspace) -> Path | None:
    p = _root(ws) / "CURRENT"
    try:
        name = p.read_text().strip()
    except FileNotFoundError:
        return None
    d = _root(ws) / name
    return d if d.is_dir() else None


def version_dir(ws: Workspace, version: int) -> Path:
    d = _root(ws) / f"v{int(version):06d}"
    if not d.is_dir():
        raise NotFoundError(f"exposure index version {version} is not kept in {_root(ws)} any more")
    return d


# --- loading ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Item:
    """One exposure of a subject: to a group, in one direction and asset."""

    direction: str
    group: Group
    asset: str
    decimals: int
    amount: int
    total: float
    hops: int
    path: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "direct" if self.hops <= 1 else "indirect"

    @property
    def share(self) -> float:
        return min(1.0, float(self.amount) / self.total) if self.total > 0 else 1.0

    def amount_text(self) -> str:
        return format_units(self.amount, self.decimals)


@dataclass(frozen=True, slots=True)
class LabelRow:
    entity: str
    category: str
    country: str | None
    sanctioned: bool
    source: str | None
    confidence: float | None
    via: str | None
    is_service: bool


@dataclass(frozen=True, slots=True)
class Window:
    entity: str
    source: str | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None

    def active(self, at: dt.datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything the index knows about one address."""

    chain: str
    address: str
    address_id: int | None
    cluster_id: int | None
    label: LabelRow | None
    windows: tuple[Window, ...]  # sanctions listings of the address (or of its cluster)
    items: tuple[Item, ...]


class ExposureIndex:
    """A loaded version: lookups by (chain, address) in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
        self.version: int = int(self.meta["version"])
        self.groups = [Group(gid=g["gid"], category=g["category"], entity=g["entity"], country=g["country"],
                             sanctioned=g["sanctioned"], sanctioned_from=_dt(g["sanctioned_from"]),
                             sanctioned_to=_dt(g["sanctioned_to"]), source=g["source"])
                       for g in self.meta["groups"]]
        self.loaded_at = time.time()
        self._addr: dict[str, dict[str, np.ndarray]] = {}
        for p in path.glob("addresses-*.npz"):
            with np.load(p) as z:
                self._addr[p.name[len("addresses-"):-4]] = {k: z[k] for k in z.files}
        self._items: dict[tuple[str, str, int], list[Item]] = {}
        t = pq.read_table(path / "exposure.parquet")
        cols = {c: t[c].to_pylist() for c in t.column_names}
        for i in range(t.num_rows):
            it = Item(cols["direction"][i], self.groups[cols["gid"][i]], cols["asset"][i], cols["decimals"][i],
                      int(cols["amount"][i]), cols["total"][i], cols["hops"][i], tuple(cols["path"][i] or ()))
            self._items.setdefault((cols["chain"][i], cols["subject"][i], cols["subject_id"][i]), []).append(it)
        self._labels: dict[tuple[str, int], LabelRow] = {}
        self._label_by_addr: dict[tuple[str, str], LabelRow] = {}
        lt = pq.read_table(path / "labels.parquet")
        if lt.num_rows:
            lc = {c: lt[c].to_pylist() for c in ("chain", "address_id", "address", "entity", "category", "country",
                                                 "sanctioned", "source", "confidence", "via", "is_service")}
            for i in range(lt.num_rows):
                row = LabelRow(lc["entity"][i] or "unknown", (lc["category"][i] or "other").lower(), lc["country"][i],
                               bool(lc["sanctioned"][i]), lc["source"][i], lc["confidence"][i], lc["via"][i],
                               bool(lc["is_service"][i]))
                if lc["address_id"][i] is not None:
                    self._labels[(lc["chain"][i], int(lc["address_id"][i]))] = row
                if lc["address"][i] is not None:
                    self._label_by_addr[(lc["chain"][i], lc["address"][i])] = row
        self._win_addr: dict[tuple[str, str], list[Window]] = {}
        self._win_cluster: dict[tuple[str, int], list[Window]] = {}
        st = pq.read_table(path / "sanctions.parquet")
        for r in st.to_pylist():
            w = Window(r["entity"] or "sanctioned", r["source"], _aware(r["valid_from"]), _aware(r["valid_to"]))
            self._win_addr.setdefault((r["chain"], r["address"]), []).append(w)
            if r["address_id"] is not None:
                cid = self._cluster_of(r["chain"], None, int(r["address_id"]))
                if cid is not None:
                    self._win_cluster.setdefault((r["chain"], cid), []).append(w)

    @property
    def chains(self) -> list[str]:
        return sorted(self.meta["heights"])

    @property
    def as_of(self) -> dict[str, Any]:
        return {"heights": self.meta["heights"], "tags_digest": self.meta["tags_digest"],
                "index_version": self.version}

    def _lookup(self, chain: str, address: str) -> tuple[int | None, int | None]:
        return self.lookup_many(chain, [address])[0]

    def lookup_many(self, chain: str, addresses: list[str]) -> list[tuple[int | None, int | None]]:
        """(address id, cluster id) of each address (None, None when unknown): one sorted search for all."""
        a = self._addr.get(chain)
        if a is None or not len(a["key"]) or not addresses:
            return [(None, None)] * len(addresses)
        kc = np.frombuffer(b"".join(hashlib.blake2b(x.encode(), digest_size=16).digest() for x in addresses),
                           "<i8").reshape(-1, 2)
        keys, checks, ids, clusters = a["key"], a["check"], a["id"], a["cluster"]
        n = len(keys)
        pos = np.searchsorted(keys, kc[:, 0])
        out: list[tuple[int | None, int | None]] = []
        for j, p in enumerate(pos.tolist()):
            k, check = int(kc[j, 0]), int(kc[j, 1])
            hit: tuple[int | None, int | None] = (None, None)
            while p < n and int(keys[p]) == k:  # keys sharing the first 64 bits: the check word decides
                if int(checks[p]) == check:
                    c = int(clusters[p])
                    hit = (int(ids[p]), c if c >= 0 else None)
                    break
                p += 1
            out.append(hit)
        return out

    def known(self, chain: str, address: str) -> bool:
        """Does the workspace hold this exact address string on ``chain``?"""
        return self._lookup(chain, address)[0] is not None

    def _cluster_of(self, chain: str, address: str | None, aid: int) -> int | None:
        a = self._addr.get(chain)
        if a is None:
            return None
        hit = np.flatnonzero(a["id"] == aid)
        if not len(hit):
            return None
        c = int(a["cluster"][hit[0]])
        return c if c >= 0 else None

    def has_chain(self, chain: str) -> bool:
        return chain in self.meta["heights"]

    def profile(self, chain: str, address: str, ids: tuple[int | None, int | None] | None = None) -> Profile:
        """``ids``: the address's (id, cluster id) when already looked up (``lookup_many``)."""
        aid, cid = ids if ids is not None else self._lookup(chain, address)
        label = self._labels.get((chain, aid)) if aid is not None else self._label_by_addr.get((chain, address))
        items: list[Item] = []
        if cid is not None and not (label is not None and label.is_service):
            items = self._items.get((chain, "cluster", cid), [])
        elif aid is not None:
            items = self._items.get((chain, "address", aid), [])
        wins = list(self._win_addr.get((chain, address), []))
        if not wins and cid is not None and label is not None and label.via == "cluster":
            wins = list(self._win_cluster.get((chain, cid), []))
        return Profile(chain, address, aid, cid, label, tuple(wins), tuple(items))

    def cluster_items(self, chain: str, cid: int) -> list[Item]:
        return list(self._items.get((chain, "cluster", int(cid)), []))

    def cluster_size(self, chain: str, cid: int) -> int:
        a = self._addr.get(chain)
        return int((a["cluster"] == int(cid)).sum()) if a is not None else 0

    def entity_labels(self, name: str) -> list[tuple[str, LabelRow, int]]:
        """(chain, label, count of addresses) of an entity name (case-insensitive)."""
        n = name.lower()
        agg: dict[tuple[str, str], list] = {}
        for (chain, _aid), lab in self._labels.items():
            if lab.entity.lower() == n:
                r = agg.setdefault((chain, lab.entity), [lab, 0])
                r[1] += 1
        return [(c, v[0], v[1]) for (c, _e), v in sorted(agg.items())]

    def nbytes(self) -> int:
        return sum(v.nbytes for a in self._addr.values() for v in a.values())


def _dt(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def _aware(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def load_index(ws: Workspace, version: int | None = None) -> ExposureIndex:
    """The current version (or ``version``); NotFoundError when none was built yet."""
    if version is not None:
        return ExposureIndex(version_dir(ws, version))
    d = current_version(ws)
    if d is None:
        raise NotFoundError(f"no exposure index in {ws.home}: run `fundtrail exposure build` first")
    return ExposureIndex(d)


def is_current(ws: Workspace, index: ExposureIndex | None) -> bool:
    """Does ``index`` reflect the workspace as it is now?"""
    return index is not None and index.meta.get("digest") == input_digest(ws)["digest"]


__all__ = ["build_index", "load_index", "input_digest", "ExposureIndex", "Profile", "Item", "LabelRow",
           "Window", "is_current", "current_version", "version_dir", "GLOBAL"]
