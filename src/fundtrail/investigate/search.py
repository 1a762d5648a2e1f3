"""One search box: an address, a transaction id, a cluster id, an entity or an incident name, on any chain."""

from __future__ import annotations

import re
from typing import Any

from fundtrail.incidents import list_incidents
from fundtrail.investigate.conn import connection
from fundtrail.store import Workspace

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
LIMIT = 50


def search(ws: Workspace, q: str, *, limit: int = LIMIT) -> list[dict[str, Any]]:
    """Hits as ``{kind: address|transaction|cluster|entity|incident, chain, id, label}``, exact matches
    first. Addresses and transactions are matched exactly (EVM case-insensitively); entities and incidents by
    substring."""
    text = q.strip()
    if not text:
        return []
    hits: list[dict[str, Any]] = []
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "addresses" in tables:
            for chain, addr in con.execute("SELECT chain, address FROM addresses WHERE address = $a OR address = "
                                           "lower($a) ORDER BY chain LIMIT $n", {"a": text, "n": limit}).fetchall():
                hits.append({"kind": "address", "chain": chain, "id": addr, "label": addr})
        if _HEX64.match(text):
            h = text.lower().removeprefix("0x")
            if "utxo_transactions" in tables:
                for (chain,) in con.execute("SELECT chain FROM utxo_transactions WHERE txid = from_hex($h) LIMIT 5",
                                            {"h": h}).fetchall():
                    hits.append({"kind": "transaction", "chain": chain, "id": h, "label": h})
            if "evm_transactions" in tables:
                for (chain,) in con.execute("SELECT chain FROM evm_transactions WHERE txid = $h LIMIT 5",
                                            {"h": "0x" + h}).fetchall():
                    hits.append({"kind": "transaction", "chain": chain, "id": "0x" + h, "label": "0x" + h})
        if text.isdigit() and "cluster_members" in tables:
            for chain, size in con.execute("SELECT chain, count(*) FROM cluster_members WHERE cluster_id = $k "
                                           "GROUP BY chain ORDER BY chain", {"k": int(text)}).fetchall():
                hits.append({"kind": "cluster", "chain": chain, "id": int(text),
                             "label": f"cluster {text} ({size:,} addresses)"})
        if "tags" in tables:
            for ent, cat, country, n in con.execute(
                    "SELECT entity, any_value(category), any_value(country), count(*) FROM tags "
                    "WHERE entity ILIKE '%' || $t || '%' GROUP BY entity ORDER BY (lower(entity) = lower($t)) DESC, "
                    "entity LIMIT $n", {"t": text, "n": limit}).fetchall():
                if ent:
                    hits.append({"kind": "entity", "chain": None, "id": ent,
                                 "label": f"{ent} ({cat or '?'}, {country or '?'}; {n} tags)"})
    low = text.lower()
    for inc in list_incidents(ws):
        if low in inc.name.lower() or (inc.actor and low in inc.actor.lower()):
            hits.append({"kind": "incident", "chain": ",".join(inc.chains), "id": inc.name,
                         "label": f"{inc.name} ({len(inc.seeds)} seeds)"})
    return hits[:limit]
