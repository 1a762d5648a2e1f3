"""Bring the exposure index up to date: incrementally when only blocks were appended, else a full build.

An incremental update starts from the current version's ``state/`` (exposure/state.py) and makes a new
version equal to a full build of the workspace as it is now:

* a UTXO chain that grew: the new blocks' rows are read alone (exposure/delta.py); every forward run
  (``received``) continues from its frontier, the reached outputs still unspent, over the new transactions;
  the per-address hits, totals and the frontier are updated and the chain's rows re-aggregated;
* an EVM chain that grew: its rows are recomputed (one pass over its ledger each way: the ``sent`` pass
  runs backward in time, so a new block changes it from its start; the EVM ledgers are small);
* a chain that did not change: its rows and state are taken over as they are.

A full build is made instead, and the reason kept in ``meta.json`` (``update``), when: there is no earlier
version or it keeps no state; ``max_hops`` differs; tags, actors, incidents or clusters changed (the risk
groups, stops and subjects change everywhere); a chain was added, removed or reorganised (the tip the
index was built on is no longer on the chain); the chain's history is incomplete (inputs naming outputs
the workspace lacks) or new rows are inconsistent; new blocks pay an address of a group whose ``sent``
exposure is propagated (that runs backward through the whole history), or a peel step spends such a
payment; new blocks carry a bridge deposit or release while incidents exist (the cross-chain seeds of
stolen funds come from the incidents' traces).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.exposure import state as ST
from fundtrail.exposure.delta import (
    Delta,
    RunSpec,
    extend_forward,
    outpoint_keys,
    peel_shape,
    read_delta,
    spent_rows,
)
from fundtrail.exposure.index import (
    DEFAULT_KEEP,
    DEFAULT_MAX_HOPS,
    EXPOSURE_SCHEMA,
    UtxoPart,
    address_keys,
    aggregate_utxo,
    build_index,
    current_version,
    evm_table,
    input_digest,
    publish,
    sources_digest,
    tip_hashes,
)
from fundtrail.exposure.npz import read_npz
from fundtrail.exposure.sources import STOLEN, ChainSources, Group
from fundtrail.store import Workspace
from fundtrail.store import schema as S


def _block_hash(ws: Workspace, chain: str, kind: str, height: int) -> str | None:
    table = "utxo_blocks" if kind == "utxo" else "evm_blocks"
    for p in ws.parts(table, chain):
        if (p.lo is None or p.lo <= height) and (p.hi is None or height <= p.hi):
            t = pq.read_table(ws.home / p.file, columns=["height", "hash"], schema=S.schema_of(table))
            t = t.filter(pc.equal(t["height"], height))
            if t.num_rows:
                return t["hash"][t.num_rows - 1].as_py()
    return None


def _bridge_events(ws: Workspace, chain: str, height: int, releases: bool) -> bool:
    """Does an EVM chain carry a bridge deposit (or, with ``releases``, a release) above ``height``?"""
    from fundtrail.model.evm_abi import BRIDGE_DEPOSIT, BRIDGE_RELEASE

    if chain not in ws.table_chains("evm_logs"):
        return False
    topics = {BRIDGE_DEPOSIT.lower()} | ({BRIDGE_RELEASE.lower()} if releases else set())
    for p in ws.parts("evm_logs", chain):
        if p.hi is not None and p.hi <= height:
            continue
        t = pq.read_table(ws.home / p.file, columns=["height", "topic0"], schema=S.schema_of("evm_logs"))
        t = t.filter(pc.greater(t["height"], height))
        if any((x or "").lower() in topics for x in t["topic0"].to_pylist()):
            return True
    return False


def _bridge_check(d: Delta, ext: Any, runs: list[dict[str, Any]], stolen: set[int], pending: bool,
                  chain: str) -> str | None:
    """A UTXO delta changes the incidents' crossings only by a deposit that carries stolen funds, or by a
    release while a stolen deposit waits for one (the trace's reach on a UTXO chain is the stolen runs')."""
    if not (d.out_bridge > 0).any() or not stolen:
        return None
    out_tx = np.repeat(np.arange(d.ntx, dtype=np.int64), np.diff(d.out_ptr))
    if pending and (d.out_bridge == 2).any():
        return f"{chain}: a bridge release while an incident's bridge deposit waits for one (traced again)"
    deposits = set(out_tx[d.out_bridge == 1].tolist())
    for r in runs:
        if r["gid"] in stolen and r["direction"] == "received" and deposits & ext.followed.get(r["run"], set()):
            return f"{chain}: stolen funds reach a bridge deposit in the new blocks (incidents traced again)"
    return None


def _groups(meta: dict[str, Any]) -> list[Group]:
    from fundtrail.exposure.index import _dt

    return [Group(gid=g["gid"], category=g["category"], entity=g["entity"], country=g["country"],
                  sanctioned=g["sanctioned"], sanctioned_from=_dt(g["sanctioned_from"]),
                  sanctioned_to=_dt(g["sanctioned_to"]), source=g["source"]) for g in meta["groups"]]


def _why_full(ws: Workspace, meta: dict[str, Any], doc: dict[str, Any] | None, max_hops: int,
              grown: dict[str, int]) -> str | None:
    if doc is None:
        return "the current version keeps no incremental state"
    if meta.get("max_hops") != max_hops:
        return f"max_hops changed ({meta.get('max_hops')} -> {max_hops})"
    if meta.get("sources_digest") != sources_digest(ws):
        return "tags, actors, incidents or clusters changed (risk groups, stops and subjects are recomputed)"
    chains = ws.chains()
    if set(chains) != set(doc["chains"]):
        return "chains were added or removed"
    for c, info in chains.items():
        old = doc["chains"][c]
        h, h0 = info.get("tip_height"), old["height"]
        if h is None or h0 is None:
            return f"{c}: no tip height"
        if h < h0 or (h == h0 and info.get("tip_hash") != old["tip"]):
            return f"{c}: reorganised (tip {h0} {old['tip']} is no longer the chain's)"
        if h > h0:
            if _block_hash(ws, c, old["kind"], h0) != old["tip"]:
                return f"{c}: reorganised below the new blocks (block {h0} is not {old['tip']} any more)"
            grown[c] = h0
    incidents = any(g["category"] == STOLEN for g in meta["groups"])
    for c, h0 in grown.items():
        kind = doc["chains"][c]["kind"]
        if kind == "utxo" and not doc["chains"][c].get("complete", False):
            return f"{c}: inputs name outputs the workspace lacks (history incomplete)"
        if incidents and kind != "utxo" and _bridge_events(ws, c, h0, bool(doc.get("pending_bridges"))):
            return f"{c}: new blocks carry a bridge deposit or release (incidents' cross-chain seeds are traced again)"
    return None


def _backward_check(d: Delta, st: ST.UtxoState) -> str | None:
    runs = st.info["runs"]
    back = np.array(sorted({r["gid"] for r in runs if r["direction"] == "sent"}), np.int64)
    if not len(back):
        return None
    a = st.arrays
    members = np.unique(a["mem_aid"][np.isin(a["mem_gid"], back)])
    if not len(members):
        return None
    paid = ~d.out_opret & np.isin(d.out_addr, members)
    if paid.any():
        return (f"{st.chain}: new blocks pay {int(paid.sum())} output(s) to risk sources whose 'sent' exposure "
                "runs backward through history")
    spends = np.isin(d.in_addr, members) & d.in_prev_ok
    for j in np.flatnonzero(spends).tolist():
        t = int(np.searchsorted(d.in_ptr, j, "right") - 1)
        if peel_shape(d, t) >= 0:
            return f"{st.chain}: a peel step spends a risk source's output (its 'sent' hop count changes)"
    return None


def _extend_utxo(doc: dict[str, Any], chain: str, d: Delta, st: ST.UtxoState, stolen: set[int]) -> UtxoPart | str:
    """The chain's part after the delta, or the reason it needs a full build."""
    if d.problems:
        return f"{chain}: " + "; ".join(d.problems)
    why = _backward_check(d, st)
    if why:
        return why
    a = st.arrays
    runs = st.info["runs"]
    info = doc["chains"][chain]
    mem: dict[int, set[int]] = {}
    for g, x in zip(a["mem_gid"].tolist(), a["mem_aid"].tolist(), strict=True):
        mem.setdefault(g, set()).add(x)
    specs = []
    for r in runs:
        if r["direction"] != "received":
            continue
        members = r["kind"] == "members"
        g = r["gid"]
        since = info["since"].get(str(g)) if members else None
        specs.append(RunSpec(r["run"], g, r["max_hops"], frozenset(mem.get(g, ())) if members else frozenset(),
                             since, frozenset(info["seed_txids"].get(str(g), [])) if members else frozenset(),
                             bool(r["include_seeds"])))
    keys = outpoint_keys(a["f_txid"], a["f_n"])
    spends = spent_rows(d, keys, a["f_txid"], a["f_n"])
    spent = sorted({r for rows in spends.values() for r in rows})
    need = np.asarray(spent, np.int64)
    fpaths = st.frontier_paths(need)
    ext = extend_forward(d, specs, a["f_run"], a["f_taint"], a["f_hop"], a["f_peel"], lambda r: fpaths[r], spends,
                         a["addr_stop"])
    why = _bridge_check(d, ext, runs, stolen, bool(doc.get("pending_bridges")), chain)
    if why:
        return why
    # totals for the new address ids (clusters and stops stay: ids beyond them have none)
    top = int(max(d.out_addr.max(initial=-1), d.in_addr.max(initial=-1))) + 1
    recv, sent = a["recv"], a["sent"]
    if top > len(recv):
        recv = np.concatenate([recv, np.zeros(top - len(recv), np.int64)])
        sent = np.concatenate([sent, np.zeros(top - len(sent), np.int64)])
    else:
        recv, sent = recv.copy(), sent.copy()
    ok = d.out_addr >= 0
    np.add.at(recv, d.out_addr[ok], d.out_value[ok])
    ok = d.in_prev_ok & (d.in_addr >= 0)
    np.add.at(sent, d.in_addr[ok], d.in_value[ok])
    # hits: the new outputs' taint per (run, address), merged into the stored rows
    by_run = {r["run"]: r for r in runs}
    h_run, h_aid = a["h_run"].tolist(), a["h_address_id"].tolist()
    amount, hops, best = a["h_amount"].copy(), a["h_hops"].copy(), a["h_best"].copy()
    paths = st.hit_paths()
    row_of = {(r, x): i for i, (r, x) in enumerate(zip(h_run, h_aid, strict=True))}
    new_rows: dict[tuple[int, int], list] = {}
    for hit in ext.hits:
        spec = by_run[hit.run]
        key = (hit.run, hit.address_id)
        hp = hit.hop + spec["hop_offset"]
        full_path = (spec["prefix"] + hit.path) if spec["prefix"] else hit.path
        i = row_of.get(key)
        if i is not None:
            amount[i] += hit.taint
            hops[i] = min(int(hops[i]), hp)
            if hit.taint > best[i]:
                best[i] = hit.taint
                paths[i] = full_path
            continue
        r = new_rows.get(key)
        if r is None:
            new_rows[key] = [hit.taint, hp, hit.taint, full_path]
        else:
            r[0] += hit.taint
            r[1] = min(r[1], hp)
            if hit.taint > r[2]:
                r[2], r[3] = hit.taint, full_path
    if new_rows:
        nk = list(new_rows)
        h_run = np.concatenate([a["h_run"], np.array([k[0] for k in nk], np.int64)])
        h_aid = np.concatenate([a["h_address_id"], np.array([k[1] for k in nk], np.int64)])
        amount = np.concatenate([amount, np.array([new_rows[k][0] for k in nk], np.int64)])
        hops = np.concatenate([hops, np.array([new_rows[k][1] for k in nk], np.int64)])
        best = np.concatenate([best, np.array([new_rows[k][2] for k in nk], np.int64)])
        paths = paths + [new_rows[k][3] for k in nk]
        order = np.lexsort((h_aid, h_run))
        h_run, h_aid, amount, hops, best = h_run[order], h_aid[order], amount[order], hops[order], best[order]
        paths = [paths[i] for i in order.tolist()]
    else:
        h_run, h_aid = a["h_run"], a["h_address_id"]
    hits = {"run": h_run, "address_id": h_aid, "amount": amount, "hops": hops, "best": best, "path": paths}
    # the frontier: spent rows out, the new unspent tainted outputs in
    keep = np.ones(len(a["f_n"]), np.bool_)
    keep[need] = False
    out_tx = np.repeat(np.arange(d.ntx, dtype=np.int64), np.diff(d.out_ptr))
    add = [(run, o, x, hp, peel, p) for run, rows in ext.frontier.items() for (o, x, hp, peel, p) in rows]
    oi = np.array([r[1] for r in add], np.int64)
    frontier = {
        "run": np.concatenate([a["f_run"][keep], np.array([r[0] for r in add], np.int64)]),
        "txid": np.concatenate([a["f_txid"][keep], d.txid[out_tx[oi]] if len(oi) else np.zeros((0, 32), np.uint8)]),
        "n": np.concatenate([a["f_n"][keep], d.out_n[oi]]),
        "value": np.concatenate([a["f_value"][keep], d.out_value[oi]]),
        "taint": np.concatenate([a["f_taint"][keep], np.array([r[2] for r in add], np.int64)]),
        "hop": np.concatenate([a["f_hop"][keep], np.array([r[3] for r in add], np.int64)]),
        "address_id": np.concatenate([a["f_address_id"][keep], d.out_addr[oi]]),
        "peel": np.concatenate([a["f_peel"][keep], np.array([r[4] for r in add], np.bool_)]),
        "path": (keep, [r[5] for r in add]),  # the kept stored paths, then the new ones (written by _write_state)
    }
    return UtxoPart(chain, runs, hits, frontier, recv, sent, a["cluster"], a["svc"], a["addr_stop"], True)


