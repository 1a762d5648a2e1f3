"""Bad input keeps what is good: a corrupt real mainnet block in the middle of a file keeps every valid
block before it committed and says how to resume; an empty or wrong blocks directory is an error."""

from __future__ import annotations

import bz2

import pytest

from fundtrail.cli.main import main
from fundtrail.errors import DecodeError, UsageError
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store import Workspace
from tests.conftest import shared_path

BAD = 120  # height of the corrupted block (blocks 1..255 in the file)


def _records(data: bytes) -> list[int]:
    """Byte offsets of the records (magic, size, block) of a blk file."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
    return out


@pytest.fixture(scope="module")
def mainnet() -> bytes:
    return bz2.decompress(shared_path("bitcoin", "btcd", "blocks1-256.bz2").read_bytes())


def _corrupt(data: bytes) -> tuple[bytes, int]:
    recs = _records(data)
    k = BAD - 1  # record k holds block k + 1
    # the last byte of the coinbase's scriptSig: the block still parses, its merkle root no longer matches
    pos = recs[k] + 8 + 80 + 1 + 4 + 1 + 36
    script_len = data[pos]
    bad = bytearray(data)
    bad[pos + script_len] ^= 0x01
    return bytes(bad), recs[k]


def _dump(ws: Workspace) -> list:
    return ws.query("SELECT * FROM transactions ORDER BY height, tx_index").to_pylist()


def test_a_corrupt_block_keeps_the_blocks_before_it_and_says_how_to_resume(tmp_path, mainnet):
    bad, rec = _corrupt(mainnet)
    d = tmp_path / "blocks"
    d.mkdir()
    f = d / "blk00000.dat"
    f.write_bytes(bad)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(DecodeError) as e:
        ingest_block_files(ws, d, "mainnet")  # one batch holds the whole file
    msg = str(e.value)
    assert str(f) in msg and f"byte offset {rec + 8}" in msg and f"block {BAD}" in msg and "merkle" in msg
    assert f"every block up to height {BAD - 1} is committed" in msg and "run the same command again" in msg
    ws.refresh()
    assert ws.chain("bitcoin")["tip_height"] == BAD - 1
    got = ws.query("SELECT count(*) AS n, min(height) AS lo, max(height) AS hi FROM blocks").to_pylist()[0]
    assert got == {"n": BAD - 1, "lo": 1, "hi": BAD - 1}
    # repaired: the same command continues after the kept blocks and ends as a clean run does
    f.write_bytes(mainnet)
    st = ingest_block_files(ws, d, "mainnet")
    assert (st.first_height, st.tip_height) == (BAD, 255)
    clean = Workspace(tmp_path / "clean")
    ingest_block_files(clean, d, "mainnet")
    ws.refresh()
    assert _dump(ws) == _dump(clean)


def test_the_cli_exits_nonzero_and_keeps_the_good_blocks(tmp_path, mainnet, capsys):
    bad, _ = _corrupt(mainnet)
    d = tmp_path / "blocks"
    d.mkdir()
    (d / "blk00000.dat").write_bytes(bad)
    home = tmp_path / "ws"
    assert main(["ingest", "bitcoin", "--blocks-dir", str(d), "--home", str(home)]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert f"block {BAD}" in err and "run the same command again" in err
    assert Workspace(home).chain("bitcoin")["tip_height"] == BAD - 1


def test_a_corrupt_first_block_keeps_nothing_and_says_so(tmp_path, mainnet):
    recs = _records(mainnet)
    bad = bytearray(mainnet)
    bad[recs[0] + 8 + 80 + 1 + 4 + 1 + 36 + 1] ^= 0x01
    d = tmp_path / "blocks"
    d.mkdir()
    (d / "blk00000.dat").write_bytes(bytes(bad))
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(DecodeError, match="no block is committed"):
        ingest_block_files(ws, d, "mainnet")
    assert ws.chain("bitcoin") is None or ws.chain("bitcoin").get("tip_height") is None


@pytest.mark.parametrize("make", ["empty", "missing", "unrelated"])
def test_an_empty_or_wrong_blocks_dir_is_an_error_naming_it(tmp_path, make, capsys):
    d = tmp_path / "blocks"
    if make != "missing":
        d.mkdir()
    if make == "unrelated":
        (d / "notes.txt").write_text("not blocks")
        (d / "index").mkdir()
    with pytest.raises(UsageError, match=str(d)):
        ingest_block_files(Workspace(tmp_path / "ws"), d, "mainnet")
    assert main(["ingest", "bitcoin", "--blocks-dir", str(d), "--home", str(tmp_path / "ws2")]) == 2
    assert str(d) in "".join(capsys.readouterr().err.split())  # named (rich may wrap the line)

