"""Attribution on the real public files in ../shared/data (ofac/, tags/)."""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from fundtrail.attribution import ofac
from fundtrail.attribution.resolve import resolve_labels
from fundtrail.attribution.service import import_paths, read_paths
from fundtrail.store import Workspace
from tests.conftest import shared_path

pytestmark = pytest.mark.real

DCA = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([^;\s]+)")


def _rows(t, **eq):
    mask = None
    for k, v in eq.items():
        m = pc.equal(t[k], v)
        mask = m if mask is None else pc.and_(mask, m)
    return t.filter(mask)


def test_per_asset_lists_import_every_address_they_hold(home: Path) -> None:
    folder = shared_path("ofac", "ofac_0xB10C_lists_2024-09-27")
    raw = {}
    for f in sorted(folder.glob("sanctioned_addresses_*.txt")):
        raw[f.stem.rsplit("_", 1)[1]] = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
    assert len(raw["XBT"]) == 435 and len(raw["ETH"]) == 152  # the counts the issue states
    ws = Workspace(home)
    stats = import_paths(ws, [folder])
    tags = ws.read("tags")
    errors = Counter(Path(i.path).stem.rsplit("_", 1)[1] for i in stats.errors)
    for code, lines in raw.items():
        got = _rows(tags, asset=code).num_rows
        assert got + errors[code] == len(lines), code
    assert _rows(tags, asset="XBT").num_rows == 435  # the Tron address listed under XBT moves to tron
    assert _rows(tags, asset="ETH").num_rows == 152
    assert errors == Counter({"XMR": 1})  # a 64-hex string is not a Monero address: reported, with its line
    bad = stats.errors[0]
    assert bad.line == 2 and bad.path.endswith("sanctioned_addresses_XMR.txt")
    moved = [i for i in stats.issues if i.level == "warning" and "XBT" in i.path]
    assert moved and moved[0].line == 355 and "tron" in moved[0].message
    assert _rows(tags, chain="tron", asset="XBT").num_rows == 1
    assert set(pc.unique(tags["category"]).to_pylist()) == {"sanctioned"}
    assert all(tags["sanctioned"].to_pylist())


def test_sdn_csv_with_comments_finds_the_addresses_csv_alone_misses() -> None:
    sdn = shared_path("ofac", "ofac_sdn_full_2024-05-03.csv")
    comments = shared_path("ofac", "watchman_sdn_comments_2025-02-27.csv")
    key = shared_path("ofac", "DERIVED_ofac_sdn_dca_rows_2024-05-03.csv")
    # independent count: the derived answer key holds sdn.csv's rows with digital-currency addresses
    with open(key, encoding="latin-1", newline="") as fh:
        key_rows = [r for r in csv.reader(fh) if len(r) == 12]
    alone_expected = sum(len(DCA.findall(r[11])) for r in key_rows)
    assert alone_expected == 294
    alone = ofac.read_sdn_csv(sdn)
    both = ofac.read_sdn_csv(sdn, comments)
    n_alone = alone.snapshots[0].tags.num_rows + len([i for i in alone.issues if i.level == "error"])
    assert n_alone == alone_expected
    t_alone, t_both = alone.snapshots[0].tags, both.snapshots[0].tags
    assert t_both.num_rows > 550 > t_alone.num_rows
    found = set(zip(t_both["asset"].to_pylist(), t_both["address"].to_pylist(), strict=True))
    # an address cut in two at the 1,000-character boundary comes out whole
    assert ("XBT", "1GqChmWqGtsaLrGbHfgdrV5Nkvahtjjuxr") in found
    # the 2024 sdn.csv's truncated entries: every address of the comments is found
    extra = {}
    with open(comments, encoding="latin-1", newline="") as fh:
        for r in csv.reader(fh):
            if len(r) == 2:
                extra[r[0]] = r[1]
    for uid in ("36216", "39796", "37070"):  # Hydra, Tornado Cash, Blender.io
        tail = [a.rstrip(".") for _, a in DCA.findall(extra[uid])]
        assert tail and all(any(a.lower() == f[1].lower() for f in found) for a in tail[1:])
    # nothing past the remark of a complete entry (34682: the comments file is of a later list date)
    assert any("34682" in i.message for i in both.issues)


def test_lazarus_and_garantex_have_names_programs_and_country(home: Path) -> None:
    ws = Workspace(home)
    import_paths(ws, [shared_path("ofac", "ofac_sdn_full_2024-05-03.csv"),
                      shared_path("ofac", "watchman_sdn_comments_2025-02-27.csv")])
    tags = ws.read("tags")
    laz = _rows(tags, entity="LAZARUS GROUP")
    assert laz.num_rows >= 5
    assert set(laz["program"].to_pylist()) == {"DPRK3"} and set(laz["country"].to_pylist()) == {"KP"}
    gar = _rows(tags, entity="GARANTEX EUROPE OU")
    assert set(gar["program"].to_pylist()) == {"RUSSIA-EO14024"} and set(gar["country"].to_pylist()) == {"RU"}
    assert {"bitcoin", "ethereum"} <= set(gar["chain"].to_pylist())
    assert "0x7ff9cfad3877f21d41da833e2f775db0569ee3d9" in gar["address"].to_pylist()
    tc = _rows(tags, entity="TORNADO CASH")
    assert set(tc["program"].to_pylist()) == {"DPRK3, CYBER2"}


