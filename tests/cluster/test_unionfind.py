"""The union-find kernel: partitions, cluster ids, evidence forest, alarms, resuming from labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.cluster.unionfind import UnionFind


def naive_labels(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    """Smallest id of each connected component, by repeated relaxation (obviously correct)."""
    lab = np.arange(n)
    changed = True
    while changed:
        changed = False
        for a, b in edges:
            m = min(lab[a], lab[b])
            if lab[a] != m or lab[b] != m:
                lab[a] = lab[b] = m
                changed = True
    return lab


edges_st = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80)))


LINKS = pytest.mark.parametrize("link", ["min", "size"])


@LINKS
@settings(max_examples=200, deadline=None)
@given(case=edges_st)
def test_partition_and_ids_match_naive(case, link):
    n, edges = case
    uf = UnionFind(n, link=link)
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    res = uf.union(a, b)
    labels = uf.labels()
    assert labels.tolist() == naive_labels(n, edges).tolist()
    # the recorded edges are a spanning forest: exactly n - (number of clusters) of them, joining the same
    merged = [edges[i] for i in res.merged]
    assert len(merged) == n - len(set(labels.tolist()))
    assert naive_labels(n, merged).tolist() == labels.tolist()


@LINKS
@settings(max_examples=100, deadline=None)
@given(case=edges_st, rnd=st.randoms(use_true_random=False))
def test_order_independent(case, rnd, link):
    n, edges = case
    shuffled = list(edges)
    rnd.shuffle(shuffled)
    shuffled = [(b, a) if rnd.random() < 0.5 else (a, b) for a, b in shuffled]
    u1, u2 = UnionFind(n, link=link), UnionFind(n, link=link)
    u1.union(np.array([e[0] for e in edges], np.int64), np.array([e[1] for e in edges], np.int64))
    u2.union(np.array([e[0] for e in shuffled], np.int64), np.array([e[1] for e in shuffled], np.int64))
    assert u1.labels().tolist() == u2.labels().tolist()


@LINKS
@settings(max_examples=100, deadline=None)
@given(case=edges_st, cut=st.integers(0, 80))
def test_resume_from_labels_equals_one_pass(case, cut, link):
    n, edges = case
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    whole = UnionFind(n, link=link)
    whole.union(a, b)
    first = UnionFind(n, link=link)
    first.union(a[:cut], b[:cut])
    resumed = UnionFind.from_labels(first.labels(), link=link)
    resumed.union(a[cut:], b[cut:])
    assert resumed.labels().tolist() == whole.labels().tolist()
    for x in range(n):
        assert resumed.size_of(x) == int(np.sum(whole.labels() == whole.labels()[x]))


def test_grow_and_ids_are_smallest_member():
    uf = UnionFind(3)
    uf.union(np.array([2, 7]), np.array([9, 9]))  # grows to 10 ids
    assert len(uf) == 10
    lab = uf.labels()
    assert lab[9] == 2 and lab[7] == 2 and lab[5] == 5


@LINKS
def test_alarm_when_both_sides_large(link):
    uf = UnionFind(8, link=link)
    # two clusters of 4: {0,1,2,3} and {4,5,6,7}, then the edge 3-7 joins them
    a = np.array([0, 0, 0, 4, 4, 4, 3])
    b = np.array([1, 2, 3, 5, 6, 7, 7])
    res = uf.union(a, b, alarm_size=4)
    assert res.alarm_edge.tolist() == [6]
    assert res.alarm_size_a.tolist() == [4] and res.alarm_size_b.tolist() == [4]
    uf2 = UnionFind(8, link=link)
    assert len(uf2.union(a, b, alarm_size=5).alarm_edge) == 0
    uf3 = UnionFind(9, link=link)  # 3 + 5: no alarm at 4, the smaller side is too small
    assert len(uf3.union(np.array([0, 0, 3, 3, 3, 3, 2]), np.array([1, 2, 4, 5, 6, 7, 7]),
                         alarm_size=4).alarm_edge) == 0


@LINKS
def test_many_alarms_fit(link):
    # pairs, then pairs of pairs, ...: every merge at level >= 1 alarms at alarm_size 1
    n = 64
    uf = UnionFind(n, link=link)
    a, b = [], []
    step = 1
    while step < n:
        for i in range(0, n, 2 * step):
            a.append(i)
            b.append(i + step)
        step *= 2
    res = uf.union(np.array(a), np.array(b), alarm_size=1)
    assert len(res.alarm_edge) == n - 1
    assert uf.labels().tolist() == [0] * n


def test_from_labels_rejects_non_labels():
    with pytest.raises(ValueError):
        UnionFind.from_labels(np.array([1, 0]))
    with pytest.raises(ValueError):
        UnionFind.from_labels(np.array([1, 1]))  # 1 is not the smallest id of {0, 1}
    UnionFind.from_labels(np.array([1, 1]), link="size")
