"""Script types, address encodings per network, and a serialise -> parse round trip of random transactions."""

from __future__ import annotations

import bitcoin.core
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin import serialize as Z
from fundtrail.ingest.bitcoin.parse import parse_blocks
from fundtrail.model.address import bitcoin_address_kind, hash160
from fundtrail.model.chain import BITCOIN_NETWORKS, MAINNET, REGTEST, TESTNET

PUB = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
UNCOMP = bytes.fromhex("0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
                       "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8")
H20 = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
H32 = bytes.fromhex("1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262")
TR = bytes.fromhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")

CASES = [  # script, type, mainnet, testnet, regtest address (BIP-173/350 vectors; P2SH from python-bitcoinlib)
    (Z.p2pk(PUB), "p2pk", "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r", None),
    (Z.p2pk(UNCOMP), "p2pk", "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm", None, None),
    (Z.p2pkh(H20), "p2pkh", "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r", None),
    (Z.p2sh(H20), "p2sh", "3CNHUhP3uyB9EUtRLsmvFUmvGdjGdkTxJw", "2N3vVYSK5XRgVSGWy21PnsRmBUywSQNdCsf", None),
    (Z.p2wpkh(H20), "p2wpkh", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
     "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
    (Z.p2wsh(H32), "p2wsh", "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
     "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", None),
    (Z.p2tr(TR), "p2tr", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", None, None),
    (Z.witness_program(16, bytes.fromhex("751e")), "witness_unknown", "bc1sw50qgdz25j", None, None),
    (Z.multisig(1, [PUB, UNCOMP]), "multisig", None, None, None),
    (Z.op_return(b"BRIDGE:OUT:simeth:7"), "op_return", None, None, None),
    (b"\x51", "nonstandard", None, None, None),
    (b"", "nonstandard", None, None, None),
    (b"\x00\x15" + bytes(21), "nonstandard", None, None, None),  # v0 program of a wrong size
]


@pytest.mark.parametrize("script,kind,main,test,reg", CASES)
def test_script_types_and_addresses(script, kind, main, test, reg):
    t, key = S.script_key(script)
    assert S.SCRIPT_TYPES[t] == kind
    keys = np.frombuffer(key, np.uint8).reshape(1, -1).copy()
    for net, want in ((MAINNET, main), (TESTNET, test), (REGTEST, reg)):
        got = S.encode_keys(keys, net)[0].as_py()
        assert got == S.encode_key_py(key, net)
        if want is not None:
            assert got == want
        if got is not None:  # what we write is valid for the network, and decodes back to the key
            bitcoin_address_kind(got, net)
            assert S.key_of_address(got, net) == key


def test_every_network_encodes_like_the_reference():
    rng = np.random.default_rng(1)
    keys = np.zeros((300, S.KEYW), np.uint8)
    for i in range(300):
        kind = [S.KIND_PKH, S.KIND_SH, S.KIND_WIT][i % 3]
        keys[i, 0] = kind
        ln = 20 if kind != S.KIND_WIT else [20, 32, 32, 2, 40][i % 5]
        keys[i, 1] = 0 if kind != S.KIND_WIT else [0, 0, 1, 3, 16][i % 5]
        keys[i, 2] = ln
        keys[i, 3:3 + ln] = rng.integers(0, 256, ln)
        if i % 7 == 0 and kind != S.KIND_WIT:
            keys[i, 3:6] = 0  # leading zero bytes -> leading '1's
    for net in BITCOIN_NETWORKS.values():
        got = S.encode_keys(keys, net).to_pylist()
        assert got == [S.encode_key_py(k.tobytes(), net) for k in keys]


def test_op_return_payload():
    assert S.op_return_data(Z.op_return(b"BRIDGE:IN:simeth:0xabc")) == b"BRIDGE:IN:simeth:0xabc"
    assert S.op_return_data(b"\x6a\x5d" + Z.push(b"ab") + Z.push(b"cd")) == b"abcd"  # runes-style OP_13
    assert S.op_return_data(b"\x6a\xac\x01") == b"\xac\x01"  # not push-only: raw bytes


# --- round trip ----------------------------------------------------------------------------------------------

scripts = st.one_of(
    st.binary(min_size=20, max_size=20).map(Z.p2pkh),
    st.binary(min_size=20, max_size=20).map(Z.p2sh),
    st.binary(min_size=20, max_size=20).map(Z.p2wpkh),
    st.binary(min_size=32, max_size=32).map(Z.p2wsh),
    st.binary(min_size=32, max_size=32).map(Z.p2tr),
    st.binary(min_size=32, max_size=32).map(lambda x: Z.p2pk(b"\x02" + x)),
    st.binary(min_size=64, max_size=64).map(lambda x: Z.p2pk(b"\x04" + x)),
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3).map(
        lambda ks: Z.multisig(1, [b"\x03" + k for k in ks])),
    st.binary(max_size=80).map(Z.op_return),
    st.binary(max_size=300),  # anything, mostly non-standard
)
txins = st.builds(Z.TxIn, st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1),
                  st.binary(max_size=300), st.integers(0, 2**32 - 1),
                  st.lists(st.binary(max_size=100), max_size=4).map(tuple))
