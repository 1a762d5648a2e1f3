"""Graph expansion for cases: one hop from a node, or all the way from seeds to their endpoints.

Both run the trace service (:func:`fundtrail.trace.service.trace`, so the cached graphs of trace/graph.py and
the kernels of trace/taint.py), never a second engine:

- ``expand(chain, address, direction, model)`` treats the node as the seed and stops after one hop
  (``max_hops=1``): the addresses the funds sit at after that hop (stopped for ``max_hops``), the holdings
  that did not move, the services reached (endpoints: one node per entity) and the mixers. Amounts are what
  the taint model assigns to each (of all the node's funds: the node itself is the seed).
- ``follow(seeds, model)`` traces the case's seeds to the end (the trace's own defaults): one node per
  endpoint entity with the amount of the seeds' funds that reached it, one node per chain for the unspent
  holdings (freezable; listed one by one in the answer's ``unspent``).

Amounts are integers in base units with their decimals; the JSON gives decimal strings as the trace does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fundtrail.errors import FieldError
from fundtrail.investigate.conn import connection
from fundtrail.model.amount import format_units
from fundtrail.model.trace import Seed, TraceResult
from fundtrail.store import Workspace
from fundtrail.store.addrindex import ensure, index
from fundtrail.trace.graph import evm_ledger, utxo_graph
from fundtrail.trace.service import trace
from fundtrail.trace.taint import MODELS

Labeler = Callable[[str, str], dict[str, Any] | None]  # (chain, address) -> {entity, category, country, …}


@dataclass(slots=True)
class Node:
    id: str
    kind: str  # address | entity | holding
    chain: str | None = None
    address: str | None = None
    entity: str | None = None
    category: str | None = None
    country: str | None = None
    sanctioned: bool = False
    addresses: list[str] = field(default_factory=list)
    cluster: int | None = None  # the address's cluster id (from the screening index), for "group by cluster"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "chain": self.chain, "address": self.address,
                "entity": self.entity, "category": self.category, "country": self.country,
                "sanctioned": self.sanctioned, "addresses": self.addresses[:50],
                "address_count": len(self.addresses), "cluster": self.cluster}


@dataclass(slots=True)
class Edge:
    source: str
    target: str
    chain: str
    asset: str
    symbol: str | None
    amount: int
    decimals: int
    hops: int | None = None
    reason: str = "flow"  # flow | endpoint | unspent | mixer
    first_seen: str | None = None  # ISO time the funds first arrived (every kind; None when not known)

    def to_json(self) -> dict[str, Any]:
        return {"id": f"{self.source}->{self.target}:{self.chain}:{self.asset}", "source": self.source,
                "target": self.target, "chain": self.chain, "asset": self.asset, "symbol": self.symbol,
                "amount": format_units(self.amount, self.decimals), "amount_base": str(self.amount),
                "decimals": self.decimals, "hops": self.hops, "reason": self.reason,
                "first_seen": self.first_seen}


def address_node_id(chain: str, address: str) -> str:
    return f"a:{chain}:{address}"


def entity_node_id(entity: str) -> str:
    return f"e:{entity}"


def _check(model: str, direction: str) -> None:
    if model not in MODELS:
        raise FieldError("model", f"unknown taint model {model!r} (poison, haircut, fifo)")
    if direction not in ("forward", "backward"):
        raise FieldError("direction", f"must be forward or backward, not {direction!r}")


def _addr_node(chain: str, address: str, label: Labeler | None) -> Node:
    n = Node(address_node_id(chain, address), "address", chain, address)
    lab = label(chain, address) if label else None
    if lab:
        n.entity, n.category, n.country = lab.get("entity"), lab.get("category"), lab.get("country")
        n.sanctioned = bool(lab.get("sanctioned"))
        n.cluster = lab.get("cluster")
    return n


def _tx_times(ws: Workspace, txids: dict[str, set[str]]) -> dict[tuple[str, str], datetime]:
    """The block time of each (chain, txid), from the trace's cached graphs (no query)."""
    out: dict[tuple[str, str], datetime] = {}
    for chain, ids in txids.items():
        ids_l = sorted(i for i in ids if i)
        if not ids_l:
            continue
        if (ws.chain(chain) or {}).get("kind") == "evm":
            led = evm_ledger(ws, chain)
            for t in ids_l:
                rows = led.tx_rows(t)
                if len(rows):
                    out[(chain, t)] = datetime.fromtimestamp(int(led.time[rows.start]), UTC)
        else:
            g = utxo_graph(ws, chain)
            nums = g.tx_numbers(ids_l)
            for t, k in zip(ids_l, nums.tolist(), strict=True):
                if k >= 0:
                    out[(chain, t)] = datetime.fromtimestamp(int(g.tx_time[k]), UTC)
    return out


