"""``cluster`` over hand-built chains written through workspace transactions."""

from __future__ import annotations

import random

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.cli.main import main
from fundtrail.cluster.evidence import show, why
from fundtrail.cluster.service import cluster
from fundtrail.store import Workspace
from tests.cluster.world import UtxoWorld


def clusters_of(ws: Workspace, chain: str = "regtest") -> dict[str, int]:
    t = ws.query(f"SELECT address, cluster_id FROM clusters WHERE chain = '{chain}'")
    return dict(zip(t["address"].to_pylist(), t["cluster_id"].to_pylist(), strict=True))


def partition(ws: Workspace, chain: str = "regtest") -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for a, c in clusters_of(ws, chain).items():
        groups.setdefault(c, set()).add(a)
    return {frozenset(g) for g in groups.values()}


def test_cospend_merges_and_why_explains(home):
    ws = Workspace(home)
    w = UtxoWorld()
    a1, a2, a3 = w.fund(1, "A1", 50_000), w.fund(1, "A2", 70_000), w.fund(2, "A3", 10_000)
    t1 = w.tx(3, [a1, a2], [("B1", 100_000), ("A4", 19_000)])
    t2 = w.tx(4, [(t1, 1), a3], [("B2", 28_000)])
    w.commit(ws)
    stats = cluster(ws)
    (s,) = stats.chains
    assert s.mode == "full" and s.merges == 2 and s.addresses == 6
    c = clusters_of(ws)
    assert c["A1"] == c["A2"] == 0  # the cluster id is the smallest address id
    assert c["A3"] == c["A4"] != c["A1"]
    assert c["B1"] != c["A1"] and c["B2"] != c["A3"]  # payees are not merged (no change heuristics)
    ex = why(ws, "regtest", "A1", "A2")
    assert ex.same_cluster and [st.txid for st in ex.steps] == [t1]
    assert ex.steps[0].heuristic == "cospend"
    ex = why(ws, "regtest", "A4", "A3")
    assert [(st.from_address, st.to_address, st.txid) for st in ex.steps] == [("A4", "A3", t2)] or \
        [(st.from_address, st.to_address, st.txid) for st in ex.steps] == [("A3", "A4", t2)]
    assert not why(ws, "regtest", "A1", "B1").same_cluster
    info = show(ws, "regtest", "A3")
    assert info["size"] == 2 and info["merges_by_heuristic"] == {"cospend": 1}


def test_why_follows_a_chain_of_merges(home):
    ws = Workspace(home)
    w = UtxoWorld()
    f = [w.fund(1, f"K{i}", 10_000 + i) for i in range(5)]
    txids = []
    prev = f[0]
    for i in range(1, 5):  # K0+K1 -> K1', then (that)+K2 ... a chain of co-spends
        t = w.tx(2 + i, [prev, f[i]], [(f"K{i}", 5_000), ("PAY", 1_000)])
        txids.append(t)
        prev = (t, 0)
    w.commit(ws)
    cluster(ws)
    ex = why(ws, "regtest", "K0", "K4")
    assert ex.same_cluster and [s.txid for s in ex.steps] == txids
    assert ex.steps[0].from_address == "K0" and ex.steps[-1].to_address == "K4"
    assert abs(ex.confidence - 0.99 ** 4) < 1e-9


