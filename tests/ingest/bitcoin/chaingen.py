"""Synthetic chains for tests: every script type, spends of earlier outputs, segwit and legacy."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from fundtrail.ingest.bitcoin import serialize as Z
from fundtrail.model.chain import REGTEST, BitcoinNetwork


def _h(seed: bytes, n: int = 20) -> bytes:
    return hashlib.sha256(seed).digest()[:n]


def pubkey(rng: random.Random, compressed: bool = True) -> bytes:
    if compressed:
        return bytes([2 + rng.randrange(2)]) + rng.randbytes(32)
    return b"\x04" + rng.randbytes(64)


def random_script(rng: random.Random) -> bytes:
    k = rng.randrange(10)
    if k == 0:
        return Z.p2pk(pubkey(rng, rng.random() < 0.5))
    if k == 1:
        return Z.p2pkh(rng.randbytes(20))
    if k == 2:
        return Z.p2sh(rng.randbytes(20))
    if k == 3:
        return Z.p2wpkh(rng.randbytes(20))
    if k == 4:
        return Z.p2wsh(rng.randbytes(32))
    if k == 5:
        return Z.p2tr(rng.randbytes(32))
    if k == 6:
        return Z.multisig(1, [pubkey(rng), pubkey(rng)])
    if k == 7:
        return Z.op_return(rng.randbytes(rng.randrange(1, 40)))
    if k == 8:
        return Z.witness_program(2, rng.randbytes(16))
    return rng.randbytes(rng.randrange(0, 12))  # non-standard


def make_chain(n_blocks: int, seed: int = 1, prev: bytes | None = None, start_height: int = 1,
               utxos: list | None = None, time0: int = 1_700_000_000, tag: bytes = b"") -> tuple[list[Z.Block], list]:
    """A chain of n_blocks blocks on top of ``prev`` (default: the regtest genesis).

    Returns (blocks, spendable outputs [(txid, n, value)])."""
    rng = random.Random(seed)
    prev = prev if prev is not None else bytes.fromhex(REGTEST.genesis_hash)[::-1]
    utxos = list(utxos or [])
    blocks = []
    for i in range(n_blocks):
        h = start_height + i
        txs = []
        fees = 0
        new_utxos = []
        for _ in range(rng.randrange(0, 4)):
            if not utxos:
                break
            k = min(len(utxos), rng.randrange(1, 3))
            spent = [utxos.pop(rng.randrange(len(utxos))) for _ in range(k)]
            total = sum(v for _, _, v in spent)
            fee = min(total, rng.randrange(0, 2000))
            nout = rng.randrange(1, 4)
            values = [(total - fee) // nout] * nout
            values[0] += (total - fee) - sum(values)
            seg = rng.random() < 0.5
            ins = tuple(Z.TxIn(t, n, b"" if seg else Z.push(rng.randbytes(71)),
                               witness=(rng.randbytes(71), pubkey(rng)) if seg else ()) for t, n, _ in spent)
            outs = tuple(Z.TxOut(v, random_script(rng)) for v in values)
            tx = Z.Tx(ins, outs, version=rng.choice([1, 2]), locktime=rng.randrange(0, 100))
            txs.append(tx)
            fees += fee
            for j, o in enumerate(outs):
                if o.script[:1] != b"\x6a":
                    new_utxos.append((tx.txid(), j, o.value))
        cb = Z.coinbase(h, 50_0000_0000 + fees, Z.p2wpkh(_h(b"miner%d" % h)), tag=tag)
        cb = Z.Tx(cb.inputs, cb.outputs + (Z.TxOut(0, Z.op_return(b"BRIDGE:OUT:simeth:%d" % h)),))
        blk = Z.Block(prev, (cb, *txs), time=time0 + 600 * i, nonce=rng.randrange(2**32))
        blocks.append(blk)
        prev = blk.hash()
        utxos += [(cb.txid(), 0, 50_0000_0000 + fees)] + new_utxos
    return blocks, utxos


def write_blk(path: Path, blocks: list[Z.Block], network: BitcoinNetwork = REGTEST, xor: bytes | None = None,
              offset: int = 0) -> bytes:
    data = b"".join(Z.frame(b.serialize(), network) for b in blocks)
    if xor is not None:
        data = bytes(c ^ xor[(offset + i) % 8] for i, c in enumerate(data))
    path.write_bytes(data)
    return data
