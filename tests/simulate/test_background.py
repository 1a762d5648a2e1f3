"""The background economy's compiled kernels: OpenSSL and pure-numba hashing agree, merkle roots match the
reference, and the streamed owners file (truth_owners.parquet) matches a per-address reference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fundtrail.model.address import segwit_encode
from fundtrail.model.chain import REGTEST
from fundtrail.simulate.background import ADDRS, Background, scripts_of
from fundtrail.simulate.btc import merkle_root


def _economy(use_openssl: bool, blocks: int = 25) -> tuple[Background, list[tuple[bytes, bytes, bytes, int]]]:
    bg = Background(3, 3_000, 60, REGTEST, use_openssl=use_openssl)
    users, _scripts = bg.funding_scripts(1_000)
    bg.fund(users, hashlib.sha256(b"funding").digest(), 0, [5_000_000] * len(users))
    bg.funded = np.unique(users)
    out = []
    for h in range(1, blocks + 1):
        blob, txids, wtxids, fees = bg.block(h, 0)
        out.append((blob, txids.tobytes(), wtxids.tobytes(), fees))
    return bg, out


@pytest.fixture(scope="module")
def economy() -> tuple[Background, list[tuple[bytes, bytes, bytes, int]]]:
    return _economy(True)


def test_openssl_and_numba_hashing_agree(economy: tuple[Background, list]) -> None:
    _bg, with_ssl = economy
    _bg2, pure = _economy(False)
    assert with_ssl == pure
    assert sum(len(t[1]) // 32 for t in pure) > 1_000
    scr = scripts_of(3, np.arange(10), np.arange(10) % ADDRS)
    assert (scr == scripts_of(3, np.arange(10), np.arange(10) % ADDRS, use_openssl=False)).all()


def test_txids_are_sha256d_of_the_stripped_serialisation(economy: tuple[Background, list]) -> None:
    from bitcoin.core import CTransaction
    from bitcoin.core.serialize import BytesIO

    _bg, blocks = economy
    blob, txids, wtxids, _fees = blocks[-1]
    f = BytesIO(blob)
    n = len(txids) // 32
    for i in range(n):
        start = f.tell()
        tx = CTransaction.stream_deserialize(f)
        raw = blob[start:f.tell()]
        assert tx.GetTxid() == txids[32 * i:32 * i + 32]
        assert hashlib.sha256(hashlib.sha256(raw).digest()).digest() == wtxids[32 * i:32 * i + 32]
    assert f.tell() == len(blob)


def test_merkle_root_matches_reference(economy: tuple[Background, list]) -> None:
    bg, blocks = economy
    for k in (1, 2, 3, 7, 60):
        hashes = np.frombuffer(blocks[0][1] + blocks[1][1], np.uint8).reshape(-1, 32)[:k]
        assert bg.merkle_root(hashes) == merkle_root([h.tobytes() for h in hashes])


def test_owners_file_is_streamed_and_exact(economy: tuple[Background, list], tmp_path: Path) -> None:
    bg, _blocks = economy
    bg.OWNER_CHUNK_USERS = 700  # several row groups
    bg.write_owners(tmp_path / "owners.parquet")
    pf = pq.ParquetFile(tmp_path / "owners.parquet")
    assert pf.metadata.num_row_groups > 1
    t = pf.read().to_pylist()
    assert len(t) == bg.address_count()
    # reference: every used address, its owner, and its union-find root by a plain walk
    uf = bg.uf
    pairs = [(u, j) for u in range(bg.U) for j in range(min(ADDRS, int(bg.next_addr[u])))]
    scripts = scripts_of(3, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    want = []
    for (u, j), sc in zip(pairs, scripts, strict=True):
        x = u * ADDRS + j
        while uf[x] != x:
            x = int(uf[x])
        want.append({"address": segwit_encode("bcrt", 1 if sc[0] == 0x51 else 0, bytes(sc[2:])),
                     "owner": f"user:b{u}", "cluster": x})
    assert t == want
    assert len({r["cluster"] for r in t}) < len(t), "some co-spend groups"
    owners = bg.owners()
    assert list(owners) == [r["address"] for r in t]
    groups = bg.cluster_groups()
    assert groups and all(len({owners[a] for a in g}) == 1 for g in groups)