def _participants(w: UtxoWorld, height: int, n: int, value: int, tag: str):
    """n users, each with two addresses already joined by a co-spend; returns each user's coin."""
    coins = []
    for u in range(n):
        x = w.fund(height, f"{tag}{u}x", value // 2 + 5_000)
        y = w.fund(height, f"{tag}{u}y", value // 2 + 5_000)
        t = w.tx(height + 1, [x, y], [(f"{tag}{u}in", value + 3_000)])
        coins.append((t, 0))
    return coins


def test_coinjoin_participants_are_never_merged(home):
    ws = Workspace(home)
    w = UtxoWorld()
    # Whirlpool: 5 x 0.01 BTC
    wp = _participants(w, 1, 5, 1_000_000, "W")
    wp_tx = w.tx(5, wp, [(f"Wout{i}", 1_000_000) for i in range(5)], version=1)
    # JoinMarket: 4 participants, 4 equal outputs + 3 maker changes
    jm = _participants(w, 1, 4, 2_000_000, "J")
    jm_tx = w.tx(6, jm, [(f"Jout{i}", 1_777_777) for i in range(4)] +
                 [(f"Jchg{i}", 220_000 + i) for i in range(3)])
    # Wasabi 1.x: 30 participants around 0.1 BTC
    wa = _participants(w, 1, 30, 10_500_000, "S")
    wa_tx = w.tx(7, wa, [(f"Sout{i}", 10_000_000) for i in range(30)] +
                 [(f"Schg{i}", 400_000 + i) for i in range(20)])
    w.commit(ws)
    (s,) = cluster(ws).chains
    assert s.coinjoins == 3
    cj = ws.query("SELECT txid, protocol FROM coinjoin_txs ORDER BY height")
    assert dict(zip(cj["txid"].to_pylist(), cj["protocol"].to_pylist(), strict=True)) == {
        wp_tx: "whirlpool", jm_tx: "joinmarket", wa_tx: "wasabi1"}
    c = clusters_of(ws)
    for tag, n in (("W", 5), ("J", 4), ("S", 30)):
        ids = {c[f"{tag}{u}x"] for u in range(n)}
        assert len(ids) == n, f"{tag}: participants merged"
        for u in range(n):  # each participant's own addresses are still together
            assert c[f"{tag}{u}x"] == c[f"{tag}{u}y"]
    ev = ws.query("SELECT txid FROM cluster_evidence")["txid"].to_pylist()
    assert not {wp_tx, jm_tx, wa_tx} & set(ev)


def test_whirlpool_tx0_inputs_are_clustered(home):
    ws = Workspace(home)
    w = UtxoWorld()
    x, y = w.fund(1, "U1", 3_000_000), w.fund(1, "U2", 2_000_000)
    t0 = w.tx(2, [x, y], [("P0", 1_001_500), ("P1", 1_001_500), ("P2", 1_001_500), ("P3", 1_001_500),
                          ("FEE", 50_000), (None, 0), ("TOX", 925_000)])
    w.commit(ws)
    cluster(ws)
    assert ws.query(f"SELECT protocol FROM coinjoin_txs WHERE txid = '{t0}'")["protocol"].to_pylist() == \
        ["whirlpool_tx0"]
    c = clusters_of(ws)
    assert c["U1"] == c["U2"]


def _change_world():
    w = UtxoWorld()
    x = w.fund(1, "L1", 3_000_000, "p2pkh")
    y = w.fund(1, "L2", 2_000_000, "p2pkh")
    # pays 0.03 BTC to a P2WPKH merchant; the change goes back to a fresh P2PKH address
    t = w.tx(2, [x, y], [("SHOP", 3_000_000, "p2wpkh"), ("LCHG", 1_987_654, "p2pkh")])
    return w, t


def test_change_heuristics_off_by_default_and_switchable(home):
    ws = Workspace(home)
    w, t = _change_world()
    w.commit(ws)
    cluster(ws)
    c = clusters_of(ws)
    assert c["LCHG"] != c["L1"]
    rep = ws.query(f"SELECT heuristic, n, used FROM change_outputs WHERE txid = '{t}' ORDER BY heuristic")
    got = {(h, n) for h, n in zip(rep["heuristic"].to_pylist(), rep["n"].to_pylist(), strict=True)}
    assert {("address_type", 1), ("round_amount", 1), ("optimal_change", 1)} <= got
    assert not any(rep["used"].to_pylist())
    (s,) = cluster(ws, change_heuristics="address_type,round_amount").chains
    assert s.mode == "full" and s.change_edges == 1  # another heuristic set: from scratch
    c = clusters_of(ws)
    assert c["LCHG"] == c["L1"] == c["L2"] and c["SHOP"] != c["L1"]
    ex = why(ws, "regtest", "L1", "LCHG")
    assert ex.steps[-1].heuristic == "change:address_type+round_amount" and ex.steps[-1].txid == t
    (s,) = cluster(ws).chains  # back to none: the change merge is gone
    assert clusters_of(ws)["LCHG"] != clusters_of(ws)["L1"]


def test_peel_chain_and_fingerprint(home):
    ws = Workspace(home)
    w = UtxoWorld()
    c0 = w.fund(1, "PEEL0", 100_000_000)
    t1 = w.tx(2, [c0], [("PEEL1", 90_000_000), ("OUT1", 9_990_000)], version=1, locktime=1)
    t2 = w.tx(3, [(t1, 0)], [("OUT2", 8_000_000), ("PEEL2", 81_980_000)], version=1, locktime=2)
    w.tx(4, [(t2, 1)], [("PEEL3", 70_000_000), ("OUT3", 11_970_000)], version=1, locktime=3)
    w.tx(4, [(t1, 1)], [("ELSE", 9_980_000)], version=2)
    w.commit(ws)
    cluster(ws, change_heuristics="peel_chain")
    c = clusters_of(ws)
    assert c["PEEL0"] == c["PEEL1"] == c["PEEL2"]
    assert c["OUT1"] != c["PEEL0"]
    rep = ws.query(f"SELECT n FROM change_outputs WHERE txid = '{t1}' AND heuristic = 'fingerprint'")
    assert rep["n"].to_pylist() == [0]


def test_supercluster_alarm(home):
    ws = Workspace(home)
    w = UtxoWorld()
    big = []
    for tag in "XY":
        coins = [w.fund(1, f"{tag}{i}", 10_000 + i) for i in range(6)]
        t = w.tx(2, coins, [(f"{tag}0", 50_000)])
        big.append((t, 0))
    glue = w.tx(3, big, [("Z", 90_000)])
    w.commit(ws)
    (s,) = cluster(ws, alarm_size=5).chains
    assert s.alarms == 1
    al = ws.query("SELECT txid, size_a, size_b FROM cluster_alarms")
    assert al["txid"].to_pylist() == [glue] and al.to_pylist()[0]["size_b"] >= 6
    assert main(["cluster", "alarms", "--home", str(home), "--json"]) == 0


# --- incremental == batch -----------------------------------------------------------------------

def random_world(seed: int, blocks: int = 8) -> UtxoWorld:
    rnd = random.Random(seed)
    w = UtxoWorld()
    utxos: list[tuple[str, int]] = []
    addrs = [f"R{i}" for i in range(25)]
    for h in range(1, blocks + 1):
        for _ in range(2):
            utxos.append(w.fund(h, rnd.choice(addrs), rnd.randrange(100_000, 2_000_000)))
        for _ in range(rnd.randrange(1, 5)):
            if len(utxos) < 2:
                break
            k = rnd.randrange(1, min(4, len(utxos)) + 1)
            spend = [utxos.pop(rnd.randrange(len(utxos))) for _ in range(k)]
            total = sum(w.outs[s][1] for s in spend)
            n_out = rnd.randrange(1, 3)
            outs = [(rnd.choice(addrs + [f"N{h}_{i}" for i in range(3)]), total // (n_out + 1))
                    for _ in range(n_out)]
            t = w.tx(h, spend, outs)
            utxos.extend((t, i) for i in range(n_out))
        if rnd.random() < 0.3 and len(utxos) >= 5:  # a Whirlpool-shaped mix now and then
            spend = [utxos.pop(rnd.randrange(len(utxos))) for _ in range(5)]
            t = w.tx(h, spend, [(f"M{h}_{i}", 100_000) for i in range(5)])
            utxos.extend((t, i) for i in range(5))
    return w


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 8), max_size=4),
       heur=st.sampled_from(["none", "one_time,address_type,round_amount,optimal_change"]))
