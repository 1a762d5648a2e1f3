"""Finding 5: chain names become folder names; a hostile one must not write outside the workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.errors import UsageError
from fundtrail.model.chain import CHAIN_NAME, check_chain_key, check_chain_name
from fundtrail.store import GLOBAL, Workspace

HOSTILE = ["../escaped", "../../../escaped", "/tmp/abs", "a/b", "ethereum\n", "ethereum/", ".", "..", "",
           "Ethereum", "x" * 33, "eth\x00", "eth\u2215x", " eth"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(UsageError, match="invalid chain name"):
        check_chain_name(name)


@pytest.mark.parametrize("name", ["bitcoin", "ethereum", "simeth", "testnet4", "arbitrum-nova", "my_chain", "1"])
def test_real_names_pass(name):
    assert check_chain_name(name) == name and check_chain_key(name) == name


def test_global_key_is_a_key_not_a_name():
    assert check_chain_key(GLOBAL) == GLOBAL
    assert check_chain_key("ds=graphsense_sim-sanctions") == "ds=graphsense_sim-sanctions"
    for bad in ("ds=../x", "ds=a/b", "ds=x\n", "ds="):
        with pytest.raises(UsageError):
            check_chain_key(bad)
    with pytest.raises(UsageError):
        check_chain_name(GLOBAL)


@given(st.text(max_size=40))
def test_every_accepted_name_is_one_plain_path_segment(name):
    if CHAIN_NAME.match(name):
        assert Path(name).name == name and name not in (".", "..") and "\n" not in name and "/" not in name


@pytest.mark.parametrize("chain", ["../../../escaped", "/ABS"])
def test_workspace_refuses_to_write_parts_or_files_outside(tmp_path, chain):
    home = tmp_path / "deep" / "ws"
    ws = Workspace(home)
    chain = chain.replace("/ABS", str(tmp_path / "outside"))
    t = pa.table({"chain": [chain], "address_id": [1], "address": ["a"], "script_type": [None]})
    with pytest.raises(UsageError), ws.transaction() as txn:
        txn.append("addresses", chain, t)
    with pytest.raises(UsageError), ws.transaction() as txn:
        txn.write_file("address_index", chain, lambda p: p.write_bytes(b"x"))
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and home not in p.parents)
    assert written == [] and not (tmp_path / "outside").exists() and not (tmp_path / "escaped").exists()


def test_cli_refuses_a_traversing_chain_before_touching_anything(tmp_path):
    home = tmp_path / "ws"
    r = subprocess.run([sys.executable, "-m", "fundtrail", "ingest", "evm", "--rpc", "http://127.0.0.1:9/",
                        "--chain", "../../escaped", "--to", "1", "--home", str(home)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "invalid chain name" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "escaped").exists()