txs = st.builds(Z.Tx, st.lists(txins, min_size=1, max_size=5).map(tuple),
                st.lists(st.builds(Z.TxOut, st.integers(0, 21_000_000 * 10**8), scripts), min_size=1,
                         max_size=6).map(tuple),
                st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**32 - 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(txs, min_size=1, max_size=6), st.booleans())
def test_random_transactions_round_trip(tx_list, strip_witness):
    if strip_witness:
        tx_list = [Z.Tx(tuple(Z.TxIn(i.prev_txid, i.prev_n, i.script_sig, i.sequence) for i in t.inputs),
                        t.outputs, t.version, t.locktime) for t in tx_list]
    block = Z.Block(b"\x11" * 32, tuple(tx_list))
    raw = block.serialize()
    b = parse_blocks(np.frombuffer(raw, np.uint8), np.array([0]), np.array([len(raw)]))
    buf = raw
    back = []
    for t in range(len(tx_list)):
        ins = []
        for i in np.flatnonzero(b.in_tx == t).tolist():
            p = int(b.in_prev[i])
            ins.append((buf[p:p + 32], int(b.in_n[i]), int(b.in_seq[i])))
        outs = []
        for o in np.flatnonzero(b.out_tx == t).tolist():
            p, ln = int(b.out_off[o]), int(b.out_len[o])
            outs.append((int(b.out_val[o]), buf[p:p + ln]))
        back.append((ins, outs, int(np.int32(np.uint32(b.tx_ver[t]))), int(b.tx_lock[t]), bool(b.tx_seg[t]),
                     buf[int(b.tx_start[t]):int(b.tx_end[t])]))
    for t, (ins, outs, ver, lock, seg, ser) in zip(tx_list, back, strict=True):
        assert ins == [(i.prev_txid, i.prev_n, i.sequence) for i in t.inputs]
        assert outs == [(o.value, o.script) for o in t.outputs]
        assert (ver, lock, seg) == (t.version, t.locktime, t.has_witness)
        assert ser == t.serialize()
    assert [bytes(x) for x in b.txid] == [t.txid() for t in tx_list]
    # an independent parser agrees on the txids (python-bitcoinlib)
    ref = bitcoin.core.CBlock.deserialize(raw)
    assert [t.GetTxid() for t in ref.vtx] == [bytes(x) for x in b.txid]
    # and the classifier agrees with the single-script path
    types = np.zeros(len(b.out_val), np.int8)
    keys = np.zeros((len(types), S.KEYW), np.uint8)
    S.classify(b.buf, b.out_off, b.out_len, types, keys)
    S.fill_p2pk_keys(b.buf, b.out_off, b.out_len, types, keys)
    for k, (_, sc) in enumerate(o for t in back for o in t[1]):
        assert (int(types[k]), keys[k].tobytes()) == S.script_key(sc)
    p2pk = [k for k in range(len(types)) if types[k] == S.ST_P2PK]
    for k in p2pk:
        sc = [o for t in back for o in t[1]][k][1]
        assert keys[k, 3:23].tobytes() == hash160(sc[1:-1])