def test_incremental_equals_batch(tmp_path_factory, seed, cuts, heur):
    w = random_world(seed)
    batch = Workspace(tmp_path_factory.mktemp("batch"))
    w.commit(batch)
    cluster(batch, change_heuristics=heur)

    w2 = random_world(seed)
    inc = Workspace(tmp_path_factory.mktemp("inc"))
    modes = []
    for cut in sorted(set(cuts)) + [max(w2.heights())]:
        if cut <= w2.written:
            continue
        w2.commit(inc, cut)
        (s,) = cluster(inc, change_heuristics=heur).chains
        modes.append(s.mode)
    assert modes[0] == "full" and all(m == "incremental" for m in modes[1:])
    assert partition(inc) == partition(batch)
    assert clusters_of(inc) == clusters_of(batch)  # same ids: the smallest member
    # the evidence of the incremental run still explains every cluster (one row per merge)
    n_ev = inc.query("SELECT count(*) AS n FROM cluster_evidence")["n"][0].as_py()
    members = clusters_of(inc)
    assert n_ev == len(members) - len(set(members.values()))


def test_nothing_new_is_unchanged(home):
    ws = Workspace(home)
    w = random_world(3)
    w.commit(ws)
    cluster(ws)
    (s,) = cluster(ws).chains
    assert s.mode == "unchanged"


