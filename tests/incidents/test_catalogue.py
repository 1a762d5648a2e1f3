"""The incident catalogue: the shipped DPRK catalogue parses, every seed address is valid for its chain,
every row cites a source, and its published addresses are the ones in the public data they come from;
CSV/JSON/YAML catalogues import (rows with seeds become incidents), bad rows are refused with the file,
row and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fundtrail.errors import InputError
from fundtrail.incidents import get_incident, list_incidents
from fundtrail.incidents_catalogue import (
    import_catalogue,
    list_catalogue,
    parse_catalogue,
    shipped_catalogue,
)
from fundtrail.model.address import normalize
from fundtrail.store import Workspace

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"public data not present: {path}")
    return path


def test_shipped_catalogue_parses_and_every_row_is_sourced_and_valid():
    entries = parse_catalogue(shipped_catalogue())
    assert len(entries) >= 8
    names = [e.name for e in entries]
    assert len(set(names)) == len(names)
    for e in entries:
        assert e.sources, e.name
        assert all(re.match(r"^https://\S+$", s) for s in e.sources), e.name
        assert e.actor == "lazarusgroup"
        for chain, a in e.addresses:
            assert normalize(chain, a) == a  # valid for its chain (stored form)
        if not e.has_seeds:
            assert e.seed_note, e.name  # says why there is no seed
        assert e.reported_loss_usd is None or e.reported_loss_usd > 0
        assert e.reported_loss_note
    by = {e.name: e for e in entries}
    assert {"ronin-bridge-2022", "harmony-horizon-2022", "atomic-wallet-2023", "stake-com-2023",
            "dmm-bitcoin-2024", "bybit-2025"} <= set(by)
    assert by["bybit-2025"].reported_loss_usd == 1.5e9 and len(by["bybit-2025"].addresses) == 51


@pytest.mark.real
def test_shipped_addresses_are_the_published_ones():
    """Every shipped seed address appears in the public source file it is cited from (../shared/data)."""
    by = {e.name: e for e in parse_catalogue(shipped_catalogue())}
    fbi = _need(DATA / "tags" / "fbi_bybit_2025" / "fbi_psa250226_bybit_eth_addresses.txt")
    published = {normalize("ethereum", x) for x in fbi.read_text().split()}
    assert {a for _, a in by["bybit-2025"].addresses} == published
    packs = _need(DATA / "tags" / "graphsense-tagpacks" / "packs")
    ronin = (packs / "ronin_bridge.yaml").read_text().lower()
    assert all(a in ronin for _, a in by["ronin-bridge-2022"].addresses)
    sdn = _need(DATA / "ofac" / "ofac_sdn_full_2024-05-03.csv").read_text(errors="replace")
    lazarus = next(line for line in sdn.splitlines() if '"LAZARUS GROUP"' in line)
    assert "0x098B716B8Aaf21512996dC57EB0615e2383E2f96" in lazarus
    fbi2023 = (packs / "lazarus2.yaml").read_text()
    assert "fbi-identifies-cryptocurrency-funds-stolen-by-dprk" in fbi2023
    assert all(a in fbi2023 for _, a in by["fbi-dprk-btc-holdings-2023-08"].addresses)


def test_import_shipped_catalogue_creates_incidents_for_rows_with_seeds(tmp_path):
    ws = Workspace(tmp_path / "ws")
    res = import_catalogue(ws, shipped_catalogue())
    assert set(res.incidents) == {"ronin-bridge-2022", "fbi-dprk-btc-holdings-2023-08", "bybit-2025"}
    assert {i.name for i in list_incidents(ws)} == set(res.incidents)
    bybit = get_incident(ws, "bybit-2025")
    assert bybit.actor == "lazarusgroup" and bybit.chains == ("ethereum",) and len(bybit.seeds) == 51
    assert bybit.since is not None and bybit.since.date().isoformat() == "2025-02-21"
    rows = list_catalogue(ws)
    assert len(rows) == res.entries
    # importing again replaces, never duplicates
    import_catalogue(ws, shipped_catalogue())
    assert len(list_catalogue(ws)) == res.entries


def test_csv_and_json_catalogues(tmp_path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(
        "name,date,victim,actor,chains,addresses,txids,reported_loss_usd,sources\n"
        "x-2024,2024-05,Some exchange,lazarusgroup,bitcoin,bitcoin:3LU8wRu4ZnXP4UM8Yo6kkTiGHM9BubgyiG,,"
        "\"1,000,000\",https://example.org/a; https://example.org/b\n"
        "y-2023,2023-01-02,Other,,ethereum,,,,https://example.org/c\n")
    es = parse_catalogue(csv_path)
    assert es[0].date_precision == "month" and es[0].reported_loss_usd == 1e6 and len(es[0].sources) == 2
    assert es[0].addresses == (("bitcoin", "3LU8wRu4ZnXP4UM8Yo6kkTiGHM9BubgyiG"),)
    assert not es[1].has_seeds and es[1].seed_note
    js = tmp_path / "c.json"
    js.write_text(json.dumps([{"name": "z-2025", "date": "2025-02-21", "sources": ["https://example.org"],
                               "addresses": [{"chain": "ethereum",
                                              "address": "0x51E9d833Ecae4E8D9D8Be17300AEE6D3398C135D"}]}]))
    (z,) = parse_catalogue(js)
    assert z.addresses == (("ethereum", "0x51e9d833ecae4e8d9d8be17300aee6d3398c135d"),)


@pytest.mark.parametrize(("row", "field"), [
    ({"name": "a", "date": "2024-01-01"}, "sources"),
    ({"name": "a", "date": "2024-13-01", "sources": ["https://x.org"]}, "date"),
    ({"name": "a", "date": "2024-01-01", "sources": ["ftp://x"]}, "sources"),
    ({"name": "a", "date": "2024-01-01", "sources": ["https://x.org"],
      "addresses": {"bitcoin": ["3LU8wRu4ZnXP4UM8Yo6kkTiGHM9BubgyiX"]}}, "addresses"),
    ({"name": "a", "date": "2024-01-01", "sources": ["https://x.org"],
      "addresses": {"ethereum": ["0x51E9d833Ecae4E8D9D8Be17300AEE6D3398C135d"]}}, "addresses"),
    ({"name": "a b", "date": "2024-01-01", "sources": ["https://x.org"],
      "addresses": {"ethereum": ["0x51e9d833ecae4e8d9d8be17300aee6d3398c135d"]}}, "name"),
    ({"name": "a", "date": "2024-01-01", "sources": ["https://x.org"], "reported_loss_usd": "lots"},
     "reported_loss_usd"),
])
def test_bad_rows_are_refused_naming_file_row_and_field(tmp_path, row, field):
    p = tmp_path / "bad.yaml"
    import yaml

    p.write_text(yaml.safe_dump({"incidents": [row]}))
    with pytest.raises(InputError) as e:
        parse_catalogue(p)
    assert e.value.field == field and "bad.yaml" in str(e.value) and "row 1" in str(e.value)


def test_cli_incident_import(tmp_path, capsys):
    from fundtrail.cli.main import main

    home = tmp_path / "ws"
    assert main(["incident", "import", "--shipped", "--home", str(home)]) == 0
    assert "3 incidents with seeds" in capsys.readouterr().out
    assert main(["stats", "--home", str(home), "--by", "year", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    reported = {g["year"]: g["usd"] for g in out["groups"] if g["measure"] == "reported"}
    assert reported["2025"] == 1.5e9 and reported["2023"] == 100e6 + 60e6 + 37e6 + 41e6
    assert any("not traced" in n for n in out["notes"])  # the chains are not ingested here
    bad = tmp_path / "x.txt"
    bad.write_text("nothing")
    assert main(["incident", "import", str(bad), "--home", str(home)]) == 3
