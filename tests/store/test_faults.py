"""Disk full, read-only disks and hostile co-users: a failed write leaves the last committed state intact
and says so; workspace files are private; nothing is written through a symlink planted at a known name."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from fundtrail.cli.main import main
from fundtrail.errors import WorkspaceError, WriteFailedError
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import workspace as W
from tests.ingest.bitcoin.chaingen import make_chain, write_blk
from tests.store.reader_loop import check


def _prices(day: int) -> pa.Table:
    return pa.table({"date": pa.array([day], pa.date32()), "asset": ["BTC"], "usd": [float(day)],
                     "source": ["t"]})


def _snapshot(home: Path) -> dict[str, bytes]:
    """Every file of the workspace and its bytes (reader pins aside)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*")
            if p.is_file() and "readers" not in p.parts and p.name != "lock"}


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.transaction() as txn:
        txn.append("prices", GLOBAL, _prices(1))
    return ws


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_part_write_keeps_the_committed_state_and_says_so(ws, monkeypatch, code):
    before = _snapshot(ws.home)

    def full(*a, **k):
        raise OSError(code, os.strerror(code), str(a[1]))

    monkeypatch.setattr(W.pq, "write_table", full)
    with pytest.raises(WriteFailedError) as e, ws.transaction() as txn:
        txn.replace("prices", GLOBAL, _prices(2))
    msg = str(e.value)
    assert os.strerror(code) in msg and "nothing of this change was committed" in msg
    assert "last committed state (generation 1)" in msg
    assert _snapshot(ws.home) == before  # no part, no temporary file left behind
    monkeypatch.undo()
    assert Workspace(ws.home).read("prices", GLOBAL)["usd"].to_pylist() == [1.0]
    with ws.transaction() as txn:  # space freed: writing works again
        txn.replace("prices", GLOBAL, _prices(3))
    assert Workspace(ws.home).read("prices", GLOBAL)["usd"].to_pylist() == [3.0]


@pytest.mark.parametrize("where", ["manifest-write", "manifest-rename"])
def test_a_failed_manifest_write_keeps_the_committed_state(ws, monkeypatch, where):
    before = _snapshot(ws.home)
    if where == "manifest-write":
        real = W.os.fsync

        def fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(W.os, "fsync", fsync)
        monkeypatch.setattr(W, "_SYNCFS", None)  # parts go through fsync too: they fail first, as on a full disk
        del real
    else:
        real_replace = W.os.replace

        def replace(src, dst):
            if str(dst).endswith(W.MANIFEST):
                raise OSError(errno.EROFS, "Read-only file system")
            return real_replace(src, dst)
        monkeypatch.setattr(W.os, "replace", replace)
    with pytest.raises(WriteFailedError, match="last committed state"), ws.transaction() as txn:
        txn.replace("prices", GLOBAL, _prices(2))
    monkeypatch.undo()
    assert _snapshot(ws.home) == before
    assert not list(ws.home.glob("manifest.json.*"))


@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str):
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    blocks, _ = make_chain(400, seed=5)
    write_blk(d / "blk00000.dat", blocks)
    return d


def test_a_real_full_disk_mid_ingest_then_more_space_resumes(tmp_path, chain_dir):
    clean = Workspace(tmp_path / "clean")
    ingest_block_files(clean, chain_dir, "regtest", batch_blocks=4)
    with _tmpfs(tmp_path / "mnt", "300k") as mnt:
        ws = Workspace(mnt / "ws")
        with pytest.raises(WriteFailedError, match="No space left on device.*last committed state"):
            ingest_block_files(ws, chain_dir, "regtest", batch_blocks=4)
        ws.refresh()
        tip = ws.chain("regtest")["tip_height"]
        assert 0 < tip < 400
        assert check(ws) == {}  # consistent: every table at the same last committed batch
        assert ws.query("SELECT max(height) AS h FROM blocks").to_pylist()[0]["h"] == tip
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        st = ingest_block_files(ws, chain_dir, "regtest", batch_blocks=4)
        assert (st.first_height, st.tip_height) == (tip + 1, 400)
        q = "SELECT * EXCLUDE (address_id) FROM outputs ORDER BY ALL"
        assert ws.query(q) == clean.query(q)
        ws.close()


