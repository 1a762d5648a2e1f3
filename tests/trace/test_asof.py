"""Tracing as of a block height and a tag time (trace/asof.py) on a small hand-computed world."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fundtrail.errors import UsageError, WorkspaceError
from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.asof import as_of, parse_heights
from fundtrail.trace.service import trace

from .world import BtcWorld, addr


def _story(ws: Workspace, tagged: bool = True) -> None:
    w = BtcWorld()
    _story_into(w, tagged)
    w.write(ws)


def _story_into(w: BtcWorld, tagged: bool = True) -> None:
    w.tx("cb1", [], [("victim", 100_000)], height=1)
    w.tx("theft", [("cb1", 0)], [("thief", 99_000)], height=2)
    w.tx("cb2", [], [("clean", 50_000)], height=2)
    w.tx("mix", [("theft", 0), ("cb2", 0)], [("x", 100_000), ("exch", 48_000)], height=3)
    w.tx("split", [("mix", 0)], [("y", 60_000), ("z", 39_500)], height=4)
    if tagged:
        w.tag("exch", "exchange", "Garantex", "RU")


SEED = [Seed("regtest", address=addr("thief"))]


def test_as_of_height_ignores_later_blocks(home):
    ws = Workspace(home)
    _story(ws)
    full = trace(ws, SEED, model="haircut")
    assert {h.address for h in full.unspent} == {addr("y"), addr("z")}
    at3 = trace(ws, SEED, model="haircut", as_of_height=3)
    assert {h.address for h in at3.unspent} == {addr("x")}  # the split of block 4 has not happened
    assert {(e.entity, e.amount) for e in at3.endpoints} == {(e.entity, e.amount) for e in full.endpoints}
    assert all(b.balanced for b in at3.balances)
    assert at3.params["as_of"]["default_height"] == 3 and "as_of" not in full.params
    at2 = trace(ws, SEED, model="haircut", as_of_height="regtest=2")
    assert not at2.endpoints and {h.address: h.amount for h in at2.unspent} == {addr("thief"): 99_000}
    # the live workspace is unchanged afterwards (per-generation caches keep views apart)
    again = trace(ws, SEED, model="haircut")
    assert {h.address for h in again.unspent} == {addr("y"), addr("z")}
    view = as_of(ws, 3)
    assert view.chain("regtest")["tip_height"] == 3
    assert view.read("utxo_transactions", "regtest")["height"].to_pylist() == [1, 2, 2, 3]
    with pytest.raises(WorkspaceError):
        with view.transaction():
            pass


@pytest.mark.parametrize("height", [1, 2, 3, 4])
def test_as_of_height_equals_a_workspace_that_never_saw_later_blocks(tmp_path, height):
    """The view at H and a workspace written with only the blocks up to H give the same trace."""
    full, cut = Workspace(tmp_path / "full"), Workspace(tmp_path / "cut")
    _story(full)
    w = BtcWorld()
    _story_into(w)
    w.txs = [t for t in w.txs if t["height"] <= height]
    w.write(cut)
    for model in ("poison", "haircut", "fifo"):
        a = trace(full, SEED, model=model, as_of_height=height)
        if height < 2:  # the theft is in block 2: nothing to trace yet (the cut workspace never saw the thief)
            assert not a.endpoints and not a.unspent and not a.traced
            continue
        b = trace(cut, SEED, model=model)
        assert [(e.entity, e.amount, e.paths) for e in a.endpoints] == [(e.entity, e.amount, e.paths) for e in b.endpoints]
        assert [(h.address, h.amount) for h in a.unspent] == [(h.address, h.amount) for h in b.unspent]
        assert [bl.to_json() for bl in a.balances] == [bl.to_json() for bl in b.balances]


def test_tags_as_of_ignores_later_imports(home, tmp_path):
    from fundtrail.attribution.service import import_paths

    ws = Workspace(home)
    _story(ws, tagged=False)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    time.sleep(1.1)
    csv = tmp_path / "tags.csv"
    csv.write_text("address,chain,label,category,entity,country,source,confidence\n"
                   f"{addr('exch')},regtest,Garantex,exchange,Garantex,RU,test,1.0\n")
    import_paths(ws, [csv])
    assert {e.entity for e in trace(ws, SEED).endpoints} == {"Garantex"}
    assert not trace(ws, SEED, tags_as_of=before).endpoints
    assert {e.entity for e in trace(ws, SEED, tags_as_of=dt.datetime.now(dt.UTC)).endpoints} == {"Garantex"}


def test_parse_heights():
    assert parse_heights(None) == ({}, None)
    assert parse_heights(7) == ({}, 7)
    assert parse_heights(["bitcoin=5", "ethereum=9", "3"]) == ({"bitcoin": 5, "ethereum": 9}, 3)
    assert parse_heights({"regtest": 2}) == ({"regtest": 2}, None)
    for bad in ("x", "bitcoin=-1", "bitcoin="):
        with pytest.raises(UsageError):
            parse_heights(bad)
