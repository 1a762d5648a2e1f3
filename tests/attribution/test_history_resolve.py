"""History (listings and delistings), the winner rule, clusters, bad rows, re-import idempotence."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.attribution.resolve import address_tags, resolve_labels, sanctioned_at
from fundtrail.attribution.service import import_paths
from fundtrail.attribution.trust import CONFIDENCE_CAP
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store.addresses import AddressBook
from tests.conftest import shared_path

TORNADO_ETH = "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc"
HEADER = "address,chain,label,category,entity,country,source,confidence\n"
# real, valid addresses (FBI Bybit list, EIP-55 checked) for synthetic tag rows
ADDRS = ["0x51e9d833ecae4e8d9d8be17300aee6d3398c135d", "0x96244d83dc15d36847c35209bbdc5bdde9bec3d8",
         "0x83c7678492d623fb98834f0fbcb2e7b7f5af8950", "0x83ef5e80fad88288f770152875ab0bb16641a09e"]


def _sdn_snapshot(tmp: Path, name: str, *, drop_uid: str | None) -> Path:
    """A snapshot of the real sdn.csv (+comments joined by the reader), optionally without one entry —
    made here, by the test, to stand for a later list that delisted it."""
    src = shared_path("ofac", "ofac_sdn_full_2024-05-03.csv")
    out = tmp / name
    with open(src, encoding="latin-1", newline="") as fh, open(out, "w", encoding="latin-1", newline="") as w:
        wr = csv.writer(w, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        for row in csv.reader(fh):
            if len(row) == 12 and row[0] != drop_uid:
                wr.writerow(row)
    return out


def test_tornado_cash_listed_then_delisted(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    before = _sdn_snapshot(snaps, "sdn_2022-08-01.csv", drop_uid="39796")  # before the listing
    listed = _sdn_snapshot(snaps, "sdn_2022-08-08.csv", drop_uid=None)
    delisted = _sdn_snapshot(snaps, "sdn_2025-03-21.csv", drop_uid="39796")
    results = []
    for order in ([before, listed, delisted], [delisted, before, listed]):
        ws = Workspace(tmp_path / f"ws{len(results)}")
        for f in order:
            import_paths(ws, [f])
        import_paths(ws, [listed])  # again: no change
        assert sanctioned_at(ws, TORNADO_ETH, "2022-08-07")[0] is False
        assert sanctioned_at(ws, TORNADO_ETH, "2022-08-08")[0] is True
        assert sanctioned_at(ws, TORNADO_ETH, "2024-06-01")[0] is True
        assert sanctioned_at(ws, TORNADO_ETH, "2025-03-21")[0] is False
        t = ws.read("tags")
        tc = t.filter(pc.equal(t["address"], TORNADO_ETH)).to_pylist()
        assert len(tc) == 1
        assert tc[0]["valid_from"] == dt.datetime(2022, 8, 8, tzinfo=dt.UTC)
        assert tc[0]["valid_to"] == dt.datetime(2025, 3, 21, tzinfo=dt.UTC)
        # Lazarus stays listed all along: no dates (listed before our first snapshot)
        laz = t.filter(pc.equal(t["entity"], "LAZARUS GROUP"))
        assert laz.num_rows and laz["valid_from"].null_count == laz.num_rows
        assert laz["valid_to"].null_count == laz.num_rows
        results.append(t.drop_columns(["imported_at", "file", "version"]).sort_by([("chain", "ascending"),
                                                                         ("address", "ascending"),
                                                                         ("asset", "ascending")]))
        # the point-in-time resolution drops the tag after the delisting
        r = resolve_labels(ws, "ethereum", at="2025-06-01")
        assert TORNADO_ETH not in r["address"].to_pylist()
        r = resolve_labels(ws, "ethereum", at="2023-01-01")
        row = r.filter(pc.equal(r["address"], TORNADO_ETH)).to_pylist()[0]
        assert row["sanctioned"] and row["entity"] == "TORNADO CASH"
    assert results[0].equals(results[1])  # import order does not matter


def _csv(path: Path, rows: list[tuple]) -> Path:
    path.write_text(HEADER + "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in rows))
    return path


def test_bad_address_is_reported_with_file_and_line_and_the_rest_imports(home: Path, tmp_path: Path) -> None:
    f = _csv(tmp_path / "mine.csv", [
        (ADDRS[0], "ethereum", "Exchange A", "exchange", "A", "DE", "me", 0.9),
        ("0x51E9d833Ecae4E8D9D8Be17300AEE6D3398C135d", "ethereum", "bad case", "exchange", "A", "", "", ""),
        ("1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "bitcoin", "Boat", "mixer", "", "", "", "web_crawl"),
        ("1BoatSLRHtKNngkdXEeobR76b53LETtpyX", "bitcoin", "typo", "mixer", "", "", "", ""),
    ])
    ws = Workspace(home)
    stats = import_paths(ws, [f])
    assert [(Path(i.path).name, i.line) for i in stats.errors] == [("mine.csv", 3), ("mine.csv", 5)]
    assert "EIP-55" in stats.errors[0].message and "checksum" in stats.errors[1].message
    t = ws.read("tags")
    assert t.num_rows == 2
    boat = t.filter(pc.equal(t["chain"], "bitcoin")).to_pylist()[0]
    assert boat["confidence"] == 0.2 and boat["confidence_name"] == "web_crawl" and boat["category"] == "mixer"


def _write_clusters(ws: Workspace, chain: str, groups: list[list[str]]) -> None:
    book = AddressBook(ws, chain)
    addrs = [a for g in groups for a in g]
    ids = book.ids(addrs)
    pos = dict(zip(addrs, ids.tolist(), strict=True))
    cid = [min(pos[a] for a in g) for g in groups for _ in g]
    with ws.transaction() as txn:
        book.flush_into(txn)
        txn.append("cluster_members", chain, pa.table({"chain": [chain] * len(addrs), "address_id": ids,
                                                      "cluster_id": pa.array(cid, pa.int64())}))


def test_cluster_labels_and_is_cluster_definer(home: Path, tmp_path: Path) -> None:
    ws = Workspace(home)
    _write_clusters(ws, "ethereum", [ADDRS[:3], ADDRS[3:]])
    pack = tmp_path / "pack.yaml"
    pack.write_text(f"""title: test pack
