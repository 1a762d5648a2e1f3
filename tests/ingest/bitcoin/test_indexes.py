"""The on-disk indexes of the Bitcoin ingester (sorted runs): the address dictionary and the unspent
outputs agree with a Python dict through commits, failed batches, merges and reloads, with a RAM budget
small enough that most runs are read from disk."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.ingest.bitcoin import runs as R
from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin.addresses import AddressIndex
from fundtrail.ingest.bitcoin.utxo import UtxoIndex
from fundtrail.model.chain import MAINNET
from fundtrail.store.workspace import Workspace


def _random_keys(rng, n):
    keys = np.zeros((n, S.KEYW), np.uint8)
    kinds = rng.integers(0, 4, n)
    for i in range(n):
        k = int(kinds[i])
        keys[i, 0] = k
        if k == 0:
            continue
        ln = 20 if k != S.KIND_WIT else int(rng.choice([2, 20, 32, 40]))
        keys[i, 1] = 0 if k != S.KIND_WIT else int(rng.integers(0, 17))
        keys[i, 2] = ln
        keys[i, 3:3 + ln] = rng.integers(0, 4, ln)  # few distinct byte values: many near-equal keys
        if i % 5 == 0:
            keys[i, 3 + ln - 1] = 0  # trailing zero payload bytes
    return keys


def test_address_index_matches_a_dict_through_commits_failures_and_reopening(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "READ_CHUNK", 4096)  # many small disk reads
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(11)
    index = AddressIndex(ws, "bitcoin", MAINNET, memory=20_000)  # a few runs in RAM, the rest on disk
    ref: dict[bytes, int] = {}
    nxt = 0
    for step in range(14):
        keys = _random_keys(rng, 2500)
        keys = np.concatenate([keys, keys[::7]])  # duplicates inside the batch
        got = index.ids(keys)
        want = []
        added: dict[bytes, int] = {}
        for row in keys:
            if row[0] == 0:
                want.append(-1)
                continue
            kb = row[:3 + row[2]].tobytes()
            if kb not in ref and kb not in added:
                added[kb] = nxt  # new ids in order of first appearance
                nxt += 1
            want.append(ref.get(kb, added.get(kb)))
        assert got.tolist() == want
        if step % 4 == 3:  # the batch did not commit: forget it
            index.discard_pending()
            nxt -= len(added)
            continue
        with ws.transaction() as txn:
            assert index.flush_into(txn) == len(added)
        ref.update(added)
        if step % 5 == 4:
            index = AddressIndex(ws, "bitcoin", MAINNET, memory=20_000)  # reopen from the committed state
    assert len(index) == len(ref)
    assert len(index.index.runs) <= 6  # merged as they grew
    assert any(r.recs is None for r in index.index.runs)  # some are read from disk
    assert ws.row_count("addresses", "bitcoin") == len(ref)
    # every committed key keeps its id after reopening
    again = AddressIndex(ws, "bitcoin", MAINNET, memory=0)
    items = list(ref.items())
    keys = np.zeros((len(items), S.KEYW), np.uint8)
    for i, (kb, _) in enumerate(items):
        keys[i, :len(kb)] = np.frombuffer(kb, np.uint8)
    assert again.ids(keys).tolist() == [v for _, v in items]


def test_address_index_adopts_addresses_other_writers_added(tmp_path):
    ws = Workspace(tmp_path / "ws")
    index = AddressIndex(ws, "bitcoin", MAINNET)
    key = np.zeros((1, S.KEYW), np.uint8)
    key[0, 0], key[0, 2] = S.KIND_PKH, 20
    key[0, 3:23] = 7
    with ws.transaction() as txn:
        index.ids(key)
        index.flush_into(txn)
    addr = S.encode_keys(key, MAINNET)[0].as_py()
    other = S.key_of_address("1BoatSLRHtKNngkdXEeobR76b53LETtpyT", MAINNET)
    import pyarrow as pa
    with ws.transaction() as txn:  # e.g. a tag import giving an id to an address not seen on chain yet
        txn.append("addresses", "bitcoin", pa.table({"chain": ["bitcoin"], "address_id": [1],
                                                     "address": ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"],
                                                     "script_type": [None]}))
    index = AddressIndex(ws, "bitcoin", MAINNET)
    k2 = np.zeros((2, S.KEYW), np.uint8)
    k2[0] = key[0]
    k2[1, :len(other)] = np.frombuffer(other, np.uint8)
    assert index.ids(k2).tolist() == [0, 1]
    assert addr.startswith("1")
    k3 = _random_keys(np.random.default_rng(1), 5)
    k3[:, 0] = S.KIND_SH
    k3[:, 2] = 20
    assert index.ids(k3).min() >= 2  # new ids come after every id in the table


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.booleans()), min_size=1, max_size=12),
       st.integers(0, 2**32))
def test_utxo_index_matches_a_dict(batches, seed):
    """Random batches of outputs and spends (some of outputs of the same batch, some of unknown ones, some
    batches failing): every spend resolves exactly as a dict of unspent outputs says, with a RAM budget
    that leaves most runs on disk, and reopening gives the same state."""
    import tempfile

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(d)
        idx = UtxoIndex(ws, "bitcoin", memory=600)
        utxo: dict[tuple[int, int], tuple[int, int, int]] = {}
        serial = 0
        for n_out, n_in, fails in batches:
            k1 = rng.integers(0, 2**63, n_out, dtype=np.uint64)
            k1[: n_out // 3] = 5  # many outputs share k1 (same txid prefix), different k2
            k2 = np.arange(serial, serial + n_out, dtype=np.uint64)
            serial += n_out
            val = rng.integers(0, 10**8, n_out)
            aid = rng.integers(-1, 1000, n_out)
            typ = rng.integers(0, 10, n_out).astype(np.int8)
            pool = list(utxo) + list(zip(k1.tolist(), k2.tolist(), strict=True))
            spends = [pool[int(i)] for i in rng.integers(0, len(pool), n_in)] if pool else []
            spends += [(1, 2**60 + int(i)) for i in range(n_in % 3)]  # unknown outpoints
            i1 = np.array([s[0] for s in spends], np.uint64)
            i2 = np.array([s[1] for s in spends], np.uint64)
            found, v, a, t = idx.apply(k1, k2, val, aid, typ, i1, i2)
            model = dict(utxo)
            for j in range(n_out):
                model[(int(k1[j]), int(k2[j]))] = (int(val[j]), int(aid[j]), int(typ[j]))
            for j, key in enumerate(spends):
                got = model.pop(key, None)
                assert bool(found[j]) == (got is not None)
                if got is not None:
                    assert (int(v[j]), int(a[j]), int(t[j])) == got
            if fails:
                idx.reload()
                continue
            with ws.transaction() as txn:
                idx.flush_into(txn)
            utxo = model
            assert len(idx) == len(utxo)
        again = UtxoIndex(ws, "bitcoin", memory=0)
        assert len(again) == len(utxo)
        keys = list(utxo)
        if keys:
            found, v, a, t = again.apply(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64),
                                         np.zeros(0, np.int64), np.zeros(0, np.int8),
                                         np.array([k[0] for k in keys], np.uint64),
                                         np.array([k[1] for k in keys], np.uint64))
            assert found.all()
            assert [(int(x), int(y), int(z)) for x, y, z in zip(v, a, t, strict=True)] == [utxo[k] for k in keys]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=300))
def test_sort_order_is_the_stable_lexicographic_order(pairs):
    """Quicksort on k1 plus the numba tie fix equals a stable (k1, k2) lexsort, groups small and large."""
    pairs = pairs + [(7, 3 - i % 4) for i in range(40)]  # one group longer than the insertion-sort cut
    k1 = np.array([p[0] for p in pairs], np.uint64)
    k2 = np.array([p[1] for p in pairs], np.uint64)
    assert R.sort_order(k1, k2).tolist() == np.lexsort((k2, k1)).tolist()


def test_a_duplicate_coinbase_outpoint_replaces_the_unspent_one(tmp_path):
    """BIP-30: mainnet's coinbases at 91842 and 91880 repeat earlier coinbase txids; Bitcoin Core keeps
    only the newer output, so one spend finds the newer value and nothing is left after it."""
    ws = Workspace(tmp_path / "ws")
    idx = UtxoIndex(ws, "bitcoin", memory=0)
    none64, noneu = np.zeros(0, np.int64), np.zeros(0, np.uint64)
    key1, key2 = np.array([9], np.uint64), np.array([0], np.uint64)
    for value in (50, 51):
        idx.apply(key1, key2, np.array([value]), np.array([3]), np.array([2], np.int8), noneu, noneu,
                  replaces=np.array([True]))
        with ws.transaction() as txn:
            idx.flush_into(txn)
    assert len(idx) == 1
    found, v, _, _ = idx.apply(noneu, noneu, none64, none64, np.zeros(0, np.int8),
                               np.array([9, 9], np.uint64), np.array([0, 0], np.uint64))
    assert found.tolist() == [True, False] and int(v[0]) == 51