def _graph(result: TraceResult, sources: dict[str, str], label: Labeler | None, stopped: bool,
           group_holdings: bool = False, times: dict[tuple[str, str], datetime] | None = None
           ) -> tuple[dict[str, Node], list[Edge]]:
    """Nodes and edges of a trace: ``sources`` maps a chain to the node the edges leave from; with
    ``group_holdings`` the unspent holdings of a chain form one node. ``times`` gives the block time of the
    transactions of one-hop flows and mixer deposits (their edges' ``first_seen``)."""
    times = times or {}
    seed_keys = {f"{s.chain}:{s.address}" for s in result.seeds if s.address}
    nodes: dict[str, Node] = {}
    edges: dict[tuple[str, str, str, str, str], Edge] = {}
    src_any = next(iter(sources.values()))

    def add_edge(src: str, dst: str, chain: str, asset: str, symbol: str | None, amount: int, decimals: int,
                 hops: int | None, reason: str, when: Any = None) -> None:
        k = (src, dst, chain, asset, reason)
        e = edges.get(k)
        t = when.isoformat() if when is not None else None
        if e is None:
            edges[k] = Edge(src, dst, chain, asset, symbol, amount, decimals, hops, reason, t)
        else:
            e.amount += amount
            if t is not None and (e.first_seen is None or t < e.first_seen):
                e.first_seen = t
            e.hops = min(x for x in (e.hops, hops) if x is not None) if (e.hops or hops) is not None else None

    for ep in result.endpoints:
        nid = entity_node_id(ep.entity)
        n = nodes.get(nid)
        if n is None:
            n = nodes[nid] = Node(nid, "entity", ep.chain, None, ep.entity, ep.category, ep.country,
                                  ep.sanctioned)
        n.addresses = sorted(set(n.addresses) | set(ep.addresses))
        add_edge(sources.get(ep.chain, src_any), nid, ep.chain, ep.asset, ep.symbol, ep.amount, ep.decimals,
                 ep.hops, "endpoint", ep.first_seen)
    for h in result.unspent:
        if h.chain + ":" + h.address in seed_keys:
            continue  # funds that never left the seed
        if group_holdings:  # one node per chain: the unspent holdings are listed in the case's table
            nid = f"u:{h.chain}"
            if nid not in nodes:
                nodes[nid] = Node(nid, "holding", h.chain, None, f"unspent on {h.chain}")
            nodes[nid].addresses.append(h.address)
        else:
            nid = address_node_id(h.chain, h.address)
            if nid not in nodes:
                nodes[nid] = _addr_node(h.chain, h.address, label)
                nodes[nid].kind = "holding"
            if nid in sources.values():
                continue
        add_edge(sources.get(h.chain, src_any), nid, h.chain, h.asset, h.symbol, h.amount, h.decimals, None,
                 "unspent", h.since)
    for m in result.mixers:
        nid = entity_node_id(m.mixer)
        if nid not in nodes:
            nodes[nid] = Node(nid, "entity", m.chain, None, m.mixer, "mixer")
        when = min((times[(m.chain, t)] for t in m.deposits if (m.chain, t) in times), default=None)
        add_edge(sources.get(m.chain, src_any), nid, m.chain, m.asset, None, m.amount, m.decimals, None, "mixer",
                 when)
    if stopped:
        for s in result.stopped:
            if s.reason != "max_hops" or not s.address:
                continue
            nid = address_node_id(s.chain, s.address)
            if nid not in nodes:
                nodes[nid] = _addr_node(s.chain, s.address, label)
            add_edge(sources.get(s.chain, src_any), nid, s.chain, s.asset, None, s.amount, s.decimals, 1, "flow",
                     times.get((s.chain, s.txid or "")))
    symbols = {(b.chain, b.asset): b.symbol for b in result.traced}
    out = []
    for e in edges.values():
        if e.symbol is None:
            e.symbol = symbols.get((e.chain, e.asset))
        out.append(e)
    out.sort(key=lambda e: (-e.amount, e.target))
    return nodes, out