def test_cli_cluster_and_why(home, capsys):
    ws = Workspace(home)
    w = UtxoWorld()
    a1, a2 = w.fund(1, "A1", 50_000), w.fund(1, "A2", 70_000)
    t = w.tx(2, [a1, a2], [("B1", 100_000)])
    w.commit(ws)
    assert main(["cluster", "--home", str(home), "--chain", "regtest"]) == 0
    capsys.readouterr()
    assert main(["cluster", "why", "A1", "A2", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert t[:10] in out and "cospend" in out
    assert main(["cluster", "show", "A2", "--home", str(home), "--json"]) == 0
    assert '"size": 2' in capsys.readouterr().out
    assert main(["cluster", "--home", str(home), "--change-heuristics", "bogus"]) == 2


def test_detect_coinjoins_without_cluster_run(home):
    from fundtrail.cluster.coinjoin import detect_coinjoins

    ws = Workspace(home)
    w = UtxoWorld()
    coins = [w.fund(1, f"Q{i}", 100_900) for i in range(5)]
    t = w.tx(2, coins, [(f"QO{i}", 100_000) for i in range(5)])
    w.commit(ws)
    got = detect_coinjoins(ws, "regtest")
    assert got.column_names[:5] == ["chain", "txid", "height", "protocol", "confidence"]
    assert got.to_pylist()[0]["txid"] == t and got.to_pylist()[0]["protocol"] == "whirlpool"
    assert isinstance(got, pa.Table)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), order_seed=st.integers(0, 10_000))
def test_transaction_order_does_not_change_the_partition(tmp_path_factory, seed, order_seed):
    w1 = random_world(seed)
    w2 = random_world(seed)
    rnd = random.Random(order_seed)
    by_height: dict[int, list] = {}
    for t in w2.txs:
        by_height.setdefault(t.height, []).append(t)
    w2.txs = []
    for h in sorted(by_height):  # the same transactions, in another order within each block
        txs = by_height[h]
        rnd.shuffle(txs)
        w2.txs.extend(txs)
    a = Workspace(tmp_path_factory.mktemp("a"))
    b = Workspace(tmp_path_factory.mktemp("b"))
    w1.commit(a)
    w2.commit(b)
    cluster(a)
    cluster(b)
    assert partition(a) == partition(b)


def _outputs_of(ws: Workspace) -> dict[str, list]:
    q = {
        "members": "SELECT address_id, cluster_id FROM cluster_members ORDER BY address_id",
        "evidence": "SELECT seq, a_id, b_id, txid, heuristic, confidence, height FROM cluster_evidence ORDER BY seq",
        "change": "SELECT txid, n, address_id, heuristic, used FROM change_outputs ORDER BY ALL",
        "coinjoin": "SELECT txid, protocol FROM coinjoin_txs ORDER BY ALL",
    }
    return {k: ws.query(sql).to_pylist() for k, sql in q.items()}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), range_rows=st.integers(1, 12),
       heur=st.sampled_from(["none", "all"]))
