"""Property: whatever commits happen (appends, merges, compaction, replacement, failed commits), a reader
opened at any moment reads exactly the rows of the generation it opened, until it closes; and once no
reader is open, no replaced file is left on disk."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.store import GLOBAL, Workspace


def _prices(days: list[int]) -> pa.Table:
    return pa.table({"date": pa.array(days, pa.date32()), "asset": ["BTC"] * len(days),
                     "usd": [float(d) for d in days], "source": ["t"] * len(days)})


OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 10_000)),
    st.tuples(st.just("compact"), st.just(0)),
    st.tuples(st.just("merge"), st.integers(2, 4)),
    st.tuples(st.just("replace"), st.integers(0, 10_000)),
    st.tuples(st.just("fail"), st.integers(0, 10_000)),
    st.tuples(st.just("open"), st.just(0)),
    st.tuples(st.just("close"), st.integers(0, 5)),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_readers_see_their_generation_and_nothing_is_left_behind(tmp_path_factory, ops):
    home = tmp_path_factory.mktemp("snap") / "ws"
    w = Workspace(home)
    readers: list[tuple[Workspace, list[float]]] = []
    expected: list[float] = []
    for op, arg in ops:
        if op == "append":
            with w.transaction() as txn:
                txn.append("prices", GLOBAL, _prices([arg]))
            expected = expected + [float(arg)]
        elif op == "compact":
            with w.transaction() as txn:
                txn.compact("prices", GLOBAL)
        elif op == "merge":
            with w.transaction() as txn:
                txn.merge_tail("prices", GLOBAL, fanout=arg)
        elif op == "replace":
            with w.transaction() as txn:
                txn.replace("prices", GLOBAL, _prices([arg]))
            expected = [float(arg)]
        elif op == "fail":
            try:
                with w.transaction() as txn:
                    txn.replace("prices", GLOBAL, _prices([arg]))
                    raise RuntimeError("abandoned")
            except RuntimeError:
                pass
        elif op == "open":
            readers.append((Workspace(home), list(expected)))
        elif op == "close" and readers:
            r, _ = readers.pop(arg % len(readers))
            r.close()
        for r, rows in readers:  # every open reader still reads its own generation, whole
            assert r.read("prices", GLOBAL)["usd"].to_pylist() == rows
    for r, _ in readers:
        r.close()
    with w.transaction():  # a commit with no reader open deletes every replaced file
        pass
    on_disk = {str(p.relative_to(home)) for p in (home / "tables").rglob("*.parquet")}
    assert on_disk == {p.file for p in w.parts("prices")}
    assert w.read("prices", GLOBAL)["usd"].to_pylist() == expected