def test_fbi_bybit_addresses_are_north_korean_theft(home: Path) -> None:
    f = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    raw = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
    ws = Workspace(home)
    stats = import_paths(ws, [f])
    assert not stats.issues
    t = ws.read("tags")
    assert t.num_rows == len(raw) == 51
    assert set(t["address"].to_pylist()) == {a.lower() for a in raw}
    assert set(t["category"].to_pylist()) == {"theft_perpetrator"}
    assert set(t["country"].to_pylist()) == {"KP"}
    assert set(t["entity"].to_pylist()) == {"Lazarus Group"}
    r = resolve_labels(ws, "ethereum")
    assert r.num_rows == 51 and set(r["category"].to_pylist()) == {"theft_perpetrator"}


def test_all_tagpacks_and_the_actorpack_import(home: Path) -> None:
    folder = shared_path("tags", "graphsense-tagpacks")
    packs = sorted((folder / "packs").glob("*.yaml"))
    assert len(packs) == 35
    ws = Workspace(home)
    t0 = time.perf_counter()
    stats = import_paths(ws, [folder])
    took = time.perf_counter() - t0
    assert stats.files == 36 and stats.actors == 3813
    assert took < 60  # the bench figure (bench/bench_tags.py) is the one to quote; this only catches blow-ups
    tags = ws.read("tags")
    # every tag with an address is imported or reported (line numbers included)
    import yaml
    total = sum(len(yaml.load(p.read_text(), Loader=yaml.CSafeLoader)["tags"]) for p in packs)
    assert stats.tags + len(stats.errors) + sum(1 for i in stats.issues if "not imported" in i.message
                                                and i.level == "warning") == total
    assert all(i.line is not None for i in stats.errors)
    assert tags.num_rows <= stats.tags
    # header inheritance: walletexplorer's header confidence service_data, tag-level category exchange
    we = _rows(tags, tagpack="WalletExplorer Tag Pack")
    assert set(we["confidence_name"].to_pylist()) == {"service_data"}
    assert set(we["confidence"].to_pylist()) == {0.5}
    assert all(we["is_cluster_definer"].to_pylist())
    # tag override of a header value; GraphSense default is_cluster_definer false
    rw = _rows(tags, tagpack="Ransomware Tagpack")  # per-tag is_cluster_definer, both values
    assert set(rw["category"].to_pylist()) == {"ransomware"}
    assert set(rw["is_cluster_definer"].to_pylist()) == {True, False}
    rh = _rows(tags, tagpack="Ransomwhere tag pack")  # not given anywhere: GraphSense's default, false
    assert rh.num_rows > 7000 and not any(rh["is_cluster_definer"].to_pylist())
    actors = ws.read("actors")
    gar = actors.filter(pc.equal(actors["actor"], "garantex")).to_pylist()[0]
    assert gar["countries"] == ["RU"] and gar["category"] == "exchange" and gar["uri"] == "garantex.io"


def test_etherscan_labels_import_vectorised(home: Path) -> None:
    folder = shared_path("tags", "etherscan-labels")
    ws = Workspace(home)
    t0 = time.perf_counter()
    parsed, stats = read_paths([folder / "etherscan_combinedAccountLabels.json"])
    took = time.perf_counter() - t0
    assert stats.tags == 23288 and not stats.issues
    assert took < 5
    import_paths(ws, [folder])
    r = resolve_labels(ws, "ethereum")
    tc = r.filter(pc.equal(r["address"], "0x47ce0c6ed5b0ce3d3a51fdb1c52dc66a7c3c2936")).to_pylist()[0]
    assert tc["category"] == "mixer" and tc["entity"] == "Tornado.Cash"
    bn = r.filter(pc.equal(r["address"], "0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be")).to_pylist()[0]
    assert bn["category"] == "exchange" and bn["is_service"]


def test_json_lowercased_base58_is_reported_not_corrupted(home: Path) -> None:
    f = shared_path("ofac", "thomasgregg_sanctioned-addresses_sdn-2025-02-26.json")
    ws = Workspace(home)
    stats = import_paths(ws, [f])
    t = ws.read("tags")
    lost = [i for i in stats.errors if "lower-cased" in i.message]
    assert lost and all(i.line for i in lost)
    # every stored address is valid as stored; none is a lower-cased base58 string
    from fundtrail.attribution.chains import validate
    for ch, a in zip(t["chain"].to_pylist(), t["address"].to_pylist(), strict=True):
        assert validate(ch, a) == a
    import json
    doc = json.loads(f.read_text())
    assert t.num_rows + len(stats.errors) == sum(len(v["entries"]) for v in doc["addresses"].values())
