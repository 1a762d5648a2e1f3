"""Exit codes: Ctrl-C ends any command with 130 and one line (``ingest --follow`` used to exit 0 silently),
and a command's own exit code is returned (``cluster why A B`` exits 1 when A and B are not in one
cluster; main() used to ignore the value app() returned)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fundtrail.cli.main import main
from fundtrail.ingest.bitcoin.rpc import FakeNode
from fundtrail.store import Workspace
from tests.cluster.world import UtxoWorld
from tests.ingest.bitcoin.chaingen import make_chain
from tests.ingest.evm.conftest import anvil  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def test_cluster_why_exits_1_when_not_in_one_cluster(home, capsys):
    ws = Workspace(home)
    w = UtxoWorld()
    a1, a2 = w.fund(1, "A1", 50_000), w.fund(1, "A2", 70_000)
    w.fund(1, "C1", 10_000)
    w.tx(2, [a1, a2], [("B1", 100_000)])
    w.commit(ws)
    assert main(["cluster", "--home", str(home), "--chain", "regtest"]) == 0
    assert main(["cluster", "why", "A1", "A2", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(["cluster", "why", "A1", "C1", "--home", str(home)]) == 1
    assert "are not in the same cluster" in capsys.readouterr().out
    assert main(["cluster", "why", "A1", "C1", "--home", str(home), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["same_cluster"] is False


def _wait_for(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _run_and_interrupt(args: list[str], ready, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "fundtrail", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert _wait_for(lambda: ready() or p.poll() is not None, timeout), "the command never got going"
        assert p.poll() is None, p.communicate()
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def _tip(home: Path) -> int | None:
    m = home / "manifest.json"
    try:
        return json.loads(m.read_text())["chains"]["regtest"]["tip_height"]
    except (OSError, ValueError, KeyError):
        return None


def test_ctrl_c_during_ingest_bitcoin_follow_exits_130_with_one_line(tmp_path):
    blocks, _ = make_chain(8, seed=5)
    node = FakeNode.from_raw_blocks([b.serialize() for b in blocks], start_height=1)
    home = tmp_path / "ws"
    with node.serve() as url:
        r = _run_and_interrupt(["ingest", "bitcoin", "--rpc", url, "--network", "regtest", "--follow",
                                "--start-height", "1", "--home", str(home)], lambda: _tip(home) == 8)
    assert r.returncode == 130, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("interrupted; what was committed before it is kept") and "Traceback" not in r.stderr
    assert _tip(home) == 8  # what was committed stays


@pytest.mark.node
def test_ctrl_c_during_ingest_evm_follow_exits_130_with_one_line(tmp_path, anvil):  # noqa: F811
    home = tmp_path / "ws"

    def ready() -> bool:
        try:
            return "anvil" in json.loads((home / "manifest.json").read_text())["chains"]
        except (OSError, ValueError, KeyError):
            return False
    r = _run_and_interrupt(["ingest", "evm", "--rpc", anvil.url, "--chain", "anvil", "--follow", "--home",
                            str(home)], ready)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("interrupted;") and "Traceback" not in r.stderr
    assert "stopped;" not in r.stdout
