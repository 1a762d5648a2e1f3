"""Raw Bitcoin transactions: the splitter and txid of evidence/rawtx.py against the project's serialiser
(property test), and a truncated or padded transaction is refused with its offset."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.errors import DecodeError
from fundtrail.evidence.rawtx import parse_hex, split_block
from fundtrail.ingest.bitcoin.serialize import Block, Tx, TxIn, TxOut

_in = st.builds(TxIn, prev_txid=st.binary(min_size=32, max_size=32), prev_n=st.integers(0, 2**32 - 1),
                script_sig=st.binary(max_size=300), sequence=st.integers(0, 2**32 - 1),
                witness=st.lists(st.binary(max_size=80), max_size=3).map(tuple))
_out = st.builds(TxOut, value=st.integers(0, 21 * 10**14), script=st.binary(max_size=300))
_tx = st.builds(Tx, inputs=st.lists(_in, min_size=1, max_size=4).map(tuple),
                outputs=st.lists(_out, min_size=1, max_size=4).map(tuple),
                version=st.integers(1, 3), locktime=st.integers(0, 2**32 - 1))


@settings(max_examples=150, deadline=None)
@given(_tx)
def test_txid_and_values_of_any_transaction(tx):
    got = parse_hex(tx.serialize().hex())
    assert got.txid == tx.txid()[::-1].hex()
    assert got.values == tuple(o.value for o in tx.outputs) and got.inputs == len(tx.inputs)


@settings(max_examples=40, deadline=None)
@given(st.lists(_tx, min_size=1, max_size=5))
def test_a_block_splits_into_its_transactions(txs):
    raw = Block(prev_hash=b"\0" * 32, txs=tuple(txs)).serialize()
    assert [(t, b) for t, b in split_block(raw)] == [(x.txid()[::-1].hex(), x.serialize()) for x in txs]


def test_truncated_and_padded_transactions_are_refused():
    tx = Tx((TxIn(b"\1" * 32, 0, b"\x51"),), (TxOut(5000, b"\x51"),))
    raw = tx.serialize().hex()
    with pytest.raises(DecodeError, match="byte offset"):
        parse_hex(raw[:-4])
    with pytest.raises(DecodeError, match="after the transaction"):
        parse_hex(raw + "00")
    with pytest.raises(DecodeError):
        parse_hex("zz")
