"""``fundtrail demo --serve`` ends by serving the UI and printing its address and a ready user; that user signs in."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tests.ui.conftest import env
from tests.ui.session import sign_in


@pytest.mark.slow
def test_demo_serve_prints_a_ready_user(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fundtrail", "demo", "--out", str(tmp_path / "demo"), "--serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env())
    try:
        deadline = time.time() + 600
        line = ""
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line or "Web UI:" in line:
                break
        m = re.search(r"Web UI: (http://127\.0\.0\.1:\d+)/ui/\s+user (\S+)\s+password (\S+)", line)
        assert m, line
        url, user, password = m.groups()
        for _ in range(100):
            try:
                c, _csrf = sign_in(url, user, password)
                break
            except Exception:  # noqa: BLE001 - the workers are still starting
                time.sleep(0.3)
        else:
            raise AssertionError("could not sign in")
        assert "sim-theft" in c.get("/ui/").text
    finally:
        proc.send_signal(signal.SIGTERM)
        # one worker: uvicorn shuts down gracefully, then re-raises the signal it caught
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