creator: fundtrail tests
confidence: service_data
currency: ETH
lastmod: 2024-01-01
tags:
- address: '{ADDRS[0]}'
  label: Some Exchange
  category: exchange
  is_cluster_definer: true
- address: '{ADDRS[3]}'
  label: A user
  category: user
""")
    import_paths(ws, [pack])
    r = {row["address"]: row for row in resolve_labels(ws, "ethereum").to_pylist()}
    assert r[ADDRS[0]]["via"] == "address" and r[ADDRS[0]]["is_service"]
    for a in ADDRS[1:3]:
        assert r[a]["via"] == "cluster" and r[a]["entity"] == "Some Exchange" and r[a]["confidence"] == 0.5
        assert r[a]["cluster_id"] == r[ADDRS[0]]["cluster_id"]
    assert r[ADDRS[3]]["via"] == "address" and len(r) == 4  # is_cluster_definer false: no propagation
    assert r[ADDRS[0]]["address_id"] is not None


rows_strategy = st.lists(
    st.tuples(st.sampled_from(ADDRS), st.sampled_from(["exchange", "mixer", "scam", "gambling"]),
              st.sampled_from(["A", "B", "C"]), st.sampled_from([0.2, 0.5, 0.9]),
              st.sampled_from(["src1", "src2"])),
    min_size=1, max_size=8)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, data=st.data())
def test_winner_does_not_depend_on_import_order(tmp_path_factory, rows, data) -> None:  # noqa: ANN001
    base = tmp_path_factory.mktemp("order")
    files = []
    for i, (a, cat, ent, conf, src) in enumerate(rows):
        files.append(_csv(base / f"f{i}_2024-01-0{1 + i % 3}.csv", [(a, "ethereum", f"{ent} {cat}", cat, ent, "",
                                                                      src, conf)]))
    perm = data.draw(st.permutations(files))
    out = []
    for order in (files, perm):
        ws = Workspace(base / f"ws{len(out)}")
        for f in order:
            import_paths(ws, [f])
        out.append(resolve_labels(ws, "ethereum").sort_by("address"))
    assert out[0].equals(out[1])
    # and the winner is the most confident tag of each address (confidence capped by the importer's tier)
    for row in out[0].to_pylist():
        assert row["confidence"] == min(max(r[3] for r in rows if r[0] == row["address"]),
                                        CONFIDENCE_CAP["owner"])


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_reimport_is_idempotent(tmp_path_factory, rows) -> None:  # noqa: ANN001
    base = tmp_path_factory.mktemp("idem")
    f = _csv(base / "tags.csv", [(a, "ethereum", cat, cat, ent, "", src, conf) for a, cat, ent, conf, src in rows])
    ws = Workspace(base / "ws")
    import_paths(ws, [f])
    first = ws.read("tags").drop_columns(["imported_at"]).sort_by([("address", "ascending"), ("label", "ascending"),
                                                                    ("entity", "ascending")])
    r1 = resolve_labels(ws, "ethereum")
    import_paths(ws, [f])
    import_paths(ws, [f])
    again = ws.read("tags").drop_columns(["imported_at"]).sort_by([("address", "ascending"), ("label", "ascending"),
                                                                    ("entity", "ascending")])
    assert first.equals(again)
    assert r1.equals(resolve_labels(ws, "ethereum"))
    assert ws.row_count("tags") == first.num_rows


def test_show_lists_every_tag_with_its_rank(home: Path, tmp_path: Path) -> None:
    ws = Workspace(home)
    import_paths(ws, [_csv(tmp_path / "a.csv", [(ADDRS[0], "ethereum", "X", "exchange", "X", "", "s", 0.5),
                                                 (ADDRS[0], "ethereum", "Y", "scam", "Y", "", "s", 0.9)])])
    t = address_tags(ws, ADDRS[0].upper().replace("0X", "0x"))
    assert t.num_rows == 2
    win = [r for r in t.to_pylist() if r["rank"] == 1][0]
    assert win["entity"] == "Y"
    assert ws.read("actors", GLOBAL).num_rows == 0
