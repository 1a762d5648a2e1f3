"""Cases: an investigation kept in the service store (seeds, taint model, the graph, layout, notes, sharing).

A case is created from an incident (its seeds) or from seeds given directly. ``graph`` is the state the UI
draws: nodes and edges exactly as the /v1 graph endpoints returned them, plus ``positions`` (the layout),
``hidden``, ``pinned``, ``groups`` and the filters; the service stores it as given (JSON, bounded in size)
and never recomputes it. Who may see a case: its owner, the users it is shared with, and admins; who may
change it: the owner and the users it is shared with, if their role is investigator or admin.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fundtrail.errors import AuthError, FieldError, NotFoundError
from fundtrail.incidents import get_incident
from fundtrail.model.trace import Seed
from fundtrail.service.store import Store, now_iso
from fundtrail.store import Workspace
from fundtrail.trace.taint import MODELS

MAX_GRAPH = 4 << 20  # bytes of graph JSON a case may hold (2,000+ nodes fit)
MAX_NOTES = 200_000
_COLS = ("case_id", "owner", "title", "incident", "seeds", "model", "graph", "notes", "created", "updated")


def _row(r: tuple) -> dict[str, Any]:
    d = dict(zip(_COLS, r, strict=True))
    d["seeds"] = json.loads(d["seeds"])
    d["graph"] = json.loads(d["graph"])
    return d


def seeds_of(case: dict[str, Any]) -> list[Seed]:
    return [Seed(s["chain"], address=s.get("address"), txid=s.get("txid")) for s in case["seeds"]]


def _parse_seeds(ws: Workspace, seeds: list[dict[str, Any]] | list[str]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(seeds):
        if isinstance(s, str):
            chain, _, addr = s.partition(":")
            s = {"chain": chain.strip(), "address": addr.strip()}
        chain, addr = str(s.get("chain") or "").strip(), str(s.get("address") or "").strip()
        if not chain or not addr:
            raise FieldError(f"seeds[{i}]", "needs chain and address (CHAIN:ADDRESS)")
        if ws.chain(chain) is None:
            raise FieldError(f"seeds[{i}].chain", f"unknown chain {chain!r}")
        out.append({"chain": chain, "address": addr})
    return out


def create_case(store: Store, ws: Workspace, owner: str, *, title: str | None = None, incident: str | None = None,
                seeds: list[Any] | None = None, model: str = "haircut") -> dict[str, Any]:
    if model not in MODELS:
        raise FieldError("model", f"unknown taint model {model!r} (poison, haircut, fifo)")
    if incident:
        try:
            inc = get_incident(ws, incident)
        except Exception as e:  # noqa: BLE001 - translate to the field
            raise FieldError("incident", str(e)) from None
        sd = [{"chain": s.chain, "address": s.address} for s in inc.seeds if s.address]
        if not sd:
            raise FieldError("incident", f"the incident {incident!r} has no address seeds")
    else:
        sd = _parse_seeds(ws, seeds or [])
        if not sd:
            raise FieldError("seeds", "give an incident or at least one seed CHAIN:ADDRESS")
    title = (title or incident or f"{sd[0]['chain']}:{sd[0]['address']}").strip()[:200]
    cid = "case_" + secrets.token_hex(6)
    now = now_iso()
    store.execute("INSERT INTO cases (case_id, owner, title, incident, seeds, model, graph, notes, created, updated) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?)", (cid, owner, title, incident, json.dumps(sd), model,
                                                   json.dumps({"nodes": [], "edges": []}), "", now, now))
    return get_case(store, cid, owner, "admin")


def _shared(store: Store, cid: str) -> list[str]:
    return [r[0] for r in store.execute("SELECT user_name FROM case_shares WHERE case_id = ? ORDER BY user_name",
                                        (cid,))]


def get_case(store: Store, cid: str, user: str, role: str, *, write: bool = False) -> dict[str, Any]:
    rows = store.execute(f"SELECT {', '.join(_COLS)} FROM cases WHERE case_id = ?", (cid,))
    if not rows:
        raise NotFoundError(f"no case {cid!r}")
    c = _row(rows[0])
    c["shared_with"] = _shared(store, cid)
    mine = c["owner"] == user or user in c["shared_with"]
    if not (mine or role == "admin"):
        raise NotFoundError(f"no case {cid!r}")  # do not reveal other people's cases
    if write and (not mine and role != "admin" or role not in ("investigator", "admin")):
        raise AuthError("only the owner or a user the case is shared with (investigator or admin) may change it",
                        403)
    return c


def list_cases(store: Store, user: str, role: str) -> list[dict[str, Any]]:
    cols = "case_id, owner, title, incident, model, created, updated"
    if role == "admin":
        rows = store.execute(f"SELECT {cols} FROM cases ORDER BY updated DESC LIMIT 500")
    else:
        rows = store.execute(f"SELECT {cols} FROM cases WHERE owner = ? OR case_id IN (SELECT case_id FROM "
                             f"case_shares WHERE user_name = ?) ORDER BY updated DESC LIMIT 500", (user, user))
    return [dict(zip(("case_id", "owner", "title", "incident", "model", "created", "updated"), r, strict=True))
            for r in rows]


def update_case(store: Store, cid: str, user: str, role: str, *, graph: dict[str, Any] | None = None,
                notes: str | None = None, title: str | None = None, model: str | None = None) -> dict[str, Any]:
    get_case(store, cid, user, role, write=True)
    sets, params = [], []
    if graph is not None:
        if not isinstance(graph, dict):
            raise FieldError("graph", "must be an object")
        g = json.dumps(graph, separators=(",", ":"))
        if len(g) > MAX_GRAPH:
            raise FieldError("graph", f"larger than {MAX_GRAPH} bytes")
        sets.append("graph = ?")
        params.append(g)
    if notes is not None:
        if len(notes) > MAX_NOTES:
            raise FieldError("notes", f"longer than {MAX_NOTES} characters")
        sets.append("notes = ?")
        params.append(notes)
    if title is not None:
        if not title.strip():
            raise FieldError("title", "must not be empty")
        sets.append("title = ?")
        params.append(title.strip()[:200])
    if model is not None:
        if model not in MODELS:
            raise FieldError("model", f"unknown taint model {model!r} (poison, haircut, fifo)")
        sets.append("model = ?")
        params.append(model)
    if sets:
        store.execute(f"UPDATE cases SET {', '.join(sets)}, updated = ? WHERE case_id = ?",
                      (*params, now_iso(), cid))
    return get_case(store, cid, user, role)


def share_case(store: Store, cid: str, user: str, role: str, with_user: str, *, remove: bool = False) -> list[str]:
    c = get_case(store, cid, user, role, write=True)
    if c["owner"] != user and role != "admin":
        raise AuthError("only the owner (or an admin) may share a case", 403)
    if not store.execute("SELECT 1 FROM users WHERE name = ?", (with_user,)):
        raise FieldError("user", f"no user named {with_user!r}")
    if remove:
        store.execute("DELETE FROM case_shares WHERE case_id = ? AND user_name = ?", (cid, with_user))
    elif with_user != c["owner"] and with_user not in c["shared_with"]:
        store.execute("INSERT INTO case_shares (case_id, user_name) VALUES (?,?)", (cid, with_user))
    return _shared(store, cid)
