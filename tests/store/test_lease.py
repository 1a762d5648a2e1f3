"""The writer lease (one writer for a whole run, named when busy, --wait), generation-checked commits and
reader pins (replaced files kept while an open reader may read them)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from fundtrail.cli.main import main
from fundtrail.errors import ConflictError, LockedError
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import lease as L

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from fundtrail.store import Workspace
ws = Workspace(sys.argv[1])
with ws.writer(purpose="holding for a test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _prices(day: int) -> pa.Table:
    return pa.table({"date": pa.array([day], pa.date32()), "asset": ["BTC"], "usd": [float(day)],
                     "source": ["t"]})


def _hold(home: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(home), str(seconds)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_busy_workspace_names_its_writer(tmp_path):
    home = tmp_path / "ws"
    Workspace(home)
    p = _hold(home, 30)
    try:
        with pytest.raises(LockedError) as e, Workspace(home).writer(purpose="test"):
            pass
        msg = str(e.value)
        assert f"pid {p.pid}" in msg and "holding for a test" in msg and "writing since" in msg
        assert "--wait" in msg
        h = L.holder(home)
        assert h is not None and h.pid == p.pid
    finally:
        p.kill()
        p.wait()
    with Workspace(home).writer():  # a killed holder leaves no lock behind
        pass


def test_wait_waits_for_the_other_writer_and_says_whom_it_waits_for(tmp_path, capsys):
    home = tmp_path / "ws"
    Workspace(home)
    p = _hold(home, 1.5)
    t0 = time.monotonic()
    csv = tmp_path / "prices.csv"
    csv.write_text("date,asset,usd\n2024-01-01,BTC,42000\n")
    assert main(["prices", "import", str(csv), "--home", str(home), "--wait", "60"]) == 0
    assert time.monotonic() - t0 >= 0.5
    err = " ".join(capsys.readouterr().err.split())
    assert "waiting for another writer" in err and f"pid {p.pid}" in err
    p.wait()
    assert main(["prices", "import", str(csv), "--home", str(home)]) == 0  # free again: no wait needed


def test_without_wait_a_writing_command_exits_5_naming_the_holder(tmp_path, capsys):
    home = tmp_path / "ws"
    Workspace(home)
    p = _hold(home, 30)
    try:
        code = main(["incident", "create", "x", "--chain", "simeth", "-a",
                     "0x1111111111111111111111111111111111111111", "--home", str(home)])
        assert code == 5
        assert f"pid {p.pid}" in " ".join(capsys.readouterr().err.split())
    finally:
        p.kill()
        p.wait()


def test_the_lease_covers_read_decide_write_and_is_reentrant(tmp_path):
    ws = Workspace(tmp_path / "ws")
    other = Workspace(tmp_path / "ws")
    with ws.writer(purpose="run"):
        with ws.writer():  # re-entrant in one thread
            with ws.transaction() as txn:
                txn.append("prices", GLOBAL, _prices(1))
        with pytest.raises(LockedError):  # another object (or thread, or process) is excluded
            other.writer(wait=0).__enter__()
        got: list[BaseException] = []
        t = threading.Thread(target=lambda: _try(ws, got))
        t.start()
        t.join()
        assert got and isinstance(got[0], LockedError)  # the same object from another thread too
        with ws.transaction() as txn:
            txn.append("prices", GLOBAL, _prices(2))
    assert Workspace(tmp_path / "ws").row_count("prices") == 2


def _try(ws: Workspace, out: list) -> None:
    try:
        with ws.writer(wait=0):
            pass
    except BaseException as e:  # noqa: BLE001
        out.append(e)


def test_a_commit_from_a_stale_read_is_refused(tmp_path):
    """Outside a lease, a transaction starts from what the object last read: if another writer committed
    since, nothing is committed (the old lock's race: read, then lock, then write over newer state)."""
    a, b = Workspace(tmp_path / "ws"), Workspace(tmp_path / "ws")
    with b.transaction() as txn:
        txn.append("prices", GLOBAL, _prices(1))
    with pytest.raises(ConflictError, match="changed since this command read it"), a.transaction() as txn:
        txn.append("prices", GLOBAL, _prices(2))
    assert Workspace(tmp_path / "ws").row_count("prices") == 1


def test_a_writer_that_lost_its_lease_cannot_commit_over_newer_state(tmp_path):
    home = tmp_path / "ws"
    a = Workspace(home)
    with a.writer():
        (home / "lock").unlink()  # someone deletes the lock file: a second writer gets a lease of its own
        b = Workspace(home)
        with b.transaction() as txn:
            txn.append("prices", GLOBAL, _prices(1))
        with pytest.raises(ConflictError, match="another writer committed generation 1"), a.transaction() as t:
            t.append("prices", GLOBAL, _prices(2))
    assert Workspace(home).read("prices", GLOBAL)["usd"].to_pylist() == [1.0]


def test_an_open_reader_keeps_the_files_it_reads_until_it_is_done(tmp_path):
    home = tmp_path / "ws"
    w = Workspace(home)
    for d in range(4):
        with w.transaction() as txn:
            txn.append("prices", GLOBAL, _prices(d))
    reader = Workspace(home)
    old = [str(p) for p in reader.part_paths("prices")]
    with w.writer():
        with w.transaction() as txn:
            txn.compact("prices", GLOBAL)
    assert len(Workspace(home).parts("prices")) == 1
    assert all(Path(p).exists() for p in old)  # replaced, but the reader's snapshot still reads them
    assert reader.read("prices", GLOBAL)["usd"].to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert reader.user_query("SELECT count(*) AS n FROM prices").to_pylist() == [{"n": 4}]
    reader.close()
    with w.transaction() as txn:  # the next commit deletes what no reader needs any more
        txn.append("prices", GLOBAL, _prices(9))
    assert not any(Path(p).exists() for p in old)
    assert w.trashed() == set()


def test_a_dead_readers_pin_does_not_keep_files_forever(tmp_path):
    home = tmp_path / "ws"
    w = Workspace(home)
    for d in range(3):
        with w.transaction() as txn:
            txn.append("prices", GLOBAL, _prices(d))
    code = "import sys, os; from fundtrail.store import Workspace; w = Workspace(sys.argv[1]); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(home)], check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert len(list((home / "readers").iterdir())) >= 2  # the dead reader's pin file stays behind...
    with w.transaction() as txn:
        txn.compact("prices", GLOBAL)
    assert w.trashed() == set() or all(not (home / f).exists() for f in w.trashed())
    assert [p.name for p in (home / "readers").iterdir()] == [w._pin.name]  # ...and is removed by a writer


def test_writer_paused_lets_other_writers_in(tmp_path):
    home = tmp_path / "ws"
    follower = Workspace(home)
    with follower.writer(purpose="follow"):
        seen = follower.generation
        with follower.writer_paused():
            other = Workspace(home)
            with other.transaction() as txn:  # e.g. a tags import while the follower sleeps
                txn.append("prices", GLOBAL, _prices(1))
        assert follower.generation == seen + 1  # it reads the newest state on taking the lease back
        with follower.transaction() as txn:
            txn.append("prices", GLOBAL, _prices(2))
    assert Workspace(home).row_count("prices") == 2
