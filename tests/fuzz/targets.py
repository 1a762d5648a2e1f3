"""Fuzz targets: each takes bytes and must either succeed or raise an error of fundtrail's error tree
(:class:`fundtrail.errors.FundtrailError`). Anything else (an uncaught KeyError, a RecursionError, a
crash of the process, a hang) is a bug.

Seeds come from the real public data in ../shared/data (read at run time, never copied into the
repository) plus a few built here; inputs the fuzzer found are kept under tests/fuzz/corpus/TARGET/.
"""

from __future__ import annotations

import bz2
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fundtrail.errors import DecodeError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CORPUS = Path(__file__).resolve().parent / "corpus"
_TMP = Path(tempfile.mkdtemp(prefix="fundtrail-fuzz-"))

MAX_LEN = {"block": 1 << 16, "blockfile": 1 << 16, "script": 512, "address": 128, "tagpack": 1 << 13,
           "actorpack": 1 << 13, "ofac_csv": 1 << 11, "ofac_xml": 1 << 13, "ofac_json": 1 << 13,
           "csv_tags": 1 << 13, "evm_block": 1 << 15, "evm_traces": 1 << 14}


# --- Bitcoin -------------------------------------------------------------------------------------------

def block(data: bytes) -> None:
    """The numba block/transaction parser, then merkle roots and script classification, as the ingester
    runs them (a ParseFailure is translated to DecodeError there, as here)."""
    from fundtrail.ingest.bitcoin import parse as P
    from fundtrail.ingest.bitcoin.parse import ParseFailure, decode_error, merkle_roots, parse_blocks
    from fundtrail.ingest.bitcoin.rows import classify_outputs

    buf = np.frombuffer(data, np.uint8)
    nojit = os.environ.get("NUMBA_DISABLE_JIT") == "1"
    if nojit:  # the OpenSSL hashing kernels call C through numba: hash with hashlib instead
        P.txids = _txids_hashlib
    try:
        b = parse_blocks(buf, np.array([0], np.int64), np.array([len(data)], np.int64))
    except ParseFailure as f:
        raise decode_error(f) from None
    if not nojit:
        merkle_roots(b)
    classify_outputs(b)


def _txids_hashlib(b) -> np.ndarray:
    """txids as parse.txids computes them (witness left out), in plain Python."""
    import hashlib

    out = np.empty((len(b.tx_start), 32), np.uint8)
    raw = b.buf.tobytes()
    for t in range(len(b.tx_start)):
        s, e = int(b.tx_start[t]), int(b.tx_end[t])
        if b.tx_seg[t]:  # version, then the body without marker/flag, up to the witness, then locktime
            data = raw[s:s + 4] + raw[int(b.tx_body[t]):int(b.tx_wit[t])] + raw[e - 4:e]
        else:
            data = raw[s:e]
        out[t] = np.frombuffer(hashlib.sha256(hashlib.sha256(data).digest()).digest(), np.uint8)
    return out


def blockfile(data: bytes) -> None:
    """blk-file framing (magic, size, XOR key) and the block index, as `ingest bitcoin --blocks-dir`."""
    from fundtrail.ingest.bitcoin import blockfiles as BF
    from fundtrail.model.chain import bitcoin_network

    d = _TMP / "blk"
    d.mkdir(exist_ok=True)
    (d / "blk00000.dat").write_bytes(data)
    files = BF.list_block_files(d)
    src = BF.BlockSource(files, None, tmp_dir=_TMP / "bz")
    try:
        index = BF.build_index(src, bitcoin_network("mainnet"))
        if index.error is not None:
            raise index.error
    finally:
        src.close()


def script(data: bytes) -> None:
    """Output-script classification and the address of its key (mainnet and testnet)."""
    from fundtrail.ingest.bitcoin.script import encode_key_py, op_return_data, script_key
    from fundtrail.model.chain import bitcoin_network

    _, key = script_key(data)
    for net in ("mainnet", "testnet"):
        encode_key_py(key, bitcoin_network(net))
    op_return_data(data)


def address(data: bytes) -> None:
    """Address parsing and normalisation (base58check, bech32/bech32m, EIP-55) for every chain kind."""
    from fundtrail.ingest.bitcoin.script import key_of_address
    from fundtrail.model.address import normalize
    from fundtrail.model.chain import bitcoin_network

    text = data.decode("utf-8", "replace")
    key_of_address(text, bitcoin_network("mainnet"))
    for chain in ("bitcoin", "ethereum"):
        normalize(chain, text)


# --- tag files -----------------------------------------------------------------------------------------

def _file(name: str, data: bytes) -> Path:
    p = _TMP / name
    p.write_bytes(data)
    return p


def _reader(fmt: str) -> Callable[..., object]:
    """The reader `tags import` uses for a format (service.READERS: malformed files become TagFileError)."""
    from fundtrail.attribution.service import READERS
    return READERS[fmt]


def tagpack(data: bytes) -> None:
    _reader("graphsense-tagpack")(_file("pack.yaml", data))


def actorpack(data: bytes) -> None:
    _reader("graphsense-actorpack")(_file("actors.actorpack.yaml", data))


def ofac_csv(data: bytes) -> None:
    _reader("ofac-sdn-csv")(_file("sdn.csv", data))


def ofac_xml(data: bytes) -> None:
    _reader("ofac-sdn-xml")(_file("SDN.XML", data))


def ofac_json(data: bytes) -> None:
    _reader("ofac-address-json")(_file("sanctioned_addresses.json", data))


def csv_tags(data: bytes) -> None:
    _reader("csv")(_file("tags.csv", data))


# --- EVM JSON-RPC answers ------------------------------------------------------------------------------

