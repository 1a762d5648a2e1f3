"""Issue 23, finding 16 and incident owners: one strict name pattern (``\\Z``), no lookalike names, and
``--replace``/delete of another user's incident refused."""

from __future__ import annotations

import pytest

from fundtrail.cli.main import main
from fundtrail.errors import UsageError
from fundtrail.incidents import create_incident, delete_incident, get_incident, make_incident
from fundtrail.principal import Principal
from fundtrail.store import Workspace

ETH = "0x7521D1CAdBCFa91Eec65Aa16715b94FfC1c9654b"
ALICE = Principal("alice", "user")
MALLORY = Principal("mallory", "user")
ADMIN = Principal("root", "admin")


@pytest.mark.parametrize("name", ["case1\n", "case1\r\n", "\ncase1", "case 1", "../case1", "case1/", "ça",
                                  "-case1", "", "x" * 101, "case1\x00"])
def test_bad_incident_names_are_refused(home, name: str) -> None:
    with pytest.raises(UsageError):
        make_incident(name, "ethereum", [ETH])
    assert main(["incident", "create", name, "--chain", "ethereum", "-a", ETH, "--home", str(home)]) == 2
    assert Workspace(home).read("incidents").num_rows == 0


def test_names_differing_only_in_case_are_refused(home) -> None:
    ws = Workspace(home)
    create_incident(ws, "Bybit-2025", "ethereum", [ETH], principal=ALICE)
    with pytest.raises(UsageError, match="only in case"):
        create_incident(ws, "bybit-2025", "ethereum", [ETH], principal=ALICE)


def test_replace_and_delete_only_by_the_owner_or_an_admin(home) -> None:
    ws = Workspace(home)
    inc = create_incident(ws, "heist", "ethereum", [ETH], description="alice's case", principal=ALICE)
    assert inc.owner == "alice" and get_incident(ws, "heist").owner == "alice"
    with pytest.raises(UsageError, match="alice's"):
        create_incident(ws, "heist", "ethereum", [ETH], description="pwned", replace=True, principal=MALLORY)
    with pytest.raises(UsageError, match="alice's"):
        delete_incident(ws, "heist", principal=MALLORY)
    assert get_incident(ws, "heist").description == "alice's case"
    create_incident(ws, "heist", "ethereum", [ETH], description="v2", replace=True, principal=ALICE)
    assert get_incident(ws, "heist").description == "v2" and get_incident(ws, "heist").owner == "alice"
    create_incident(ws, "heist", "ethereum", [ETH], description="by admin", replace=True, principal=ADMIN)
    assert get_incident(ws, "heist").owner == "alice"  # the admin's replacement keeps the owner
    delete_incident(ws, "heist", principal=ADMIN)


def test_cli_co_user_cannot_replace(home, monkeypatch, capsys) -> None:
    assert main(["incident", "create", "case1", "--chain", "ethereum", "-a", ETH, "--home", str(home)]) == 0
    monkeypatch.setenv("FUNDTRAIL_USER", "mallory")
    assert main(["incident", "create", "case1", "--chain", "ethereum", "-a", ETH, "--replace",
                 "--description", "pwned", "--home", str(home)]) == 2
    assert "may not replace" in capsys.readouterr().err
    assert get_incident(Workspace(home), "case1").description is None