def _address_update(ws: Workspace, chain: str, info: dict[str, Any], prev: dict[str, np.ndarray]
                    ) -> tuple[dict[str, np.ndarray], list[str], int]:
    """The address table with the addresses added since (ids above the indexed maximum, from new parts)."""
    parts = ws.parts("addresses", chain)
    old = set(info["address_parts"])
    top = int(info["max_address_id"])
    new_t = []
    for p in parts:
        if p.file in old:
            continue
        t = pq.read_table(ws.home / p.file, columns=["address_id", "address"], schema=S.schema_of("addresses"))
        new_t.append(t.filter(pc.greater(t["address_id"], top)))
    files = sorted(p.file for p in parts)
    if not new_t or not sum(t.num_rows for t in new_t):
        return prev, files, top
    t = pa.concat_tables(new_t)
    ids = np.asarray(t["address_id"].to_numpy(zero_copy_only=False), np.int64)
    keys = address_keys(t["address"].fill_null(""))
    # merge the few new keys into the sorted table (after equal keys, as a stable sort would put them)
    o = np.argsort(keys[:, 0], kind="stable")
    at = np.searchsorted(prev["key"], keys[o, 0], "right")
    out = {k: np.insert(prev[k], at, v) for k, v in (
        ("key", keys[o, 0]), ("check", keys[o, 1]), ("id", ids[o]),
        ("cluster", np.full(len(ids), -1, prev["cluster"].dtype)))}
    return out, files, max(top, int(ids.max()))


