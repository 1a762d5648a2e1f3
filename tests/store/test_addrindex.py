"""The address dictionary's index: string <-> id without a scan, rebuilt when a commit adds address parts."""

from __future__ import annotations

import os
import stat

import numpy as np
import pyarrow as pa

from fundtrail.store import Workspace, derived
from fundtrail.store import addrindex as AI
from fundtrail.store.addresses import AddressBook


def _add(ws: Workspace, chain: str, addresses: list[str]) -> None:
    with ws.transaction() as txn:
        book = AddressBook(ws, chain)
        book.ids(addresses)
        book.flush_into(txn)


def test_hash_of_an_array_equals_the_hash_of_each_string() -> None:
    values = ["bcrt1qexample", "", None, "0xAbC", "ünïcødé€" * 9, "1" * 300]
    arr = pa.array(values, pa.string()).slice(1)
    got = AI.hash_array(arr).tolist()
    assert got == [AI.hash_one(v or "") for v in values[1:]]
    assert AI.hash_array(pa.array(values, pa.large_string())).tolist()[0] == AI.hash_one(values[0])


def test_lookups_both_ways_and_rebuild_after_a_commit(tmp_path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = [f"bcrt1q{i:040d}" for i in range(3000)]
    _add(ws, "regtest", first)
    _add(ws, "simeth", ["0x" + "ab" * 20])
    AI.clear_cache()
    assert AI.index(ws, "regtest", build_missing=False) is None  # lookups alone never build it
    idx = AI.index(ws, "regtest")
    assert idx is not None and idx.rows == 3000
    assert idx.ids_of([first[0], first[2999], "bcrt1qnot-there", first[1234]]) == {
        first[0]: 0, first[2999]: 2999, first[1234]: 1234}
    assert idx.strings_of(np.array([5, 2999, 3000, -1, 5])) == {5: first[5], 2999: first[2999]}
    files = list((ws.home / "index" / "addresses").rglob("*"))
    assert any(f.name == "hash.npy" for f in files)
    assert all(stat.S_IMODE(os.stat(f).st_mode) & 0o077 == 0 for f in files if f.is_dir())
    # another chain has its own index
    assert AI.index(ws, "simeth").ids_of(["0x" + "ab" * 20]) == {"0x" + "ab" * 20: 0}
    # a commit without addresses keeps the index; one with new addresses gives a new one
    key = idx.key
    with ws.transaction() as txn:
        txn.set_setting("x", 1)
    ws.refresh()
    assert AI.index(ws, "regtest").key == key
    _add(ws, "regtest", ["bcrt1qlate"])
    ws.refresh()
    assert AI.index(ws, "regtest", build_missing=False) is None
    new = AI.index(ws, "regtest")
    assert new.key != key and new.ids_of(["bcrt1qlate", first[7]]) == {"bcrt1qlate": 3000, first[7]: 7}
    dirs = [d for d in (ws.home / "index" / "addresses").iterdir() for d in d.iterdir()]
    assert [d.name for d in dirs if "regtest" in str(d.parent)] == [new.key]  # the old one is gone
    # a fresh process (no memory cache) loads the files instead of building again
    AI.clear_cache()
    assert AI.index(ws, "regtest", build_missing=False).key == new.key


def test_the_trace_resolves_addresses_through_the_index(tmp_path, monkeypatch) -> None:
    from fundtrail.trace import crossing as X

    ws = Workspace(tmp_path / "ws")
    addrs = [f"addr-{i}" for i in range(500)]
    _add(ws, "regtest", addrs)
    AI.clear_cache()
    AI.ensure(ws)

    def no_scan(*a, **k):
        raise AssertionError("the dictionary was scanned")

    monkeypatch.setattr(X, "_scan", no_scan)
    assert X.address_ids(ws, "regtest", ["addr-42", "nope"]) == {"addr-42": 42}
    assert X.address_strings(ws, "regtest", [3, 499, 10_000]) == {3: "addr-3", 499: "addr-499"}


def test_a_read_only_workspace_gets_its_index_elsewhere(tmp_path, monkeypatch) -> None:
    ws = Workspace(tmp_path / "ws")
    _add(ws, "regtest", ["a", "b"])
    real = os.access
    monkeypatch.setattr(AI.os, "access", lambda p, mode: False if str(p) == str(ws.home) else real(p, mode))
    monkeypatch.setattr(derived.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    AI.clear_cache()
    assert AI.index(ws, "regtest").ids_of(["b"]) == {"b": 1}
    assert not (ws.home / "index").exists()
    assert list((tmp_path / "tmp").rglob("hash.npy"))
