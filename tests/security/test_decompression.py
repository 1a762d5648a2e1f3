"""Findings 9 and 11: decompression bombs (.bz2 blk files, --prevouts .bz2, fetched tar archives) and tar
headers that cost quadratic time. The hostile inputs run in subprocesses under memory, CPU, file-size and
time limits."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.decompress import CappedReader, DecompressLimits
from fundtrail.errors import InputError, ResponseLimitError
from tests.security.hostile import answer, hostile_server, run_limited


@pytest.fixture(scope="module")
def zeros_bz2() -> bytes:
    """64 MiB of zeros, bzip2'd: 100-odd bytes. Concatenated copies are one valid .bz2 stream set."""
    return bz2.compress(bytes(64 << 20), 9)


def test_blk_bz2_bomb_is_refused_without_filling_the_disk(tmp_path, zeros_bz2):
    d = tmp_path / "bz"
    d.mkdir()
    (d / "blk00000.dat.bz2").write_bytes(zeros_bz2 * 16)  # 1 GiB of zeros from ~2 KB
    home = tmp_path / "ws"
    r = run_limited(["ingest", "bitcoin", "--blocks-dir", str(d), "--network", "regtest", "--home", str(home)],
                    memory_mb=3072, fsize_mb=512, timeout=120)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "decompression bomb" in r.stderr and "blk00000.dat.bz2" in r.stderr and "Traceback" not in r.stderr
    on_disk = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    assert on_disk < 64 << 20


def test_prevouts_bz2_bomb_is_refused_in_bounded_memory(tmp_path, zeros_bz2):
    p = tmp_path / "p.utxostore.bz2"
    p.write_bytes(zeros_bz2 * 16)
    code = ("import sys\nfrom fundtrail.ingest.bitcoin.utxo import read_btcd_utxostore\n"
            "from fundtrail.errors import InputError\n"
            f"try:\n    read_btcd_utxostore({str(p)!r})\nexcept InputError as e:\n"
            "    print(e); sys.exit(3)\n")
    r = run_limited(["-c", code], memory_mb=1024, timeout=120)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "decompression bomb" in r.stdout


def test_capped_reader_keeps_real_data_and_concatenated_streams():
    data = b"".join(i.to_bytes(4, "little") for i in range(1 << 20))
    c = bz2.compress(data[: 1 << 21]) + bz2.compress(data[1 << 21:])
    out = io.BufferedReader(CappedReader(io.BytesIO(c), "bz2", DecompressLimits(8 << 20), what="x")).read()
    assert out == data
    with pytest.raises(InputError, match="truncated"):
        io.BufferedReader(CappedReader(io.BytesIO(c[:-9]), "bz2", DecompressLimits(8 << 20), what="x")).read()


def _tar_gz_bomb() -> bytes:
    class Zeros(io.RawIOBase):
        n = 256 << 20

        def readable(self):
            return True

        def readinto(self, b):
            k = min(len(b), self.n)
            b[:k] = bytes(k)
            self.n -= k
            return k

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
        i = tarfile.TarInfo("top/packs/big.yaml")
        i.size = 256 << 20
        t.addfile(i, io.BufferedReader(Zeros(), 1 << 20))
    return buf.getvalue()


def _pax_tar_gz(n: int = 200_000) -> bytes:
    p = b"1" * n
    h = tarfile.TarInfo("././@PaxHeader")
    h.type = tarfile.XHDTYPE
    h.size = len(p)
    f = tarfile.TarInfo("top/packs/a.yaml")
    d = b"title: t\ntags: []\n"
    f.size = len(d)
    b = h.tobuf(format=tarfile.USTAR_FORMAT) + p + bytes(-len(p) % 512) + f.tobuf(format=tarfile.USTAR_FORMAT) \
        + d + bytes(512 - len(d)) + bytes(1024)
    return gzip.compress(b)


@pytest.fixture(scope="module")
def tar_bomb() -> bytes:
    return _tar_gz_bomb()


def _serve(data: bytes):
    def handle(req, body, seen):
        answer(req, data, 200, "application/gzip")
    return hostile_server(handle)


def test_fetched_tar_bomb_is_refused(tmp_path, tar_bomb):
    assert len(tar_bomb) < 5 << 20
    home = tmp_path / "ws"
    with _serve(tar_bomb) as (url, _):
        r = run_limited(["tags", "fetch", "graphsense", "--url", url + "/bomb.tar.gz", "--home", str(home)],
                        memory_mb=3072, fsize_mb=256, timeout=120)
    assert r.returncode == 4, r.stderr[-2000:]
    assert "decompression bomb" in r.stderr and "Traceback" not in r.stderr
    on_disk = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    assert on_disk < 32 << 20


def test_fetched_tar_with_a_huge_pax_header_is_refused_quickly(tmp_path):
    data = _pax_tar_gz()
    assert len(data) < 2000
    with _serve(data) as (url, _):
        r = run_limited(["tags", "fetch", "graphsense", "--url", url + "/pax.tar.gz", "--home",
                         str(tmp_path / "ws")], cpu_s=30, timeout=60)
    assert r.returncode == 4, r.stderr[-2000:]
    assert "extended header of 200,000 bytes" in r.stderr and r.seconds < 20


def test_small_pax_headers_still_extract(tmp_path):
    from fundtrail.attribution.fetch import _extract_tagfiles

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        d = b"title: t\ntags: []\n"
        i = tarfile.TarInfo("top/packs/" + "long-name-" * 20 + ".yaml")
        i.size = len(d)
        i.pax_headers = {"comment": "x" * 500}
        t.addfile(i, io.BytesIO(d))
    t0 = time.monotonic()
    out = _extract_tagfiles(buf.getvalue(), tmp_path, "http://127.0.0.1:1/x.tar.gz")
    assert [p.read_bytes() for p in out] == [b"title: t\ntags: []\n"] and time.monotonic() - t0 < 5


def test_member_count_cap(tmp_path, monkeypatch):
    from fundtrail.attribution import fetch as F

    monkeypatch.setattr(F, "MAX_MEMBERS", 10)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for k in range(20):
            i = tarfile.TarInfo(f"top/packs/{k}.yaml")
            t.addfile(i, io.BytesIO(b""))
    with pytest.raises(ResponseLimitError, match="more than 10 members"):
        F._extract_tagfiles(buf.getvalue(), tmp_path, "http://127.0.0.1:1/x.tar.gz")


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=20_000), cut=st.integers(0, 20_000), kind=st.sampled_from(["bz2", "gz", "xz"]))
def test_capped_reader_round_trips_any_data(data, cut, kind):
    import lzma

    comp = {"bz2": bz2.compress, "gz": gzip.compress, "xz": lzma.compress}[kind]
    c = comp(data[:cut]) + comp(data[cut:])
    got = io.BufferedReader(CappedReader(io.BytesIO(c), kind, DecompressLimits(1 << 20), what="x"), 4096).read()
    assert got == data