def test_a_read_only_workspace_refuses_writes_and_still_answers_queries(tmp_path, chain_dir, capsys):
    with _tmpfs(tmp_path / "mnt", "8m") as mnt:
        home = mnt / "ws"
        w = Workspace(home)
        ingest_block_files(w, chain_dir, "regtest", batch_blocks=100, max_blocks=200)
        w.close()
        del w
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        before = _snapshot(home)
        assert main(["ingest", "bitcoin", "--blocks-dir", str(chain_dir), "--network", "regtest",
                     "--home", str(home)]) == 5
        err = " ".join(capsys.readouterr().err.split())
        assert "Read-only file system" in err and "nothing was changed" in err
        assert _snapshot(home) == before
        r = Workspace(home)
        assert r.user_query("SELECT count(*) AS n FROM blocks").to_pylist() == [{"n": 200}]
        r.close()


def test_workspace_files_are_private_whatever_the_umask(tmp_path, chain_dir):
    old = os.umask(0o022)
    try:
        home = tmp_path / "ws"
        ws = Workspace(home)
        ingest_block_files(ws, chain_dir, "regtest", batch_blocks=50, max_blocks=100)
        modes = {str(p.relative_to(home)): stat.S_IMODE(p.lstat().st_mode) for p in [home, *home.rglob("*")]}
    finally:
        os.umask(old)
    dirs = {k: v for k, v in modes.items() if (home / k).is_dir() and k != "tmp"}
    files = {k: v for k, v in modes.items() if (home / k).is_file()}
    assert dirs and all(v == 0o700 for v in dirs.values()), dirs
    assert "lock" in files and "manifest.json" in files and any(k.endswith(".parquet") for k in files)
    assert all(v == 0o600 for v in files.values()), {k: oct(v) for k, v in files.items() if v != 0o600}


def test_a_symlink_at_the_old_temporary_manifest_name_is_not_followed(tmp_path, capsys):
    """Finding 15 of the audit: `ln -s victim HOME/manifest.json.tmp` made the next commit overwrite the
    victim and turned manifest.json into a symlink to it."""
    home = tmp_path / "ws15"
    seed = ["--chain", "simeth", "-a", "0x1111111111111111111111111111111111111111", "--home", str(home)]
    assert main(["incident", "create", "a1", *seed]) == 0
    victim = tmp_path / "victim"
    victim.write_text("ORIGINAL\n")
    (home / "manifest.json.tmp").symlink_to(victim)
    for name in ("manifest.json.1.tmp", "manifest.json.x.tmp"):  # and at names like the new ones
        (home / name).symlink_to(victim)
    assert main(["incident", "create", "a2", *seed]) == 0
    assert victim.read_text() == "ORIGINAL\n"
    assert not (home / "manifest.json").is_symlink() and (home / "manifest.json").is_file()
    assert stat.S_IMODE((home / "manifest.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    names = Workspace(home).query("SELECT name FROM incidents ORDER BY 1")["name"].to_pylist()
    assert names == ["a1", "a2"]


def test_a_symlink_at_the_lock_is_refused(tmp_path):
    home = tmp_path / "ws"
    ws = Workspace(home)
    victim = tmp_path / "victim"
    victim.write_text("ORIGINAL\n")
    (home / "lock").symlink_to(victim)
    with pytest.raises(WorkspaceError, match="symbolic link"), ws.transaction() as txn:
        txn.append("prices", GLOBAL, _prices(1))
    assert victim.read_text() == "ORIGINAL\n" and ws.generation == 0


def test_a_full_disk_outside_a_commit_is_a_clear_error_too(tmp_path, chain_dir, monkeypatch, capsys):
    """e.g. inflating a .bz2 block file into HOME/tmp: exit 5 and the same promise, no traceback."""
    from fundtrail.ingest.bitcoin import service as BS

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ws" / "tmp" / "blk00000.dat"))

    monkeypatch.setattr(BS.BF, "BlockSource", full)
    assert main(["ingest", "bitcoin", "--blocks-dir", str(chain_dir), "--network", "regtest",
                 "--home", str(tmp_path / "ws")]) == 5
    err = " ".join(capsys.readouterr().err.split())
    assert "No space left on device" in err and "last committed state" in err
