"""A case graph of many nodes for the tests of saving big cases (HTTP and browser)."""

from __future__ import annotations

import json


def big_graph(n: int, real: dict) -> dict:
    """A case graph of ``n`` address nodes and ``n`` edges for the store's size limits: the first nodes and
    edges are a real expansion's answer, the rest are copies of its first address node under made-up
    addresses (``bcrt1qsize…``: the store neither resolves nor interprets what a graph holds)."""
    nodes = {x["id"]: x for x in [real["node"], *real["nodes"]]}
    edges = {f"{e['source']}->{e['target']}:{e['chain']}:{e['asset']}": e for e in real["edges"]}
    proto = next(x for x in real["nodes"] if x["kind"] == "address")
    proto_e = real["edges"][0]
    ids = list(nodes)
    while len(nodes) < n:
        i = len(nodes)
        a = f"bcrt1qsize{i:08d}" + "q" * 30
        nid = f"a:{proto['chain']}:{a}"
        nodes[nid] = dict(proto, id=nid, address=a)
        src = ids[(i * 7) % len(ids)]
        e = dict(proto_e, source=src, target=nid)
        e.pop("id", None)
        edges[f"{src}->{nid}:{e['chain']}:{e['asset']}"] = e
        ids.append(nid)
    positions = {k: {"x": (j % 97) * 220 + 7, "y": (j // 97) * 38 + 5} for j, k in enumerate(nodes)}
    return {"nodes": list(nodes.values()), "edges": list(edges.values()), "positions": positions}


def graph_parts(g: dict, limit: int) -> list[dict]:
    """The graph as PATCH /graph bodies of at most ``limit`` bytes: nodes before the edges that need them."""
    out, cur, size = [], {"reset": True}, 20
    items = [("nodes", x) for x in g["nodes"]] + [("edges", x) for x in g["edges"]] + \
        [("positions", (k, v)) for k, v in g["positions"].items()]
    for kind, x in items:
        n = len(json.dumps(x)) + 2
        if size + n > limit:
            out.append(cur)
            cur, size = {}, 20
        if kind == "positions":
            cur.setdefault("positions", {})[x[0]] = x[1]
        else:
            cur.setdefault(kind, []).append(x)
        size += n + 12
    return out + [cur]

