"""Users, sessions, lockout, CSRF tokens, cases and the action log in the service store (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher

from fundtrail.errors import AuthError, FieldError, NotFoundError, UsageError
from fundtrail.service import cases as C
from fundtrail.service import users as U
from fundtrail.service.store import open_store


@pytest.fixture
def store(db_url, tmp_path):
    s = open_store(db_url, tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_passwords_are_argon2_hashes_and_shown_once(store):
    pw = U.create_user(store, "ann", "investigator")
    assert len(pw) >= 16
    (h,) = store.execute("SELECT pw_hash FROM users WHERE name = 'ann'")[0]
    assert h.startswith("$argon2id$") and pw not in h
    assert PasswordHasher().verify(h, pw)
    with pytest.raises(UsageError):
        U.create_user(store, "ann", "viewer")
    with pytest.raises(FieldError):
        U.create_user(store, "bob", "screener")  # keys have screeners; people do not
    with pytest.raises(FieldError):
        U.create_user(store, "bad name", "viewer")


def test_sessions_and_csrf(store):
    pw = U.create_user(store, "ann", "viewer")
    sid, s = U.sign_in(store, "ann", pw)
    got = U.session(store, sid)
    assert got == s and got.role == "viewer"
    assert U.csrf_ok(s, s.csrf) and not U.csrf_ok(s, "x") and not U.csrf_ok(s, None)
    (stored,) = store.execute("SELECT sid_hash FROM sessions")[0]
    assert sid not in stored  # only the hash is kept
    assert U.session(store, sid + "x") is None
    U.sign_out(store, sid)
    assert U.session(store, sid) is None
    sid2, _ = U.sign_in(store, "ann", pw)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store.execute("UPDATE sessions SET expires = ?", (past,))
    assert U.session(store, sid2) is None
    sid3, _ = U.sign_in(store, "ann", pw)
    U.disable_user(store, "ann")
    assert U.session(store, sid3) is None
    with pytest.raises(AuthError):
        U.sign_in(store, "ann", pw)


def test_lockout(store):
    pw = U.create_user(store, "ann", "viewer")
    for _ in range(U.MAX_FAILURES - 1):
        with pytest.raises(AuthError, match="wrong user name or password"):
            U.sign_in(store, "ann", "nope")
    U.sign_in(store, "ann", pw)  # a success resets the count
    for _ in range(U.MAX_FAILURES - 1):
        with pytest.raises(AuthError, match="wrong"):
            U.sign_in(store, "ann", "nope")
    with pytest.raises(AuthError, match="locked until"):
        U.sign_in(store, "ann", "nope")
    with pytest.raises(AuthError, match="locked until"):
        U.sign_in(store, "ann", pw)
    pw2 = U.reset_password(store, "ann")
    U.sign_in(store, "ann", pw2)


def test_action_log_is_append_only(store):
    U.log_action(store, "ann", "view.address", "bitcoin:1abc")
    U.log_action(store, "bob", "tag", "bitcoin:1abc", "label")
    rows = U.actions(store)
    assert [r["user_name"] for r in rows] == ["bob", "ann"]
    assert [r["action"] for r in U.actions(store, user="ann")] == ["view.address"]
    with pytest.raises(Exception, match="append-only"):
        store.execute("UPDATE ui_actions SET user_name = 'eve'")
    with pytest.raises(Exception, match="append-only"):
        store.execute("DELETE FROM ui_actions")
    assert len(U.actions(store)) == 2


def test_cases_visibility_and_sharing(store, tmp_path):
    from fundtrail.store import Workspace

    ws = Workspace(tmp_path / "ws")
    for n, r in (("ann", "investigator"), ("bob", "investigator"), ("vic", "viewer"), ("adm", "admin")):
        U.create_user(store, n, r)
    with pytest.raises(FieldError, match="seeds"):
        C.create_case(store, ws, "ann", seeds=[])
    with pytest.raises(FieldError, match="unknown chain"):
        C.create_case(store, ws, "ann", seeds=["nochain:abc"])
    cid = "case_" + "0" * 12
    store.execute("INSERT INTO cases (case_id, owner, title, incident, seeds, model, graph, notes, created, updated) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?)", (cid, "ann", "t", None, '[{"chain":"x","address":"a"}]', "haircut",
                                                   '{"nodes":[],"edges":[]}', "", "2026", "2026"))
    with pytest.raises(NotFoundError):
        C.get_case(store, cid, "bob", "investigator")  # not shared: not even its existence
    assert C.get_case(store, cid, "adm", "admin")["owner"] == "ann"
    C.update_case(store, cid, "ann", "investigator", graph={"nodes": [{"id": "n"}], "edges": []}, notes="hi")
    with pytest.raises(NotFoundError):
        C.share_case(store, cid, "bob", "investigator", "vic")
    assert C.share_case(store, cid, "ann", "investigator", "bob") == ["bob"]
    assert C.share_case(store, cid, "ann", "investigator", "vic") == ["bob", "vic"]
    assert C.get_case(store, cid, "bob", "investigator")["graph"]["nodes"] == [{"id": "n"}]
    with pytest.raises(AuthError):
        C.share_case(store, cid, "bob", "investigator", "adm")  # only the owner shares
    C.update_case(store, cid, "bob", "investigator", notes="bob was here")
    assert C.get_case(store, cid, "vic", "viewer")["notes"] == "bob was here"
    with pytest.raises(AuthError):
        C.update_case(store, cid, "vic", "viewer", notes="no")  # a viewer reads a shared case, never writes
    assert [c["case_id"] for c in C.list_cases(store, "vic", "viewer")] == [cid]
    with pytest.raises(FieldError, match="graph"):
        C.update_case(store, cid, "ann", "investigator", graph={"x": "y" * (C.MAX_GRAPH + 1)})


def test_case_graph_saved_by_changes(store):
    """patch_graph on both back ends: items upserted and removed by id, positions merged, view replaced, the
    stored graph bounded, only who may change the case may patch it."""
    U.create_user(store, "ann", "investigator")
    U.create_user(store, "vic", "viewer")
    from fundtrail.service.store import now_iso

    cid = "case_0123456789ab"
    store.execute("INSERT INTO cases (case_id, owner, title, incident, seeds, model, graph, notes, created, updated) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?)", (cid, "ann", "t", None, "[]", "haircut",
                                                   '{"nodes": [], "edges": []}', "", now_iso(), now_iso()))
    e = {"source": "a:c:1", "target": "a:c:2", "chain": "c", "asset": "X", "amount_base": "5"}
    r = C.patch_graph(store, cid, "ann", "investigator", {"nodes": [{"id": "a:c:1"}, {"id": "a:c:2"}], "edges": [e],
                                                          "positions": {"a:c:1": {"x": 1, "y": 2}}})
    assert (r["nodes"], r["edges"], r["positions"]) == (2, 1, 1)
    C.patch_graph(store, cid, "ann", "investigator", {"edges": [dict(e, amount_base="7")], "view": {"grouped": True}})
    g = C.get_case(store, cid, "ann", "investigator")["graph"]
    assert g["edges"] == [dict(e, amount_base="7")] and g["grouped"] is True
    C.patch_graph(store, cid, "ann", "investigator", {"remove_nodes": ["a:c:2"]})
    g = C.get_case(store, cid, "ann", "investigator")["graph"]
    assert g["nodes"] == [{"id": "a:c:1"}] and g["edges"] == [] and g["positions"] == {"a:c:1": {"x": 1, "y": 2}}
    with pytest.raises(FieldError, match="nodes\\[0\\].id"):
        C.patch_graph(store, cid, "ann", "investigator", {"nodes": [{"kind": "address"}]})
    with pytest.raises(FieldError, match="graph"):
        C.patch_graph(store, cid, "ann", "investigator", {"nodes": [{"id": "big", "x": "y" * (C.MAX_GRAPH + 1)}]})
    with pytest.raises(NotFoundError):
        C.patch_graph(store, cid, "vic", "viewer", {})  # not shared: not even its existence
    C.share_case(store, cid, "ann", "investigator", "vic")
    with pytest.raises(AuthError):
        C.patch_graph(store, cid, "vic", "viewer", {})  # shared with a viewer: read only
    with pytest.raises(NotFoundError):
        C.patch_graph(store, "case_ffffffffffff", "ann", "investigator", {})
    assert len(C.get_case(store, cid, "ann", "investigator")["graph"]["nodes"]) == 1  # nothing of the refused