def update_index(ws: Workspace, *, max_hops: int = DEFAULT_MAX_HOPS, keep: int = DEFAULT_KEEP) -> Path:
    """A new version equal to a full build, made incrementally where possible (see the module docstring);
    the current version when nothing changed."""
    t0 = time.perf_counter()
    prev = current_version(ws)
    if prev is None:
        return build_index(ws, max_hops=max_hops, keep=keep, reason="no earlier version")
    meta = json.loads((prev / "meta.json").read_text())
    digest = input_digest(ws)
    if meta.get("digest") == digest["digest"] and meta.get("max_hops") == max_hops:
        return prev
    doc = ST.read_doc(prev)
    grown: dict[str, int] = {}
    why = _why_full(ws, meta, doc, max_hops, grown)
    if why:
        return build_index(ws, max_hops=max_hops, keep=keep, reason=why)
    assert doc is not None
    groups = _groups(meta)
    stolen = {g.gid for g in groups if g.category == STOLEN}
    chains = sorted(doc["chains"])
    cur = ws.chains()
    old_rows = pq.read_table(prev / "exposure.parquet")
    tables: list[pa.Table] = []
    parts: dict[str, UtxoPart] = {}
    addr_tables: dict[str, dict[str, np.ndarray]] = {}
    new_doc = json.loads(json.dumps(doc))
    how: dict[str, str] = {}
    timings: dict[str, float] = {}
    labels = None
    for chain in chains:
        t1 = time.perf_counter()
        info = doc["chains"][chain]
        prev_addr = read_npz(prev / f"addresses-{chain}.npz")
        if chain not in grown:
            tables.append(old_rows.filter(pc.equal(old_rows["chain"], chain)))
            addr_tables[chain] = prev_addr
            how[chain] = "unchanged"
            continue
        h0 = grown[chain]
        if info["kind"] == "utxo":
            try:
                st = ST.read_utxo(prev, doc, chain)
            except (OSError, ValueError, KeyError) as e:  # a damaged state: start over, and say why
                return build_index(ws, max_hops=max_hops, keep=keep,
                                   reason=f"{chain}: the stored state cannot be read ({type(e).__name__}: {e})")
            d = read_delta(ws, chain, h0)
            part = _extend_utxo(doc, chain, d, st, stolen)
            if isinstance(part, str):
                return build_index(ws, max_hops=max_hops, keep=keep, reason=part)
            parts[chain] = part
            tables.append(aggregate_utxo(part))
            how[chain] = (f"extended over {d.ntx} new transaction(s) above height {h0} (forward runs continued "
                          "from their frontier)")
        else:
            if labels is None:
                labels = pq.read_table(prev / "labels.parquet")
            ev = ST.read_evm(prev, chain)
            src = ChainSources(chain)
            src.members = {int(g): v for g, v in ev["members"].items()}
            src.since = {int(g): v for g, v in info["since"].items()}
            src.seed_txids = {int(g): v for g, v in info["seed_txids"].items()}
            src.stop = {int(x): k for x, k in ev["stop"].items()}
            src.labels = labels.filter(pc.equal(labels["chain"], chain))
            inj = [tuple(x) for x in doc["injections"].get(chain, [])]
            tables.append(evm_table(ws, chain, groups, src, inj, max_hops))
            how[chain] = f"recomputed (EVM ledger pass) above height {h0}"
        addr, files, top = _address_update(ws, chain, info, prev_addr)
        addr_tables[chain] = addr
        new_doc["chains"][chain].update(height=cur[chain].get("tip_height"), tip=cur[chain].get("tip_hash"),
                                        address_parts=files, max_address_id=top)
        timings[f"chain:{chain}"] = round(time.perf_counter() - t1, 3)
    exposure = pa.concat_tables(tables) if tables else EXPOSURE_SCHEMA.empty_table()
    tips = tip_hashes(ws)
    out_meta = dict(meta)
    out_meta.pop("version", None)
    out_meta.update(heights={c: digest["heights"].get(c) for c in chains}, tags_digest=digest["tags_digest"],
                    digest=digest["digest"], rows=exposure.num_rows, tips={c: tips.get(c) for c in chains},
                    built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), timings=timings,
                    update={"mode": "incremental", "from_version": meta["version"], "chains": how})

    def write(tmp: Path) -> None:
        pq.write_table(exposure, tmp / "exposure.parquet")
        for name in ("labels.parquet", "sanctions.parquet"):
            _link(prev / name, tmp / name)
        for chain, arrs in addr_tables.items():
            if chain in grown:
                np.savez(tmp / f"addresses-{chain}.npz", **arrs)
            else:
                _link(prev / f"addresses-{chain}.npz", tmp / f"addresses-{chain}.npz")
        t1 = time.perf_counter()
        _write_state(tmp, prev, new_doc, parts)
        timings["state"] = round(time.perf_counter() - t1, 3)
        timings["total"] = round(time.perf_counter() - t0, 3)

    return publish(ws, out_meta, write, keep)


