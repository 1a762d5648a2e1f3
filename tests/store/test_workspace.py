from __future__ import annotations

import pyarrow as pa
import pytest

from fundtrail.errors import LockedError
from fundtrail.store import Workspace
from fundtrail.store.addresses import AddressBook


def _blocks(heights: list[int]) -> pa.Table:
    return pa.table({"chain": ["bitcoin"] * len(heights), "height": heights,
                     "hash": [f"{h:064x}" for h in heights], "tx_count": [1] * len(heights)})


def test_commit_is_atomic_and_aborted_parts_vanish(home):
    ws = Workspace(home)
    with ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks([0, 1, 2]))
        txn.set_chain("bitcoin", kind="utxo", tip_height=2)
    with pytest.raises(RuntimeError), ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks([3]))
        raise RuntimeError("crash before commit")
    ws2 = Workspace(home)
    assert ws2.read("utxo_blocks", "bitcoin")["height"].to_pylist() == [0, 1, 2]
    assert ws2.chain("bitcoin")["tip_height"] == 2
    assert len(list((home / "tables").rglob("*.parquet"))) == 1
    assert ws2.query("select count(*) as n from blocks")["n"].to_pylist() == [3]


def test_orphan_parts_from_a_killed_writer_are_collected(home):
    ws = Workspace(home)
    with ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks([0]))
    orphan = home / "tables" / "utxo_blocks" / "bitcoin" / "deadbeef.parquet"
    orphan.write_bytes(b"half-written")
    assert ws.query("select count(*) as n from blocks")["n"].to_pylist() == [1]
    with Workspace(home).transaction():  # the next writer (a new process after the crash)
        pass
    assert not orphan.exists()


def test_truncate_above_rewrites_straddling_parts(home):
    ws = Workspace(home)
    with ws.transaction() as txn:
        txn.append("utxo_blocks", "bitcoin", _blocks([0, 1, 2]))
        txn.append("utxo_blocks", "bitcoin", _blocks([3, 4]))
    with ws.transaction() as txn:
        assert txn.truncate_above("utxo_blocks", "bitcoin", 1) == 3
    assert sorted(ws.read("utxo_blocks", "bitcoin")["height"].to_pylist()) == [0, 1]


def test_one_writer_at_a_time(home):
    ws = Workspace(home)
    with ws.transaction(), pytest.raises(LockedError), Workspace(home).transaction():
        pass


def test_address_book_assigns_dense_ids_committed_with_the_batch(home):
    ws = Workspace(home)
    book = AddressBook(ws, "bitcoin")
    ids = book.ids(["a", "b", None, "a", "c"])
    assert ids.tolist() == [0, 1, -1, 0, 2]
    with ws.transaction() as txn:
        book.flush_into(txn)
    again = AddressBook(Workspace(home), "bitcoin")
    assert again.ids(["c", "d"]).tolist() == [2, 3]
    assert again.address(1) == "b"


def test_address_book_all_null(home):
    assert AddressBook(Workspace(home), "bitcoin").ids([None, None]).tolist() == [-1, -1]
