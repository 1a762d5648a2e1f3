"""Usage errors on the command line: one clear message and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

from fundtrail.cli.main import main


def test_unknown_option_names_it_and_exits_2(capsys):
    assert main(["ingest", "bitcoin", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "Traceback" not in err


def test_option_before_the_command_is_a_usage_error_not_a_traceback():
    r = subprocess.run([sys.executable, "-m", "fundtrail", "--home", "/nonexistent", "query", "select 1"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "No such option: --home" in r.stderr and "Traceback" not in r.stderr


def test_help_exits_0(capsys):
    assert main(["ingest", "bitcoin", "--help"]) == 0
    assert "--blocks-dir" in capsys.readouterr().out
