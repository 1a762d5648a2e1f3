"""The exposure index on the simulated world: who is exposed to the theft, how far, and through what."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from fundtrail.exposure.index import build_index, input_digest, is_current, load_index
from fundtrail.store import Workspace


def _items(ix, chain, address, category="stolen_funds", direction="received"):
    return [i for i in ix.profile(chain, address).items if i.group.category == category and i.direction == direction]


def test_thief_split_addresses_are_direct(world):
    ix = load_index(Workspace(world.home))
    for chain, a in world.cashout:
        items = _items(ix, chain, a)
        assert items, a
        assert min(i.hops for i in items) == 1 and items[0].kind == "direct"
        assert max(i.share for i in items) == 1.0
        # the evidence path starts at the theft (the seed's transfer to the split address)
        assert all(i.path for i in items)


def test_exchange_deposit_two_hops_is_indirect_and_stops_there(world):
    ix = load_index(Workspace(world.home))
    chain, dep = world.deposit_2hops
    p = ix.profile(chain, dep)
    assert p.label is not None and p.label.is_service  # the deposit address resolves to its exchange
    items = _items(ix, chain, dep)
    assert items and min(i.hops for i in items) == 2 and all(i.kind == "indirect" for i in items)
    assert all(len(i.path) == 2 for i in items if i.hops == 2)
    # propagation stops at services: the exchange's hot wallet (its cluster) is not exposed through it
    t = pq.read_table(ix.path / "exposure.parquet").to_pylist()
    hot = [r for r in t if r["chain"] == chain and r["subject"] == "cluster" and r["subject_id"] == p.cluster_id]
    assert hot == []


def test_bridged_dormant_funds_on_bitcoin(world):
    ix = load_index(Workspace(world.home))
    for chain, a in world.dormant:
        items = _items(ix, chain, a)
        assert items and max(i.share for i in items) > 0.99, a


def test_ordinary_user_not_exposed(world):
    ix = load_index(Workspace(world.home))
    assert ix.profile(*world.user).items == ()


def test_versions_and_digest(world):
    ws = Workspace(world.home)
    ix = load_index(ws)
    assert is_current(ws, ix)
    meta = json.loads((ix.path / "meta.json").read_text())
    assert meta["heights"] == input_digest(ws)["heights"]
    assert {g["category"] for g in meta["groups"]} >= {"stolen_funds", "mixer"}
    later = [g for g in meta["groups"] if g["entity"] == "Later Listed-sim"]
    assert later and later[0]["sanctioned_from"].startswith("2030-01-01")
    # an old version stays loadable by number
    assert load_index(ws, ix.version).version == ix.version
    assert build_index  # rebuilding is covered by the service tests (incremental pick-up)


def test_a_co_users_sanctions_claim_makes_no_sanctioned_group(world, tmp_path):
    """Screening blocks on binding lists only (docs/security.md): a co-user's CSV saying an ordinary user's
    address is sanctioned makes no sanctions window; the same file imported by the workspace owner does."""
    import shutil

    from fundtrail.attribution.service import import_paths
    from fundtrail.attribution.trust import Provenance
    from fundtrail.exposure.sources import sanction_windows
    from fundtrail.principal import Principal

    ws = Workspace(shutil.copytree(world.home, tmp_path / "ws", ignore=shutil.ignore_patterns("service")))
    chain, address = world.user
    f = tmp_path / "claims.csv"
    f.write_text("address,chain,label,category,entity,country,source,confidence\n"
                 f"{address},{chain},Blocked Person,sanctioned,Blocked Person,,treasury.gov/ofac,ownership\n")

    def windows() -> set[str]:
        return set(sanction_windows(ws, chain)["address"].to_pylist())

    before = windows()
    assert address not in before
    import_paths(ws, [f], provenance=Provenance.of_import(Principal("mallory")))
    ws.refresh()
    stored = ws.query(f"SELECT tier FROM tags WHERE address = '{address}'")["tier"].to_pylist()
    assert stored == ["user"]  # stored, under the co-user's own tier
    assert windows() == before  # but not binding
    import_paths(ws, [f], provenance=Provenance.of_import(Principal("owner", "admin")))
    ws.refresh()
    assert address in windows()  # the owner's own list is
