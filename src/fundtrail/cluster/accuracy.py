"""Pairwise precision and recall of a clustering against ground truth (a simulated world's truth.json).

A pair of addresses is *predicted* together when they share a cluster and *truly* together when the
truth groups them. Precision = true pairs predicted / pairs predicted (how often a merge is right; a
wrong merge accuses the wrong party), recall = true pairs predicted / true pairs (how much of the real
ownership the clustering finds). Counted from the contingency table of (predicted cluster, true group)
without enumerating pairs: sum over cells of C(n, 2).

The universe is the set of addresses both sides know; an address the truth does not group is its own
singleton group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    addresses: int


def _pairs_by_group(labels: np.ndarray) -> int:
    """Sum over groups of C(size, 2), by sorting (no np.unique on large arrays)."""
    if len(labels) == 0:
        return 0
    s = np.sort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(s)) + 1
    sizes = np.diff(np.concatenate([[0], cuts, [len(s)]])).astype(np.int64)
    return int(np.sum(sizes * (sizes - 1) // 2))


def pairwise_scores(pred: np.ndarray, truth: np.ndarray) -> PairScores:
    """Scores for two int64 label arrays over the same addresses (position i = address i)."""
    pred = np.asarray(pred, np.int64)
    truth = np.asarray(truth, np.int64)
    if pred.shape != truth.shape:
        raise ValueError("label arrays differ in length")
    # densify both so the (pred, truth) cell fits in one int64 key
    p = np.searchsorted(np.sort(pred), pred)
    t = np.searchsorted(np.sort(truth), truth)
    both = p * (len(t) + 1) + t
    tp, pp, tt = _pairs_by_group(both), _pairs_by_group(p), _pairs_by_group(t)
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, tp, pp, tt, len(pred))


def labels_from_groups(addresses: Sequence[str], groups: Iterable[Iterable[str]]) -> np.ndarray:
    """Truth labels for ``addresses``: the index of the group holding it, or a unique singleton label."""
    of: dict[str, int] = {}
    for k, g in enumerate(groups):
        for a in g:
            of[a] = k
    base = len(of) + 1
    return np.array([of.get(a, base + i) for i, a in enumerate(addresses)], np.int64)


def labels_from_owners(addresses: Sequence[str], owners: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Truth labels from an address -> owner map; also the mask of addresses that have an owner."""
    ids: dict[str, int] = {}
    lab = np.empty(len(addresses), np.int64)
    mask = np.zeros(len(addresses), bool)
    for i, a in enumerate(addresses):
        o = owners.get(a)
        if o is None:
            lab[i] = -1 - i
        else:
            lab[i] = ids.setdefault(o, len(ids))
            mask[i] = True
    return lab, mask


def score_workspace(ws, chain: str, truth: Mapping) -> dict[str, PairScores]:
    """Scores of the workspace's current clusters of ``chain`` against a truth.json mapping: against its
    co-spend-visible ``clusters`` groups and against true ownership (``owners``) where present."""
    t = ws.query(f"SELECT address, cluster_id FROM clusters WHERE chain = '{chain.replace(chr(39), '')}' "
                 "ORDER BY address_id")
    addrs = t["address"].to_pylist()
    pred = t["cluster_id"].to_numpy()
    out = {"clusters": pairwise_scores(pred, labels_from_groups(addrs, truth.get("clusters", {}).get(chain, [])))}
    owners = truth.get("owners", {}).get(chain)
    if owners:
        lab, mask = labels_from_owners(addrs, owners)
        out["owners"] = pairwise_scores(pred[mask], lab[mask])
    return out
