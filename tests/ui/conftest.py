"""The UI's tests share one copy of the KYT tests' simulated world (tests/exposure/world.py: the demo world
ingested, clustered, tags, prices, incident ``sim-theft``, exposure index) and one real server on a loopback
port with three users. The copy keeps the user tags these tests add out of the other areas' world."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.exposure.world import build_world

REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str, home: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "fundtrail", *args, "--home", str(home)], capture_output=True,
                       text=True, env=env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@dataclass
class UiServer:
    url: str
    home: Path
    truth: dict
    passwords: dict[str, str]
    proc: subprocess.Popen


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory):
    w = build_world(tmp_path_factory)
    home = tmp_path_factory.mktemp("ui") / "ws"
    shutil.copytree(w.home, home, ignore=shutil.ignore_patterns("service", "*.lock"))
    return home, w.truth


@pytest.fixture(scope="session")
def ui_server(ui_home):
    home, truth = ui_home
    pw = {name: cli("users", "create", name, "--role", role, home=home)
          for name, role in (("alice", "investigator"), ("victor", "viewer"), ("root", "admin"))}
    proc = subprocess.Popen([sys.executable, "-m", "fundtrail", "serve", "--home", str(home), "--port", "0",
                             "--workers", "1", "--poll", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("the server did not become ready")
    s = UiServer(url, home, truth, pw, proc)
    try:
        yield s
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def thief(truth: dict) -> tuple[str, str]:
    s = truth["theft"]["seeds"][0]
    return s["chain"], s["address"]


def peel_flow(truth: dict) -> dict:
    """A peel the simulator made: one transaction of the thief's peel chain and the address it paid."""
    return next(f for f in truth["flows"] if f["step"] == "peel" and f["chain"] == "regtest")


def artifacts_dir() -> Path:
    """Where the browser tests put their screenshots: $FUNDTRAIL_TEST_ARTIFACTS or test-artifacts/ui."""
    d = Path(os.environ.get("FUNDTRAIL_TEST_ARTIFACTS") or REPO / "test-artifacts") / "ui"
    d.mkdir(parents=True, exist_ok=True)
    return d
