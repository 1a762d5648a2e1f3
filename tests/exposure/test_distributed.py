"""``exposure build --engine spark`` gives the embedded build's index: the same rows (amounts exact, totals
within float rounding), the same evidence, the same version format, on the simulated world (a UTXO chain
and an EVM chain, tags, sanctions, an incident crossing a bridge)."""

from __future__ import annotations

import json
import math
import shutil

import pyarrow.parquet as pq
import pytest

from fundtrail.engine.base import EngineSpec
from fundtrail.exposure import distributed
from fundtrail.exposure.index import build_index, current_version, load_index
from fundtrail.store import Workspace

pytestmark = pytest.mark.slow

SPEC = EngineSpec("spark", "local[2]")
KEY = ("chain", "subject", "subject_id", "direction", "gid", "asset")


def _rows(path) -> dict[tuple, dict]:
    t = pq.read_table(path / "exposure.parquet").to_pylist()
    out = {tuple(r[k] for k in KEY): r for r in t}
    assert len(out) == len(t)  # one row per key
    return out


def test_spark_index_agrees_with_embedded(spark, world, tmp_path):
    home = tmp_path / "ws"
    shutil.copytree(world.home, home)
    ws = Workspace(home)
    emb = build_index(ws)
    spk = distributed.build_index(ws, SPEC)
    assert current_version(ws) == spk and spk.name > emb.name
    a, b = _rows(emb), _rows(spk)
    assert a and set(a) == set(b)
    assert {k[0] for k in a} == {"regtest", "simeth"} and {k[3] for k in a} == {"received", "sent"}
    for k, r in a.items():
        s = b[k]
        assert s["amount"] == r["amount"], k  # integer base units: exact
        assert (s["hops"], s["decimals"], s["address_id"], list(s["path"] or [])) == \
            (r["hops"], r["decimals"], r["address_id"], list(r["path"] or [])), k
        assert math.isclose(s["total"], r["total"], rel_tol=1e-12, abs_tol=1e-6), k
    # the same version format: every file, and the meta the loader and the screening service read; the
    # incremental update's state/ only in the embedded build's (after a Spark build the next update is full)
    assert sorted(p.name for p in emb.iterdir()) == sorted([p.name for p in spk.iterdir()] + ["state"])
    me, ms = json.loads((emb / "meta.json").read_text()), json.loads((spk / "meta.json").read_text())
    for k in ("heights", "tags_digest", "digest", "max_hops", "model", "groups", "rows", "kinds"):
        assert me[k] == ms[k], k
    assert ms["engine"]["name"] == "spark"
    # the loaded index answers alike
    ie, isp = load_index(ws, int(emb.name[1:])), load_index(ws)
    for chain, addr in [*world.cashout, world.deposit_2hops, world.user]:
        pe, ps = ie.profile(chain, addr), isp.profile(chain, addr)
        key = lambda i: (i.direction, i.group.gid, i.asset)  # noqa: E731
        assert sorted(pe.items, key=key) == sorted(ps.items, key=key)
