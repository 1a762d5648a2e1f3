"""The batch hashing kernels (OpenSSL-backed and the pure-numba fallback) and the address-key table agree
with hashlib."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.ingest.bitcoin import hashing as H
from fundtrail.ingest.bitcoin.parse import merkle_root, parse_blocks
from tests.conftest import shared_path

OPENSSL = [True, False] if H._SSL is not None else [False]


def _d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


@pytest.mark.parametrize("ssl", OPENSSL)
def test_sha256d_spans_every_length_around_the_block_boundaries(ssl):
    rng = np.random.default_rng(3)
    buf = rng.integers(0, 256, 4096).astype(np.uint8)
    for size in [0, 1, 21, 32, 55, 56, 63, 64, 65, 80, 119, 120, 127, 128, 129, 200, 1000]:
        starts = np.array([0, 7, 1000, 4096 - size], np.int64)
        got = H.sha256d_spans(buf, starts, size, use_openssl=ssl)
        for k, s in enumerate(starts.tolist()):
            assert got[k].tobytes() == _d(buf[s:s + size].tobytes()), (size, s)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40))
def test_merkle_roots_match_the_reference(leaves):
    tx = np.frombuffer(b"".join(leaves), np.uint8).reshape(-1, 32)
    # two "blocks": all leaves, and all but the first
    first = np.array([0, 1 if len(leaves) > 1 else 0], np.int64)
    count = np.array([len(leaves), len(leaves) - 1 if len(leaves) > 1 else 1], np.int64)
    for ssl in OPENSSL:
        got = H.merkle_roots(tx, first, count, use_openssl=ssl)
        for b in range(2):
            assert got[b].tobytes() == merkle_root(tx[first[b]:first[b] + count[b]])


@pytest.mark.parametrize("ssl", OPENSSL)
def test_txids_of_a_real_segwit_block(ssl):
    raw_dir = shared_path("bitcoin", "rust-bitcoin")
    raw = next(raw_dir.glob("*.raw")).read_bytes()
    buf = np.frombuffer(raw, np.uint8)
    b = parse_blocks(buf, np.array([0]), np.array([len(raw)]))
    got = H.txids(b.buf, b.tx_start, b.tx_end, b.tx_body, b.tx_wit, b.tx_seg, use_openssl=ssl)
    assert b.tx_seg.any() and not b.tx_seg.all()
    for t in range(len(b.tx_start)):
        s, e = int(b.tx_start[t]), int(b.tx_end[t])
        if b.tx_seg[t]:
            stripped = raw[s:s + 4] + raw[int(b.tx_body[t]):int(b.tx_wit[t])] + raw[e - 4:e]
        else:
            stripped = raw[s:e]
        assert got[t].tobytes() == _d(stripped)
    assert H.merkle_roots(got, np.array([0]), np.array([len(got)]), use_openssl=ssl)[0].tobytes() == raw[36:68]