def _edge_txids(r: TraceResult, stopped: bool) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in r.mixers:
        out.setdefault(m.chain, set()).update(m.deposits)
    if stopped:
        for s in r.stopped:
            if s.reason == "max_hops" and s.address and s.txid:
                out.setdefault(s.chain, set()).add(s.txid)
    return out


def _indexed(ws: Workspace, chains: Sequence[str]) -> None:
    """The address dictionary's index of each chain (store/addrindex.py), built now if a commit added
    addresses since: the trace then resolves the node's address, and names the addresses it reaches,
    without scanning the dictionary."""
    for chain in chains:
        if ws.chain(chain) is not None or ws.parts("addresses", chain):
            index(ws, chain)


def expand(ws: Workspace, chain: str, address: str, *, direction: str = "forward", model: str = "haircut",
           label: Labeler | None = None) -> dict[str, Any]:
    """One hop from ``address`` (forward: where its funds went; backward: where they came from)."""
    _check(model, direction)
    _indexed(ws, [chain])
    r = trace(ws, [Seed(chain, address=address)], model=model, direction=direction, max_hops=1)
    me = address_node_id(chain, address)
    nodes, edges = _graph(r, {chain: me}, label, stopped=True, times=_tx_times(ws, _edge_txids(r, stopped=True)))
    if direction == "backward":
        for e in edges:
            e.source, e.target = e.target, e.source
    nodes.pop(me, None)
    return {"node": _addr_node(chain, address, label).to_json(), "direction": direction, "model": model,
            "nodes": [n.to_json() for n in nodes.values()], "edges": [e.to_json() for e in edges],
            "seconds": r.params.get("seconds")}


def follow(ws: Workspace, seeds: Sequence[Seed], *, model: str = "haircut", direction: str = "forward",
           label: Labeler | None = None) -> dict[str, Any]:
    """The seeds traced to their endpoints: one node per endpoint entity, the unspent holdings, the mixers."""
    _check(model, direction)
    if not seeds:
        raise FieldError("seeds", "at least one seed is needed")
    _indexed(ws, sorted({s.chain for s in seeds}))
    r = trace(ws, list(seeds), model=model, direction=direction)
    sources: dict[str, str] = {}
    seed_nodes = []
    for s in seeds:
        if s.address:
            nid = address_node_id(s.chain, s.address)
            sources.setdefault(s.chain, nid)
            seed_nodes.append(_addr_node(s.chain, s.address, label))
    if not sources:
        raise FieldError("seeds", "following needs an address seed (transactions are seeds of `fundtrail trace`)")
    nodes, edges = _graph(r, sources, label, stopped=False, group_holdings=True,
                          times=_tx_times(ws, _edge_txids(r, stopped=False)))
    for n in seed_nodes:
        nodes.pop(n.id, None)
    # a chain reached through a bridge or swap has no seed of its own: its edges leave from the first seed
    j = r.to_json()  # endpoints and holdings below carry their amount in base units too (exact comparisons)
    return {"model": model, "direction": direction, "seeds": [n.to_json() for n in seed_nodes],
            "nodes": [n.to_json() for n in nodes.values()], "edges": [e.to_json() for e in edges],
            "endpoints": [{**e.to_json(), "amount_base": str(e.amount)} for e in r.endpoints],
            "unspent": [{**h.to_json(), "amount_base": str(h.amount)} for h in r.unspent],
            "traced_amount": j["traced_amount"],
            "conservation": j["conservation"], "seconds": r.params.get("seconds")}


def warm(ws: Workspace) -> list[str]:
    """Build the address dictionary's index and the trace's cached graphs of every chain (one one-hop
    expansion each) so that the first expansion a user asks for is answered as fast as the next ones.
    Returns the chains warmed."""
    done = []
    ensure(ws)
    with connection(ws) as con:
        firsts = con.execute("SELECT chain, min(address) FROM addresses GROUP BY chain ORDER BY chain").fetchall()
    for chain, addr in firsts:
        for direction in ("forward", "backward"):
            expand(ws, chain, addr, direction=direction)
        done.append(chain)
    return done