def test_block_ranges_give_the_single_pass_result(tmp_path_factory, seed, range_rows, heur):
    """The service walks the chain in block ranges (bounded memory); any range size gives the partition,
    the evidence rows (same seq, edge, txid), the change verdicts and the CoinJoin verdicts of one pass."""
    from fundtrail.cluster.service import cluster_utxo

    one = Workspace(tmp_path_factory.mktemp("one"))
    random_world(seed).commit(one)
    cluster_utxo(one, "regtest", change_heuristics=st_heur(heur), range_rows=1 << 40)
    many = Workspace(tmp_path_factory.mktemp("many"))
    random_world(seed).commit(many)
    s = cluster_utxo(many, "regtest", change_heuristics=st_heur(heur), range_rows=range_rows, write_rows=7)
    assert s.mode == "full"
    a, b = _outputs_of(one), _outputs_of(many)
    assert a["evidence"], "the world has merges"
    assert a == b


def st_heur(spec: str) -> tuple[str, ...]:
    from fundtrail.cluster.change import parse_heuristics

    return parse_heuristics(spec)


def test_whale_round_keeps_the_decoy_apart_and_why_show_name_it(home, capsys):
    """The measured failure of issue 14 through the stored tables: 32 inputs, 47 equal outputs, the thief
    the whale; an innocent participant with 8 addresses, co-spent together before the round, is never
    merged with the thief, and `cluster why` / `cluster show` name the round's kind, confidence, reasons."""
    import random as _random

    from fundtrail.simulate import rounds as R

    ws = Workspace(home)
    w = UtxoWorld()
    rng = _random.Random(3)
    shaped = R.equal_round(rng, R.Ids(), inputs=32, equal_outputs=47, whale_share=0.6, whale="thief")

    def name(c: R.Coin, side: str) -> str:
        return f"{c.owner}/{side}{c.address_id}"

    # every input coin is funded, at the address its owner holds it at
    coins = [w.fund(1, name(c, "a"), c.value) for c in shaped.inputs]
    # the decoy (participant:0) and the thief also co-spend their own addresses before the round
    for owner in ("thief", "participant:0"):
        mine = [name(c, "a") for c in shaped.inputs if c.owner == owner]
        extra = [w.fund(1, f"{owner}/own{i}", 100_000) for i in range(2)]
        w.tx(2, extra, [(mine[0], 190_000)])
    round_tx = w.tx(3, coins, [(name(c, "o"), c.value) for c in shaped.outputs])
    w.commit(ws)
    cluster(ws)
    cj = ws.query("SELECT txid, protocol, confidence, reason FROM coinjoin_txs").to_pylist()
    assert [r["txid"] for r in cj] == [round_tx] and cj[0]["protocol"] == "equal_output"
    c = clusters_of(ws)
    thief = {c[a] for a in c if a.startswith("thief/")}
    for a, k in c.items():
        if not a.startswith("thief/"):
            assert k not in thief, f"{a} merged with the thief"
    a = next(name(x, "a") for x in shaped.inputs if x.owner == "thief")
    b = next(name(x, "a") for x in shaped.inputs if x.owner == "participant:0")
    ex = why(ws, "regtest", a, b)
    assert not ex.same_cluster and [n.txid for n in ex.coinjoins] == [round_tx]
    assert any("more equal outputs than inputs" in r for r in ex.coinjoins[0].reasons)
    assert [n["txid"] for n in show(ws, "regtest", b)["coinjoins"]] == [round_tx]
    capsys.readouterr()
    main(["cluster", "why", a, b, "--home", str(home)])
    out = capsys.readouterr().out
    assert round_tx in out and "equal_output" in out and "inputs were not merged" in out
    assert main(["cluster", "show", b, "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert round_tx in out and "more equal outputs than inputs" in out
