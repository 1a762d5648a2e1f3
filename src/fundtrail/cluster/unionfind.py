"""Union-find over dense integer address ids, recording the evidence of every merge.

The kernel takes edges as two parallel id arrays ``a`` and ``b`` (edge ``i`` joins ``a[i]`` and ``b[i]``) and
returns the indices of the edges that joined two *different* sets. Those edges form a spanning forest of the
clusters: every cluster of ``k`` addresses is held together by exactly ``k - 1`` recorded edges, so the
caller keeps one evidence row (transaction, heuristic, confidence) per recorded edge and nothing else, and
the path between two addresses through recorded edges is the chain of merges that joined them
(``cluster why``).

* Path halving (a form of path compression) in ``find``. Linking: by default the root with the smaller id
  becomes the root ("link by index", as GraphSense's Rust union-find does), so a set's root *is* its
  cluster id (smallest member) and the labels need one pass over the forest; union by size
  (``link="size"``: near-constant amortised cost, inverse Ackermann) needs a second, random-access pass
  to find each set's smallest member. Measured on 20M random edges over 30M ids (bench/bench_cluster.py,
  shared machine, best of 3): 2.3 s in all for link-by-index against 2.6 s for union by size (label
  pass 0.6 s against 1.2 s). With path halving, link-by-index is O(log n) amortised in the worst case;
  ids come from first appearance, so the large old clusters (services) hold the small ids and stay
  roots, which is what union by size would choose too.
* Memory latency dominates (random access into an array far larger than the cache), so the loop
  prefetches the entries of the edge 2D ahead and their parents for the edge D ahead (LLVM's prefetch
  intrinsic): the cache misses of several finds overlap (about 25-30% faster than without).
* Ids and parents are ``int64`` (sized for chains with billions of addresses); a root's slot holds minus
  its set's size, so sizes cost neither memory nor a cache miss. Memory is ``8 bytes x addresses`` for the
  forest plus ``8 bytes x merges`` for the evidence index (fixed-width arrays only), and the label pass
  needs one more ``8 bytes x addresses``.
* The cluster id of a set is its smallest address id, computed once at the end (:func:`labels`), so ids
  stay stable when clusters grow: a set only changes id when it merges with a set holding a smaller id.
* A merge of two sets both of at least ``alarm_size`` addresses is reported separately (supercluster
  alarm): such merges are how a single wrong edge (a missed CoinJoin, a shared custodial input) glues two
  large services together.

The state is fully described by the label array: a union-find whose parents are the labels (every
address pointing at its cluster's smallest id) is a valid, fully compressed forest, which is how the
service persists and resumes it (``cluster_members``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# LLVM's prefetch intrinsic is named after its pointer type: opaque pointers (LLVM >= 15) say p0
_PREFETCH_FN = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch arr[idx] into cache (for writing, high locality); a no-op semantically."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            _PREFETCH_FN)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _find(parent, x):
    # roots hold -size; path halving: every other node on the path points to its grandparent
    while True:
        p = parent[x]
        if p < 0:
            return x
        g = parent[p]
        if g < 0:
            return p
        parent[x] = g
        x = g


_PREFETCH = 32  # edges ahead whose entries are prefetched (hides memory latency; measured best of 8/16/32)


@njit(cache=True, nogil=True)
def _union_edges(parent, a, b, alarm_size, by_min, merged, alarm_edge, alarm_sa, alarm_sb):
    """Union every edge; write merging edge indices into ``merged`` and alarms into the alarm arrays.

    ``by_min``: the smaller root id becomes the root (the root is then always its set's smallest id);
    otherwise the root of the larger set does (union by size).

    Returns (number of merges, number of alarms). A merge alarms when the smaller set has >= alarm_size
    ids; there are at most n // alarm_size such merges (each one takes a set of >= alarm_size ids out of
    the sets that ever grew to that size, and those number at most n // alarm_size), which is how the
    caller sizes the alarm arrays."""
    k = 0
    na = 0
    n = a.shape[0]
    for i in range(n):
        # prefetch two levels deep: the entries of the edge 2D ahead, then (now cached) their parents' for
        # the edge D ahead, so the cache misses of several finds overlap
        j = i + 2 * _PREFETCH
        if j < n:
            _prefetch(parent, a[j])
            _prefetch(parent, b[j])
        j = i + _PREFETCH
        if j < n:
            p = parent[a[j]]
            if p >= 0:
                _prefetch(parent, p)
            q = parent[b[j]]
            if q >= 0:
                _prefetch(parent, q)
        x = a[i]
        y = b[i]
        if x == y:
            continue
        rx = _find(parent, x)
        ry = _find(parent, y)
        if rx == ry:
            continue
        sx = -parent[rx]
        sy = -parent[ry]
        if by_min:
            if ry < rx:
                rx, ry = ry, rx
                sx, sy = sy, sx
        elif sx < sy:
            rx, ry = ry, rx
            sx, sy = sy, sx
        parent[ry] = rx
        parent[rx] = -(sx + sy)
        merged[k] = i
        k += 1
        if min(sx, sy) >= alarm_size:  # the caller sizes the alarm arrays for the most alarms possible
            alarm_edge[na] = i
            alarm_sa[na] = max(sx, sy)
            alarm_sb[na] = min(sx, sy)
            na += 1
    return k, na


@njit(cache=True, nogil=True)
def _roots(parent, out):
    """out[i] = the root of i (with link-by-min roots, the smallest id of i's set)."""
    n = parent.shape[0]
    for i in range(n):
        j = i + _PREFETCH
        if j < n:
            p = parent[j]
            if p >= 0:
                _prefetch(parent, p)
        out[i] = _find(parent, i)


@njit(cache=True, nogil=True)
def _labels(parent, out):
    """out[i] = the smallest id of i's set, without extra memory and without changing the partition.

    Pass 1 writes every id's root. Pass 2 walks ids ascending: the first member of a set met is its
    smallest; it is written into the root's slot, which later members read (a root slot still holding
    the root itself, with the root above the current id, means the set was not met yet).
    """
    n = parent.shape[0]
    for i in range(n):
        out[i] = _find(parent, i)
    for i in range(n):
        r = out[i]
        m = out[r]
        if m == r and r > i:
            out[r] = i
            out[i] = i
        else:
            out[i] = m


@njit(cache=True, nogil=True)
def _state_from_labels(labels, parent):
    for i in range(labels.shape[0]):
        parent[i] = labels[i]
    for i in range(labels.shape[0]):
        r = labels[i]
        if parent[r] >= 0:
            parent[r] = 0
        parent[r] -= 1


@dataclass(frozen=True, slots=True)
class UnionResult:
    merged: np.ndarray  # int64 indices of the edges that joined two different sets, in processing order
    alarm_edge: np.ndarray  # int64 edge indices of merges where both sets had >= alarm_size addresses
    alarm_size_a: np.ndarray  # int64 size of the larger set before that merge
    alarm_size_b: np.ndarray  # int64 size of the smaller set before that merge


class UnionFind:
    """A growable union-find over ids ``0..n-1`` with merge evidence and supercluster alarms.

    ``parent[i]`` is i's parent, or ``-size`` when i is a root (one array: the size costs no extra
    cache miss). ``link="min"`` (default) links the larger root id under the smaller, so every root is its
    set's smallest id and the labels come in one pass; ``link="size"`` links by size (see the module
    docstring for the trade-off).
    """

    def __init__(self, n: int = 0, *, link: str = "min") -> None:
        if link not in ("min", "size"):
            raise ValueError("link is 'min' or 'size'")
        self.link = link
        self.parent = np.full(n, -1, np.int64)

    @classmethod
    def from_labels(cls, labels: np.ndarray, *, link: str = "min") -> UnionFind:
        """Resume from a label array (``labels[i]`` = the cluster id of address ``i``: the smallest id of
        its cluster, or with ``link="size"`` any member that is its own label)."""
        uf = cls(0, link=link)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        n = len(labels)
        if n:
            if labels.min() < 0 or labels.max() >= n:
                raise ValueError("labels must be ids of members (0 <= label < n)")
            if not np.array_equal(labels[labels], labels):
                raise ValueError("every label must be its own label")
            if link == "min" and np.any(labels > np.arange(n, dtype=np.int64)):
                raise ValueError("with link='min' every label must be its cluster's smallest id")
        uf.parent = np.empty(n, np.int64)
        _state_from_labels(labels, uf.parent)
        return uf

    def __len__(self) -> int:
        return len(self.parent)

    def grow(self, n: int) -> None:
        """Make room for ids below ``n`` (new ids start as singletons)."""
        old = len(self.parent)
        if n > old:
            self.parent = np.concatenate([self.parent, np.full(n - old, -1, np.int64)])

    def union(self, a: np.ndarray, b: np.ndarray, *, alarm_size: int = 1 << 62) -> UnionResult:
        """Union edge ``i`` = (a[i], b[i]) for every i, in order; see :class:`UnionResult`."""
        a = np.ascontiguousarray(a, dtype=np.int64)
        b = np.ascontiguousarray(b, dtype=np.int64)
        if a.shape != b.shape:
            raise ValueError("edge arrays differ in length")
        if len(a):
            if min(int(a.min()), int(b.min())) < 0:
                raise ValueError("negative address id in edges")
            self.grow(max(int(a.max()), int(b.max())) + 1)
        merged = np.empty(min(len(a), max(len(self.parent) - 1, 0)), np.int64)
        alarm_size = max(int(alarm_size), 1)
        cap = len(self.parent) // alarm_size + 1
        ae, sa, sb = (np.empty(cap, np.int64) for _ in range(3))
        k, na = _union_edges(self.parent, a, b, alarm_size, self.link == "min", merged, ae, sa, sb)
        # a view when most of the buffer is used (no second copy of a large array), else a compact copy
        merged = merged[:k] if 2 * k >= len(merged) else merged[:k].copy()
        return UnionResult(merged, ae[:na].copy(), sa[:na].copy(), sb[:na].copy())

    def labels(self) -> np.ndarray:
        """The cluster id (smallest member id) of every address id, int64."""
        out = np.empty(len(self.parent), np.int64)
        if self.link == "min":
            _roots(self.parent, out)  # the root is the smallest id: one pass
        else:
            _labels(self.parent, out)
        return out

    def size_of(self, x: int) -> int:
        return int(-self.parent[_find(self.parent, x)])