def _link(src: Path, dst: Path) -> None:
    """Files of a version never change: a new version shares them by a hard link (a copy where links fail)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_state(tmp: Path, prev: Path, doc: dict[str, Any], parts: dict[str, UtxoPart]) -> None:
    d = tmp / ST.DIR
    d.mkdir()
    old = prev / ST.DIR
    for f in old.iterdir():
        if f.name == "state.json":
            continue
        chain = f.name.split("-", 1)[-1].rsplit(".", 1)[0] if not f.name.startswith("frontier-paths-") else \
            f.name[len("frontier-paths-"):-len(".parquet")]
        if chain not in parts or f.name.startswith("static-"):
            if not (d / f.name).exists():
                _link(f, d / f.name)
    for chain, part in parts.items():
        h, f = part.hits, part.frontier
        if not (d / f"static-{chain}.npz").exists():  # an early layout: write it apart now
            st = ST.read_utxo(prev, json.loads((old / "state.json").read_text()), chain).arrays
            np.savez(d / f"static-{chain}.npz", cluster=st["cluster"], addr_stop=st["addr_stop"], svc=st["svc"],
                     mem_gid=st["mem_gid"], mem_aid=st["mem_aid"])
        np.savez(d / f"utxo-{chain}.npz", recv=part.recv, sent=part.sent, h_run=h["run"], h_address_id=h["address_id"], h_amount=h["amount"], h_hops=h["hops"],
                 h_best=h["best"], f_run=f["run"], f_txid=f["txid"], f_n=f["n"], f_value=f["value"],
                 f_taint=f["taint"], f_hop=f["hop"], f_address_id=f["address_id"], f_peel=f["peel"])
        pq.write_table(pa.table({"path": pa.array(h["path"], pa.list_(pa.string()))}), d / f"paths-{chain}.parquet")
        keep, new = f["path"]
        col = pq.read_table(old / f"frontier-paths-{chain}.parquet")["path"].combine_chunks()
        kept = col.filter(pa.array(keep))
        fp = pa.concat_arrays([kept.cast(pa.list_(pa.string())), pa.array(new, pa.list_(pa.string()))])
        pq.write_table(pa.table({"path": fp}), d / f"frontier-paths-{chain}.parquet")
    (d / "state.json").write_text(json.dumps(doc))


__all__ = ["update_index"]
