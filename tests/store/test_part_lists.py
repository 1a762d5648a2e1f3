"""Part lists: sealed into immutable segments (commits stay small) and merged in tiers (few files), while
edits, aborts and crashes keep the rows exact."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.store import Workspace
from fundtrail.store import workspace as W


def _blocks(heights: list[int]) -> pa.Table:
    return pa.table({"chain": ["bitcoin"] * len(heights), "height": heights,
                     "hash": [f"{h:064x}" for h in heights], "tx_count": [1] * len(heights)})


@pytest.fixture
def small_seal(monkeypatch):
    monkeypatch.setattr(W, "SEAL", 3)


def _heights(ws: Workspace) -> list[int]:
    return [h for p in ws.part_paths("utxo_blocks", "bitcoin")
            for h in pa.parquet.read_table(p)["height"].to_pylist()]


def test_many_commits_keep_the_manifest_small_and_the_parts_in_order(home, small_seal):
    ws = Workspace(home)
    for h in range(20):  # one part per commit, like an ingest batch
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks([h]))
    m = json.loads((home / "manifest.json").read_text())
    assert len(m["tables"]["utxo_blocks"]["bitcoin"]) == 20 % 3  # only the open tail is inline
    assert len(m["sealed"]["utxo_blocks"]["bitcoin"]) == 20 // 3
    assert len(list((home / W.SEGMENTS).iterdir())) == 20 // 3
    fresh = Workspace(home)
    assert [p.lo for p in fresh.parts("utxo_blocks", "bitcoin")] == list(range(20))
    assert fresh.row_count("utxo_blocks") == 20
    assert fresh.query("select count(*) as n, max(height) as m from blocks").to_pylist() == [{"n": 20, "m": 19}]


def test_a_rollback_keeps_untouched_segments_and_drops_the_rest(home, small_seal):
    ws = Workspace(home)
    for h in range(12):
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks([2 * h, 2 * h + 1]))
    before = json.loads((home / "manifest.json").read_text())["sealed"]["utxo_blocks"]["bitcoin"]
    with ws.transaction() as txn:  # heights 0..24 kept: parts 0..11 kept, part 12 (24, 25) rewritten
        assert txn.truncate_above("utxo_blocks", "bitcoin", 14) == 9
    after = json.loads((home / "manifest.json").read_text())["sealed"]["utxo_blocks"]["bitcoin"]
    assert after == before[:2]  # parts 0-5 untouched; the third segment (parts 6-8) is cut
    assert not (home / before[2]).exists() and not (home / before[3]).exists()
    assert _heights(Workspace(home)) == list(range(15))
    with ws.transaction() as txn:
        txn.replace("utxo_blocks", "bitcoin", _blocks([7]))
    assert not any((home / n).exists() for n in before)
    assert _heights(Workspace(home)) == [7]
    assert len(list((home / "tables" / "utxo_blocks" / "bitcoin").iterdir())) == 1


def test_a_commit_that_fails_after_sealing_leaves_the_old_state_and_its_files_are_collected(
        home, small_seal, monkeypatch):
    ws = Workspace(home)
    for h in range(2):
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks([h]))
    # the part and the sealed segment are written, then the manifest's rename fails
    monkeypatch.setattr(W.os, "replace", _fail_on_manifest(W.os.replace))
    with pytest.raises(OSError), ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks([2]))
    monkeypatch.undo()
    monkeypatch.setattr(W, "SEAL", 3)
    assert list((home / W.SEGMENTS).iterdir()) == []  # the failed commit removed the segment it wrote
    fresh = Workspace(home)
    assert _heights(fresh) == [0, 1]
    with fresh.transaction():
        pass
    assert list((home / W.SEGMENTS).iterdir()) == []  # orphan segment collected
    assert len(list((home / "tables" / "utxo_blocks" / "bitcoin").iterdir())) == 2


def _fail_on_manifest(real):
    def replace(src, dst):
        if str(dst).endswith(W.MANIFEST):
            raise OSError("disk full while writing the manifest")
        return real(src, dst)
    return replace


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("truncate"), st.integers(-1, 40), st.booleans()),
    st.tuples(st.just("replace"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("merge"), st.integers(2, 3), st.booleans())), max_size=25))
def test_part_lists_with_segments_equal_a_plain_list(tmp_path_factory, ops):
    """Any sequence of committed or aborted appends, rollbacks and replaces gives the rows a plain list gives."""
    home = tmp_path_factory.mktemp("ws")
    old = W.SEAL
    W.SEAL = 2
    try:
        ws = Workspace(home)
        model: list[int] = []
        nxt = 0
        for op, arg, abort in ops:
            trial = list(model)
            try:
                with ws.transaction() as txn:
                    if op == "append":
                        hs = list(range(nxt, nxt + arg))
                        txn.append("utxo_blocks", "bitcoin", _blocks(hs))
                        trial += hs
                    elif op == "merge":
                        txn.merge_tail("utxo_blocks", "bitcoin", fanout=arg)
                    elif op == "truncate":
                        txn.truncate_above("utxo_blocks", "bitcoin", arg)
                        trial = [h for h in trial if h <= arg]
                    else:
                        hs = list(range(nxt, nxt + arg))
                        txn.replace("utxo_blocks", "bitcoin", _blocks(hs) if hs else None)
                        trial = hs
                    if abort:
                        raise RuntimeError("abort")
            except RuntimeError:
                continue
            model = trial
            nxt = max([nxt, *model]) + 1
        fresh = Workspace(home)
        assert _heights(fresh) == model
        listed = {p.file for p in fresh.parts("utxo_blocks", "bitcoin")}
        on_disk = {str(p.relative_to(home)) for p in (home / "tables").rglob("*.parquet")}
        assert on_disk == listed  # nothing lost, nothing left behind
        mp = home / "manifest.json"
        m = json.loads(mp.read_text()) if mp.exists() else {"tables": {}}
        segs = {n for n in m.get("sealed", {}).get("utxo_blocks", {}).get("bitcoin", [])}
        assert {f"{W.SEGMENTS}/{p.name}" for p in (home / W.SEGMENTS).glob("*")} == segs \
            if (home / W.SEGMENTS).exists() else not segs
        assert len(m["tables"].get("utxo_blocks", {}).get("bitcoin", [])) < W.SEAL
    finally:
        W.SEAL = old


def test_merge_tail_keeps_rows_in_order_with_few_parts_per_level(home):
    ws = Workspace(home)
    for h in range(40):  # one part per commit, merged as it goes, as an ingester does
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks([2 * h, 2 * h + 1]))
            txn.merge_tail("utxo_blocks", "bitcoin", fanout=3)
    parts = Workspace(home).parts("utxo_blocks", "bitcoin")
    # 40 in base 3 is 1111: one part of each level 3, 2, 1, 0
    assert [p.level for p in parts] == [3, 2, 1, 0]
    assert [p.rows for p in parts] == [54, 18, 6, 2]
    assert [(p.lo, p.hi) for p in parts] == [(0, 53), (54, 71), (72, 77), (78, 79)]
    assert _heights(Workspace(home)) == list(range(80))
    on_disk = {str(p.relative_to(home)) for p in (home / "tables").rglob("*.parquet")}
    assert on_disk == {p.file for p in parts}


def test_merge_tail_leaves_parts_of_other_levels_and_large_parts(home):
    ws = Workspace(home)
    with ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks(list(range(100))))
        for h in range(100, 103):
            txn.append("utxo_blocks", "bitcoin", _blocks([h]))
        sizes = [(home / p.file).stat().st_size for p in txn.parts("utxo_blocks", "bitcoin")]
        assert txn.merge_tail("utxo_blocks", "bitcoin", fanout=4, max_bytes=sum(sizes) - 1) == 0  # too big
        assert txn.merge_tail("utxo_blocks", "bitcoin", fanout=3, max_bytes=sum(sizes[1:])) == 3
        assert txn.merge_tail("utxo_blocks", "bitcoin", fanout=2) == 0  # levels 0 and 1: not merged
    assert [p.level for p in ws.parts("utxo_blocks", "bitcoin")] == [0, 1]
    assert _heights(ws) == list(range(103))


def test_compact_merges_consecutive_parts_up_to_a_target_size(home):
    ws = Workspace(home)
    for h in range(10):
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks(list(range(10 * h, 10 * h + 10))))
    sizes = [(home / p.file).stat().st_size for p in ws.parts("utxo_blocks", "bitcoin")]
    target = int(4.5 * max(sizes))
    assert 4 * max(sizes) <= target < 5 * min(sizes)  # so the groups are 4, 4 and 2 parts
    with ws.transaction() as txn:
        assert txn.compact("utxo_blocks", "bitcoin", target_bytes=target) == 7
    parts = Workspace(home).parts("utxo_blocks", "bitcoin")
    assert [(p.rows, p.lo, p.hi, p.level) for p in parts] == [(40, 0, 39, 1), (40, 40, 79, 1), (20, 80, 99, 1)]
    assert _heights(Workspace(home)) == list(range(100))
    assert len(list((home / "tables").rglob("*.parquet"))) == 3
    with ws.transaction() as txn:
        assert txn.compact("utxo_blocks", "bitcoin", target_bytes=1) == 0  # every part is already that large


def test_a_merge_in_an_aborted_transaction_changes_nothing(home):
    ws = Workspace(home)
    for h in range(3):
        with ws.transaction() as txn:
            txn.append("utxo_blocks", "bitcoin", _blocks([h]))
    files = sorted(p.name for p in (home / "tables").rglob("*.parquet"))
    with pytest.raises(RuntimeError), ws.transaction() as txn:
        assert txn.merge_tail("utxo_blocks", "bitcoin", fanout=3) == 3
        raise RuntimeError("abort")
    assert sorted(p.name for p in (home / "tables").rglob("*.parquet")) == files
    assert [p.level for p in Workspace(home).parts("utxo_blocks", "bitcoin")] == [0, 0, 0]
