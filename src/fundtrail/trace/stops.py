"""Where a trace stops: attributed services (endpoints), mixers, bridges; and which transactions are CoinJoins.

Labels come from attribution's ``resolve_labels(ws, chain)`` (one row per address, directly or through its
cluster); while that is not available, a private adapter reads the ``tags`` and ``cluster_members`` tables
the same way (the highest-confidence tag of an address or of any member of its cluster wins). EVM
contracts that emit the bridge's or the mixer pool's events are bridges / mixers even when untagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fundtrail.store import Workspace
from fundtrail.trace.taint import S_BRIDGE, S_MIXER, S_NONE, S_SERVICE

try:  # attribution's taxonomy (issue 4)
    from fundtrail.attribution.taxonomy import SERVICE_CATEGORIES as _SERVICES
except ImportError:  # pragma: no cover - until attribution lands
    _SERVICES = frozenset({"exchange", "exchange_nokyc", "otc_desk", "payment_processor", "gambling"})
SERVICE_CATEGORIES = frozenset(_SERVICES)


@dataclass(frozen=True, slots=True)
class Label:
    entity: str
    category: str
    country: str | None
    sanctioned: bool
    is_service: bool
    confidence: float = 1.0


@dataclass(slots=True)
class Labels:
    chain: str
    by_id: dict[int, Label] = field(default_factory=dict)
    stop: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # per address id: S_* kind

    def get(self, address_id: int) -> Label | None:
        return self.by_id.get(int(address_id))

    def kind(self, address_id: int) -> int:
        a = int(address_id)
        return int(self.stop[a]) if 0 <= a < len(self.stop) else S_NONE


def _stop_kind(lab: Label) -> int:
    if lab.is_service:
        return S_SERVICE
    if lab.category == "mixer":
        return S_MIXER
    if lab.category == "bridge":
        return S_BRIDGE
    return S_NONE


def _resolved(ws: Workspace, chain: str) -> pa.Table:
    try:
        from fundtrail.attribution.resolve import resolve_labels
    except ImportError:
        return _private_resolve(ws, chain)
    return resolve_labels(ws, chain, getattr(ws, "tags_at", None))  # an as-of view (trace/asof.py): its tag time


def _private_resolve(ws: Workspace, chain: str) -> pa.Table:
    """The adapter used until ``fundtrail.attribution.resolve`` exists: tags joined to ids and clusters."""
    con = ws.connect()
    try:
        return con.sql("""
            WITH t AS (
                SELECT a.address_id, t.entity, t.label, t.category, t.country, coalesce(t.confidence, 0.5) AS conf,
                       t.category = 'sanctioned' AS sanc
                FROM tags t JOIN addresses a ON a.chain = t.chain AND a.address = t.address
                WHERE t.chain = ?
            ), direct AS (
                SELECT address_id, arg_max(struct_pack(entity := coalesce(entity, label), category := category,
                       country := country), conf) AS w, max(conf) AS conf, bool_or(sanc) AS sanc
                FROM t GROUP BY address_id
            ), via AS (
                SELECT m2.address_id, arg_max(d.w, d.conf) AS w, max(d.conf) AS conf, bool_or(d.sanc) AS sanc
                FROM direct d JOIN cluster_members m1 ON m1.chain = ? AND m1.address_id = d.address_id
                JOIN cluster_members m2 ON m2.chain = m1.chain AND m2.cluster_id = m1.cluster_id
                GROUP BY m2.address_id
            ), best AS (
                SELECT coalesce(d.address_id, v.address_id) AS address_id, coalesce(d.w, v.w) AS w,
                       coalesce(d.conf, v.conf) AS confidence, coalesce(d.sanc, v.sanc) AS sanctioned
                FROM direct d FULL JOIN via v ON v.address_id = d.address_id
            )
            SELECT address_id, w.entity AS entity, w.entity AS label, w.category AS category,
                   w.country AS country, confidence, sanctioned FROM best""", params=[chain, chain]).to_arrow_table()
    finally:
        con.close()


def load_labels(ws: Workspace, chain: str, extra: dict[int, Label] | None = None) -> Labels:
    t = _resolved(ws, chain)
    by_id: dict[int, Label] = {}
    if t.num_rows:
        cols = {c: t[c].to_pylist() for c in t.column_names}
        n = t.num_rows
        ent = cols.get("entity") or [None] * n
        lab = cols.get("label") or [None] * n
        cat = cols.get("category") or [None] * n
        ctry = cols.get("country") or [None] * n
        sanc = cols.get("sanctioned") or [False] * n
        conf = cols.get("confidence") or [1.0] * n
        svc = cols.get("is_service")
        for i, a in enumerate(cols["address_id"]):
            if a is None:
                continue
            c = (cat[i] or "other").lower()
            by_id[int(a)] = Label(entity=ent[i] or lab[i] or "unknown", category=c, country=ctry[i],
                                  sanctioned=bool(sanc[i]),
                                  is_service=bool(svc[i]) if svc is not None else c in SERVICE_CATEGORIES,
                                  confidence=float(conf[i] if conf[i] is not None else 1.0))
    for a, lab_ in (extra or {}).items():
        by_id.setdefault(a, lab_)
    size = max(by_id, default=-1) + 1
    stop = np.zeros(size, np.int8)
    for a, lab_ in by_id.items():
        if a >= 0:
            stop[a] = _stop_kind(lab_)
    return Labels(chain, by_id, stop)


def coinjoin_txids(ws: Workspace, chain: str) -> set[str]:
    """The CoinJoin transactions of a chain: the stored ``coinjoin_txs`` table when clustering has run,
    else clustering's detector run now."""
    from fundtrail.store import schema as S

    if "coinjoin_txs" in S.SCHEMAS and ws.parts("coinjoin_txs", chain):
        return set(ws.read("coinjoin_txs", chain, columns=["txid"])["txid"].to_pylist())
    try:
        from fundtrail.cluster.coinjoin import detect_coinjoins
    except ImportError:  # pragma: no cover - until clustering lands
        return set()
    t = detect_coinjoins(ws, chain)
    return set(t["txid"].to_pylist()) if t.num_rows else set()


__all__ = ["Label", "Labels", "load_labels", "coinjoin_txids", "SERVICE_CATEGORIES", "S_SERVICE", "S_MIXER",
           "S_BRIDGE", "S_NONE"]