def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise DecodeError("not JSON (the client refuses it before any mapper sees it)") from None


def evm_block(data: bytes) -> None:
    """A JSON-RPC block (with its transactions, and receipts under "receipts") through the row mappers."""
    from fundtrail.ingest.evm import mappers as M

    obj = _json(data)
    receipts = obj.pop("receipts", {}) if isinstance(obj, dict) else {}
    rows = M.Rows()
    M.add_block(rows, obj, receipts if isinstance(receipts, dict) else {}, None, [], "ETH")
    M.to_tables(rows, "ethereum", _Ids())


def evm_traces(data: bytes) -> None:
    """trace_block / callTracer answers and logs through the trace and token-transfer mappers."""
    from fundtrail.ingest.evm import mappers as M

    obj = _json(data)
    if isinstance(obj, list):
        M.moves_from_parity(obj)
        for log in obj:
            M.token_transfer(log)
    else:
        M.moves_from_calltracer(obj)
        M.token_transfer(obj)


class _Ids:
    """Address ids for ``to_tables`` without a workspace: a dense id per new address."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, addresses):  # the AddressBook.ids protocol (an Arrow string array in)
        return np.array([self.ids.setdefault(a, len(self.ids)) if a is not None else -1
                         for a in addresses.to_pylist()], np.int64)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "block": block, "blockfile": blockfile, "script": script, "address": address, "tagpack": tagpack,
    "actorpack": actorpack, "ofac_csv": ofac_csv, "ofac_xml": ofac_xml, "ofac_json": ofac_json,
    "csv_tags": csv_tags, "evm_block": evm_block, "evm_traces": evm_traces,
}


# --- seeds ---------------------------------------------------------------------------------------------

def _shared(*parts: str) -> Path | None:
    p = SHARED.joinpath(*parts)
    return p if p.exists() else None


def _blocks() -> list[bytes]:
    p = _shared("bitcoin", "btcd", "blocks1-256.bz2")
    if p is None:
        return []
    data, out, pos = bz2.decompress(p.read_bytes()), [], 0
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos + 4:pos + 8], "little")
        out.append(data[pos + 8:pos + 8 + n])
        pos += 8 + n
    return out


def seeds(name: str) -> Iterator[bytes]:
    """Seed inputs for ``name`` (small real data where ../shared/data has it)."""
    from fundtrail.ingest.bitcoin import serialize as Z

    lim = MAX_LEN[name]
    if name in ("block", "script"):
        blocks = _blocks()
        for b in blocks[::16] + [blocks[169]] if len(blocks) > 169 else blocks:
            if name == "block":
                yield b
            else:
                yield b[-67:-1]  # a P2PK output script (65-byte key + OP_CHECKSIG) of an early block
        yield Z.p2pkh(b"\x11" * 20)
        yield Z.p2wsh(b"\x22" * 32)
        yield Z.p2tr(b"\x33" * 32)
        yield Z.multisig(1, [b"\x02" + b"\x44" * 32, b"\x03" + b"\x55" * 32])
        yield Z.op_return(b"hello")
    elif name == "blockfile":
        blocks = _blocks()[:6]
        yield b"".join(b"\xf9\xbe\xb4\xd9" + len(b).to_bytes(4, "little") + b for b in blocks)
    elif name == "address":
        yield from (s.encode() for s in (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "0x52908400098527886E0F7030069857D2E4169EE7",
            "0xde709f2102306220921060314715629080e2fb77", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"))
    else:
        globs = {
            "tagpack": [("tags", "graphsense-tagpacks"), "*.yaml"],
            "actorpack": [("tags", "graphsense-tagpacks"), "*actor*.yaml"],
            "ofac_csv": [("ofac",), "*sdn*.csv"],
            "ofac_xml": [("ofac",), "*.xml"],
            "ofac_json": [("ofac",), "*.json"],
            "csv_tags": [("tags",), "*.csv"],
            "evm_block": [("ethereum",), "*eth_getBlockByNumber*_true.json"],
            "evm_traces": [("ethereum",), "*.json"],
        }[name]
        root = _shared(*globs[0])
        files = sorted(root.rglob(globs[1]))[:24] if root is not None else []
        for f in files:
            raw = f.read_bytes()
            if name.startswith("evm"):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                obj = obj.get("result", obj) if isinstance(obj, dict) else obj
                raw = json.dumps(obj).encode()
            yield raw[:lim]
        if name == "ofac_xml":
            yield (b'<?xml version="1.0"?><sdnList><publshInformation><Publish_Date>05/03/2024</Publish_Date>'
                   b'</publshInformation><sdnEntry><uid>1</uid><lastName>X</lastName><idList><id><idType>'
                   b'Digital Currency Address - XBT</idType><idNumber>1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa'
                   b'</idNumber></id></idList></sdnEntry></sdnList>')
        if name == "csv_tags":
            yield (b"address,chain,label,category,entity,country,source,confidence\n"
                   b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa,bitcoin,genesis,miner,Satoshi,,test,0.9\n")
        if name == "evm_traces":
            yield json.dumps([{"action": {"callType": "call", "from": "0x" + "1" * 40, "to": "0x" + "2" * 40,
                                          "value": "0x10"}, "transactionHash": "0x" + "3" * 64,
                               "type": "call", "traceAddress": []}]).encode()
    d = CORPUS / name
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.is_file():
                yield f.read_bytes()


def write_seeds(name: str, into: Path) -> int:
    into.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, s in enumerate(seeds(name)):
        (into / f"seed{i:04d}").write_bytes(s)
        n += 1
    return n


def clean() -> None:
    import shutil
    shutil.rmtree(_TMP, ignore_errors=True)

