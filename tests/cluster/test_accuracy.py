"""Pairwise precision/recall against ground truth."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.cluster.accuracy import labels_from_groups, pairwise_scores


def brute(pred, truth):
    pp = tp = tt = 0
    for i, j in itertools.combinations(range(len(pred)), 2):
        p, t = pred[i] == pred[j], truth[i] == truth[j]
        pp += p
        tt += t
        tp += p and t
    return tp, pp, tt


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 4)), max_size=30))
def test_matches_pair_enumeration(rows):
    pred = np.array([r[0] for r in rows], np.int64)
    truth = np.array([r[1] for r in rows], np.int64)
    s = pairwise_scores(pred, truth)
    assert (s.true_positive_pairs, s.predicted_pairs, s.true_pairs) == brute(pred.tolist(), truth.tolist())


def test_example():
    addrs = ["a", "b", "c", "d", "e"]
    truth = labels_from_groups(addrs, [["a", "b", "c"], ["d", "e"]])
    # predicted: {a,b} {c,d} {e}: 1 right pair of 2 predicted; 4 true pairs
    s = pairwise_scores(np.array([0, 0, 2, 2, 4]), truth)
    assert s.precision == 0.5 and s.recall == 0.25
    assert pairwise_scores(np.arange(5), truth).precision == 1.0  # no merges: nothing wrong
