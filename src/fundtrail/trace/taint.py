"""Taint propagation: poison, haircut and FIFO, exact in integers.

Bitcoin (output level, numba kernel :func:`propagate_utxo`)
    A transaction's outputs (and its fee) inherit the taint of its inputs:

    * poison  - any tainted input taints every output (and the fee) in full;
    * haircut - the tainted amount ``T`` is shared over the slots (outputs in order, then the fee) in
      proportion to their values ``w`` (``W`` = their sum), exactly: each slot gets ``floor(T*w/W)`` and
      the ``R = T - sum(floor)`` units left over go one each to the R slots with the largest remainders
      ``(T*w) mod W``, ties to the lower slot (the fee is the last slot). This is the largest-remainder
      (Hamilton) rule: the shares add up to ``T`` exactly and no slot gets more than its value;
    * FIFO    - the inputs' satoshis, in input order, fill the outputs in output order and then the fee;
      within one input *the tainted part comes first* (the team's rule, docs/simulator.md, so an input
      that is partly tainted passes its taint on first). ``keep_order=True`` instead keeps the exact order
      of tainted and clean satoshis inside every output as a list of segments (strict FIFO; not the
      default, because the rule above is what the team's truth and reports use).

    CoinJoin transactions are always split by haircut, whatever the model. Backward tracing runs the same
    rules in reverse: a transaction's inputs inherit the taint of its outputs (haircut pro rata over the
    inputs by value; FIFO output order onto input order, the fee counted as clean; poison marks every input).

    Transactions are processed in chain order from a heap of the transactions the taint reached (descending
    for backward), so a transaction is handled once, after every tainted input it has is final; the work
    is proportional to the reachable subgraph.

EVM (account level, :class:`EvmTaint`)
    Per account and asset, in processing order. Each (account, asset) that taint reaches gets a balance
    (its ledger's prefix sum at that moment: clean) and its taint: haircut keeps a tainted amount and each
    outflow takes ``x * taint / balance`` (largest-remainder split of the taint between the outflow and
    what stays, ties to the outflow); FIFO keeps a queue of lots ``[amount, tainted]`` (inflows appended,
    outflows taken from the front, preserving order); poison taints the whole balance (clean inflows into a
    tainted account become tainted: that growth is reported as ``absorbed``). Amounts are Python ints (wei
    exceeds int64). ``fee`` rows are the sender's gas: their taint goes to fees.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from fundtrail.model.trace import PEEL_TXS

POISON, HAIRCUT, FIFO = 0, 1, 2
MODELS = {"poison": POISON, "haircut": HAIRCUT, "fifo": FIFO}

# node status (UTXO kernel)
UNTOUCHED, FOLLOWED, ENDPOINT, MIXER, BRIDGE, UNSPENT, STOP_HOPS, STOP_DUST, BURNED = range(9)
# address stop kinds
S_NONE, S_SERVICE, S_MIXER, S_BRIDGE = 0, 1, 2, 3
# per-transaction sinks (forward: fee; backward: coinbase / inputs the workspace lacks)
SINK_FEE, SINK_COINBASE, SINK_MISSING = 0, 1, 2

I64_MAX = np.iinfo(np.int64).max


# --- exact integer helpers ---------------------------------------------------------------------------

@njit(cache=True)
def muldiv(a: int, b: int, c: int) -> tuple[int, int]:
    """``(q, r)`` with ``a*b = q*c + r``, ``0 <= r < c``; for ``0 <= a <= c`` and ``0 <= b < 2**53``.

    The product can exceed int64 (satoshi * satoshi): the quotient is estimated in float64 (error a few
    units) and the exact remainder recovered with wrapping 64-bit arithmetic, then corrected.
    """
    if a == 0 or b == 0:
        return 0, 0
    if a <= I64_MAX // b:
        p = a * b
        return p // c, p % c
    q = np.int64(np.float64(a) * (np.float64(b) / np.float64(c)))
    r = np.int64(np.uint64(a) * np.uint64(b) - np.uint64(q) * np.uint64(c))
    while r < 0:
        q -= 1
        r += c
    while r >= c:
        q += 1
        r -= c
    return q, r


@njit(cache=True)
def split_largest_remainder(total: int, weights: np.ndarray, out: np.ndarray) -> None:
    """Share ``total`` over ``weights`` exactly (largest remainder, ties to the lower index) into ``out``."""
    k = len(weights)
    W = np.int64(0)
    for i in range(k):
        W += weights[i]
    if W == 0 or total == 0:
        for i in range(k):
            out[i] = 0
        return
    rem = np.empty(k, np.int64)
    given = np.int64(0)
    for i in range(k):
        q, r = muldiv(total, weights[i], W)
        out[i] = q
        rem[i] = r
        given += q
    left = total - given
    if left > 0:
        order = np.argsort(-rem, kind="mergesort")
        j = 0
        while left > 0:
            out[order[j]] += 1
            left -= 1
            j += 1


def split_exact(total: int, weights: list[int]) -> list[int]:
    """The same largest-remainder rule in Python ints (wei, token units): shares adding up to ``total``."""
    W = sum(weights)
    if W == 0 or total == 0:
        return [0] * len(weights)
    qr = [divmod(total * w, W) for w in weights]
    out = [q for q, _ in qr]
    left = total - sum(out)
    if left:
        for i in sorted(range(len(weights)), key=lambda i: (-qr[i][1], i))[:left]:
            out[i] += 1
    return out


# --- a heap of int64 in numba ------------------------------------------------------------------------

@njit(cache=True)
def _hpush(h: np.ndarray, n: int, v: int) -> tuple[np.ndarray, int]:
    if n == len(h):
        h2 = np.empty(2 * len(h) + 16, np.int64)
        h2[:n] = h[:n]
        h = h2
    h[n] = v
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if h[p] <= h[i]:
            break
        h[p], h[i] = h[i], h[p]
        i = p
    return h, n + 1


@njit(cache=True)
def _hpop(h: np.ndarray, n: int) -> tuple[int, int]:
    top = h[0]
    n -= 1
    h[0] = h[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        c = left
        if left + 1 < n and h[left + 1] < h[left]:
            c = left + 1
        if h[i] <= h[c]:
            break
        h[i], h[c] = h[c], h[i]
        i = c
    return top, n


@njit(cache=True)
def _grow(a: np.ndarray, need: int) -> np.ndarray:
    if need <= len(a):
        return a
    b = np.empty(max(need, 2 * len(a) + 64), a.dtype)
    b[:len(a)] = a
    return b


# --- the UTXO kernel ---------------------------------------------------------------------------------

@njit(cache=True)
def _classify(node: int, is_seed: bool, forward: bool, taint: np.ndarray, status: np.ndarray,
              out_addr: np.ndarray, addr_stop: np.ndarray, out_opret: np.ndarray, out_spent_tx: np.ndarray,
              out_tx: np.ndarray, dust: int, node_stop: np.ndarray) -> int:
    """Set the node's status; return the tx to queue next (or -1). ``node_stop`` (empty, or one flag per
    output): outputs that end the trace as endpoints whatever their address (a named incident's seed
    coins, backward)."""
    if taint[node] <= 0:
        return -1
    a = out_addr[node]
    if not is_seed:
        if len(node_stop) > 0 and node_stop[node]:
            status[node] = ENDPOINT
            return -1
        k = addr_stop[a] if 0 <= a < len(addr_stop) else S_NONE
        if k == S_SERVICE:
            status[node] = ENDPOINT
            return -1
        if k == S_MIXER:
            status[node] = MIXER
            return -1
        if k == S_BRIDGE:
            status[node] = BRIDGE
            return -1
        if forward and out_opret[node]:
            status[node] = BURNED
            return -1
        if dust > 0 and taint[node] < dust:
            status[node] = STOP_DUST
            return -1
    if forward:
        t = out_spent_tx[node]
        if t < 0:
            status[node] = UNSPENT
            return -1
    else:
        t = out_tx[node]
    status[node] = FOLLOWED
    return t


PEEL_RATIO = 2  # a peel step's continuing output is at least this many times its payment
PEEL_MIN_RUN = 3  # a peel chain: at least this many consecutive peel steps along the continuations


@njit(cache=True)
def peel_big(t: int, tx_out_ptr: np.ndarray, tx_in_ptr: np.ndarray, in_node: np.ndarray, out_value: np.ndarray,
             out_addr: np.ndarray, out_opret: np.ndarray) -> int:
    """The continuing (large) output of ``t`` when ``t`` has the shape of a peel step, else -1: one
    input (the chain's coin), exactly two value outputs (neither OP_RETURN), the larger at least ``PEEL_RATIO`` times
    the smaller, and the payment going to another owner than the continuation and the coin (its address
    differs from both: a payment back to the payer's own address is change, not a peel). Shape only, no tags."""
    if t < 0:
        return -1
    o0, o1 = tx_out_ptr[t], tx_out_ptr[t + 1]
    n_in = tx_in_ptr[t + 1] - tx_in_ptr[t]
    if o1 - o0 != 2 or n_in != 1:
        return -1
    a, b = o0, o0 + 1
    if out_opret[a] or out_opret[b] or out_value[a] <= 0 or out_value[b] <= 0:
        return -1
    if out_value[a] >= out_value[b]:
        big, small = a, b
    else:
        big, small = b, a
    if out_value[big] < PEEL_RATIO * out_value[small]:
        return -1
    pay = out_addr[small]
    if pay >= 0 and pay == out_addr[big]:
        return -1
    q = in_node[tx_in_ptr[t]]
    if pay >= 0 and q >= 0 and out_addr[q] == pay:
        return -1
    return big


@njit(cache=True)
def peel_link(t_prev: int, t: int, tx_out_ptr: np.ndarray, tx_in_ptr: np.ndarray, in_node: np.ndarray,
              out_value: np.ndarray, out_addr: np.ndarray, out_opret: np.ndarray, out_tx: np.ndarray,
              out_spent_tx: np.ndarray, min_run: int = PEEL_MIN_RUN) -> bool:
    """Whether the step from peel step ``t_prev`` into peel step ``t`` (which spends ``t_prev``'s
    continuation) lies in a peel *chain*: a run of at least ``PEEL_MIN_RUN`` consecutive peel steps along
    the continuations, looking back from ``t_prev`` and ahead from ``t``. The same answer in either
    direction of a trace (it is a property of the chain, not of the walk); at most ``PEEL_MIN_RUN``
    transactions looked at. ``min_run`` 2: any two consecutive peel steps (no look-around; the exposure
    index uses it, since its incremental update cannot look ahead of the newest block)."""
    n = 2
    u = t_prev
    while n < min_run:
        if tx_in_ptr[u + 1] - tx_in_ptr[u] != 1:
            break
        q = in_node[tx_in_ptr[u]]
        if q < 0:
            break
        v = out_tx[q]
        if peel_big(v, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) != q:
            break
        u = v
        n += 1
    u = t
    while n < min_run:
        big = peel_big(u, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret)
        if big < 0:
            break
        v = out_spent_tx[big]
        if v < 0 or peel_big(v, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) < 0:
            break
        u = v
        n += 1
    return n >= min_run


@njit(cache=True, nogil=True)  # traces in service threads run side by side (each with its own scratch)
def propagate_utxo(forward: bool, model: int, tx_out_ptr: np.ndarray, tx_in_ptr: np.ndarray,
                   in_node: np.ndarray, in_value: np.ndarray, out_value: np.ndarray, out_addr: np.ndarray,
                   out_tx: np.ndarray, out_spent_tx: np.ndarray, out_opret: np.ndarray, tx_fee: np.ndarray,
                   tx_coinjoin: np.ndarray, addr_stop: np.ndarray, seed_nodes: np.ndarray,
                   seed_taint: np.ndarray, max_hops: int, dust: int, keep_order: bool,
                   peel_txs: int, node_stop: np.ndarray, peel_run: int, taint: np.ndarray, status: np.ndarray,
                   hop: np.ndarray, queued: np.ndarray, seg_start: np.ndarray, seg_cnt: np.ndarray):
    """Propagate taint from seed outputs. ``peel_txs``: how many transactions the trace may pass for free
    along peel chains (:func:`peel_big`, :func:`peel_link`: a chain costs one hop); 0 counts every
    transaction as a hop.

    ``taint``, ``status``, ``hop`` (one per output), ``queued`` (one per transaction) and, for FIFO with
    ``keep_order``, ``seg_start`` / ``seg_cnt`` (one per output, else empty) are scratch: all zero on entry,
    and all zero again on return (only the entries this call touched are reset), so the cost is the
    reachable subgraph's, not the chain's. Returns, sparse: the outputs the taint reached (sorted) with their
    taint/status/hop, the processed txs (in order) with their sink amount (fee forward; coinbase/missing
    backward) and kind, hop and best tainted predecessor (for evidence paths), the FIFO segments of the
    reached outputs (start -1: none), the absorbed amount (poison's growth), the number of transactions
    passed for free and the first transaction the peel allowance no longer covered (-1: it was never used
    up)."""
    fifo = model == FIFO
    segs = fifo and keep_order  # seg_start / seg_cnt are one per output only then (else empty)
    seg_amt = np.empty(1024 if fifo else 0, np.int64)
    seg_flag = np.empty(1024 if fifo else 0, np.int8)
    nseg = 0
    heap = np.empty(1024, np.int64)
    hn = 0
    done = np.empty(256, np.int64)
    sink = np.empty(256, np.int64)
    sink_kind = np.empty(256, np.int8)
    done_hop = np.empty(256, np.int32)
    done_best = np.empty(256, np.int64)
    nd = 0
    # every output whose scratch entries this call may change, and every transaction it queued: what is
    # returned (sparse) and what is reset before returning
    touched = np.empty(256, np.int64)
    ntouch = 0
    qlist = np.empty(256, np.int64)
    nq = 0
    absorbed = np.int64(0)
    n_free = 0
    peel_hit = np.int64(-1)
    # scratch
    s_amt = np.empty(64, np.int64)
    s_flag = np.empty(64, np.int8)
    w = np.empty(64, np.int64)
    share = np.empty(64, np.int64)

    for i in range(len(seed_nodes)):
        nd_ = seed_nodes[i]
        touched = _grow(touched, ntouch + 1)
        touched[ntouch] = nd_
        ntouch += 1
        add = seed_taint[i]
        if add > out_value[nd_] - taint[nd_]:
            add = out_value[nd_] - taint[nd_]
        taint[nd_] += add
    for i in range(len(seed_nodes)):
        nd_ = seed_nodes[i]
        if status[nd_] != UNTOUCHED:
            continue
        t = _classify(nd_, True, forward, taint, status, out_addr, addr_stop, out_opret, out_spent_tx, out_tx,
                      dust, node_stop)
        if t >= 0 and not queued[t]:
            queued[t] = True
            qlist = _grow(qlist, nq + 1)
            qlist[nq] = t
            nq += 1
            heap, hn = _hpush(heap, hn, t if forward else -t)

    while hn > 0:
        v, hn = _hpop(heap, hn)
        t = v if forward else -v
        i0, i1 = tx_in_ptr[t], tx_in_ptr[t + 1]
        o0, o1 = tx_out_ptr[t], tx_out_ptr[t + 1]
        # the tainted side of t: inputs (forward) or outputs (backward)
        h = np.int64(2147483647)
        T = np.int64(0)
        best = np.int64(-1)
        bestv = np.int64(-1)
        # a hop costs 1, except along a peel chain: the continuing output of a peel step spent by
        # the next peel step of a run of >= PEEL_MIN_RUN (either direction) costs nothing, so a chain of
        # any length is one hop; at most peel_txs transactions per trace pass for free
        t_big = peel_big(t, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) if peel_txs > 0 else -1
        h_free = np.int64(2147483647)
        if forward:
            for j in range(i0, i1):
                p = in_node[j]
                if p >= 0 and status[p] == FOLLOWED and out_spent_tx[p] == t:
                    T += taint[p]
                    c = hop[p] + 1
                    if t_big >= 0 and hop[p] < h_free:
                        tp = out_tx[p]
                        if peel_big(tp, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) == p and \
                                peel_link(tp, t, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret,
                                          out_tx, out_spent_tx, peel_run):
                            h_free = hop[p]
                    if c < h:
                        h = c
                    if taint[p] > bestv:
                        bestv = taint[p]
                        best = p
        else:
            for o in range(o0, o1):
                if status[o] == FOLLOWED:
                    T += taint[o]
                    c = hop[o] + 1
                    if o == t_big and hop[o] < h_free:
                        tn = out_spent_tx[o]
                        if peel_big(tn, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) >= 0 and \
                                peel_link(t, tn, tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret,
                                          out_tx, out_spent_tx, peel_run):
                            h_free = hop[o]
                    if c < h:
                        h = c
                    if taint[o] > bestv:
                        bestv = taint[o]
                        best = o
        if T > 0 and h_free < h:
            if n_free < peel_txs:
                h = h_free
                n_free += 1
            elif peel_hit < 0:
                peel_hit = t
        if T == 0:
            continue
        if h > max_hops:
            if forward:
                for j in range(i0, i1):
                    p = in_node[j]
                    if p >= 0 and status[p] == FOLLOWED and out_spent_tx[p] == t:
                        status[p] = STOP_HOPS
            else:
                for o in range(o0, o1):
                    if status[o] == FOLLOWED:
                        status[o] = STOP_HOPS
            continue
        # slots: forward = outputs then fee; backward = inputs
        V_in = np.int64(0)
        for j in range(i0, i1):
            V_in += in_value[j]
        V_out = np.int64(0)
        for o in range(o0, o1):
            V_out += out_value[o]
        fee = V_in - V_out if V_in > V_out else np.int64(0)
        if forward:
            k = (o1 - o0) + 1
        else:
            k = (i1 - i0) + 1  # the last slot: coinbase / unexplained (no inputs, or outputs > inputs)
        if k > len(w):
            w = np.empty(2 * k, np.int64)
            share = np.empty(2 * k, np.int64)
        if forward:
            for o in range(o0, o1):
                w[o - o0] = out_value[o]
            w[k - 1] = fee
        else:
            for j in range(i0, i1):
                w[j - i0] = in_value[j]
            w[k - 1] = V_out + fee - V_in if V_out + fee > V_in else np.int64(0)
        m = model
        if tx_coinjoin[t]:
            m = HAIRCUT
        if m == POISON:
            tot = np.int64(0)
            for s in range(k):
                share[s] = w[s]
                tot += w[s]
            absorbed += tot - T
        elif m == HAIRCUT:
            split_largest_remainder(T, w[:k], share[:k])
        else:
            # FIFO: the stream of the tainted side's satoshis in order, cut into the slots in order
            ns = 0
            if forward:
                for j in range(i0, i1):
                    p = in_node[j]
                    tainted = p >= 0 and status[p] == FOLLOWED and out_spent_tx[p] == t
                    if tainted and segs and seg_cnt[p] > 0:
                        for q in range(seg_start[p], seg_start[p] + seg_cnt[p]):
                            s_amt = _grow(s_amt, ns + 1)
                            s_flag = _grow(s_flag, ns + 1)
                            s_amt[ns] = seg_amt[q]
                            s_flag[ns] = seg_flag[q]
                            ns += 1
                    elif tainted:
                        s_amt = _grow(s_amt, ns + 2)
                        s_flag = _grow(s_flag, ns + 2)
                        s_amt[ns] = taint[p]
                        s_flag[ns] = 1
                        s_amt[ns + 1] = in_value[j] - taint[p]
                        s_flag[ns + 1] = 0
                        ns += 2
                    else:
                        s_amt = _grow(s_amt, ns + 1)
                        s_flag = _grow(s_flag, ns + 1)
                        s_amt[ns] = in_value[j]
                        s_flag[ns] = 0
                        ns += 1
            else:
                for o in range(o0, o1):
                    if status[o] == FOLLOWED and segs and seg_cnt[o] > 0:
                        for q in range(seg_start[o], seg_start[o] + seg_cnt[o]):
                            s_amt = _grow(s_amt, ns + 1)
                            s_flag = _grow(s_flag, ns + 1)
                            s_amt[ns] = seg_amt[q]
                            s_flag[ns] = seg_flag[q]
                            ns += 1
                    elif status[o] == FOLLOWED:
                        s_amt = _grow(s_amt, ns + 2)
                        s_flag = _grow(s_flag, ns + 2)
                        s_amt[ns] = taint[o]
                        s_flag[ns] = 1
                        s_amt[ns + 1] = out_value[o] - taint[o]
                        s_flag[ns + 1] = 0
                        ns += 2
                    else:
                        s_amt = _grow(s_amt, ns + 1)
                        s_flag = _grow(s_flag, ns + 1)
                        s_amt[ns] = out_value[o]
                        s_flag[ns] = 0
                        ns += 1
                s_amt = _grow(s_amt, ns + 1)
                s_flag = _grow(s_flag, ns + 1)
                s_amt[ns] = fee
                s_flag[ns] = 0
                ns += 1
            # cut the stream into the slots
            cur = 0
            left_in_cur = s_amt[0] if ns > 0 else np.int64(0)
            for s in range(k):
                need = w[s]
                got = np.int64(0)
                node = np.int64(-1)
                if s < k - 1:
                    if forward:
                        node = o0 + s
                    else:
                        node = in_node[i0 + s]
                start = nseg
                cnt = 0
                while need > 0 and cur < ns:
                    if left_in_cur == 0:
                        cur += 1
                        if cur < ns:
                            left_in_cur = s_amt[cur]
                        continue
                    take = need if need < left_in_cur else left_in_cur
                    fl = s_flag[cur]
                    if fl == 1:
                        got += take
                    if node >= 0 and keep_order:
                        if cnt > 0 and seg_flag[nseg - 1] == fl:
                            seg_amt[nseg - 1] += take
                        else:
                            seg_amt = _grow(seg_amt, nseg + 1)
                            seg_flag = _grow(seg_flag, nseg + 1)
                            seg_amt[nseg] = take
                            seg_flag[nseg] = fl
                            nseg += 1
                            cnt += 1
                    need -= take
                    left_in_cur -= take
                share[s] = got
                if node >= 0 and keep_order:
                    if got > 0 and status[node] == UNTOUCHED:
                        seg_start[node] = start
                        seg_cnt[node] = cnt
                    else:
                        nseg = start  # nothing tainted (or already set): drop the segments
        # the consumed side is done; hand the shares to the other side
        if forward:
            for j in range(i0, i1):
                p = in_node[j]
                if p >= 0 and status[p] == FOLLOWED and out_spent_tx[p] == t:
                    status[p] = FOLLOWED  # consumed (taint moved on); stays FOLLOWED
        sink_amt = share[k - 1]
        for s in range(k - 1):
            if forward:
                node = o0 + s
            else:
                node = in_node[i0 + s]
                if node < 0:
                    sink_amt += share[s]
                    continue
            if share[s] <= 0:
                continue
            if status[node] != UNTOUCHED:
                # already carries seed taint: cap at its value (overlap leaves the accounting)
                room = out_value[node] - taint[node]
                add = share[s] if share[s] < room else room
                absorbed -= share[s] - add
                taint[node] += add
                continue
            touched = _grow(touched, ntouch + 1)
            touched[ntouch] = node
            ntouch += 1
            taint[node] = share[s]
            hop[node] = h
            nt = _classify(node, False, forward, taint, status, out_addr, addr_stop, out_opret, out_spent_tx,
                           out_tx, dust, node_stop)
            if nt >= 0 and not queued[nt]:
                queued[nt] = True
                qlist = _grow(qlist, nq + 1)
                qlist[nq] = nt
                nq += 1
                heap, hn = _hpush(heap, hn, nt if forward else -nt)
        done = _grow(done, nd + 1)
        sink = _grow(sink, nd + 1)
        sink_kind = _grow(sink_kind, nd + 1)
        done_hop = _grow(done_hop, nd + 1)
        done_best = _grow(done_best, nd + 1)
        done_hop[nd] = h
        done_best[nd] = best
        done[nd] = t
        sink[nd] = sink_amt
        if forward:
            sink_kind[nd] = SINK_FEE
        elif i1 == i0:
            sink_kind[nd] = SINK_COINBASE
        else:
            sink_kind[nd] = SINK_MISSING
        nd += 1
    # the sparse result: the outputs the taint reached (status set), in output order
    cand = np.unique(touched[:ntouch])
    keep = np.zeros(len(cand), np.bool_)
    for i in range(len(cand)):
        keep[i] = status[cand[i]] != UNTOUCHED
    nodes = cand[keep]
    n_taint = np.empty(len(nodes), np.int64)
    n_status = np.empty(len(nodes), np.int8)
    n_hop = np.empty(len(nodes), np.int32)
    n_seg_start = np.zeros(len(nodes) if segs else 0, np.int64)
    n_seg_cnt = np.zeros(len(nodes) if segs else 0, np.int32)
    for i in range(len(nodes)):
        o = nodes[i]
        n_taint[i] = taint[o]
        n_status[i] = status[o]
        n_hop[i] = hop[o]
        if segs:
            n_seg_start[i] = seg_start[o] if seg_cnt[o] > 0 else -1
            n_seg_cnt[i] = seg_cnt[o]
    # leave the scratch as it came: all zero (only what this call touched is visited)
    for i in range(len(cand)):
        o = cand[i]
        taint[o] = 0
        status[o] = UNTOUCHED
        hop[o] = 0
        if segs:
            seg_start[o] = 0
            seg_cnt[o] = 0
    for i in range(nq):
        queued[qlist[i]] = False
    return (nodes, n_taint, n_status, n_hop, done[:nd], sink[:nd], sink_kind[:nd], done_hop[:nd], done_best[:nd],
            n_seg_start, n_seg_cnt, seg_amt[:nseg], seg_flag[:nseg], absorbed, n_free, peel_hit)


@dataclass(slots=True)
class UtxoOutcome:
    """A kernel run, sparse: only the outputs the taint reached and the transactions it went through.

    ``nodes`` (sorted output ids, the reachable subgraph's outputs: status not ``UNTOUCHED``) with their
    ``node_taint`` / ``node_status`` / ``node_hop``; ``done`` (processed transactions, in processing order)
    with ``sink`` / ``sink_kind`` / ``done_hop`` / ``done_best``. Any other output has taint 0, status
    ``UNTOUCHED`` and hop 0; any other transaction hop -1 and no best predecessor (-1): the ``*_of`` lookups
    answer for any ids. ``seg_start`` / ``seg_cnt``: per node of ``nodes`` (FIFO with ``keep_order`` only,
    else empty), its segments in ``seg_amt`` / ``seg_flag`` (start -1: none)."""

    nodes: np.ndarray  # int64, sorted
    node_taint: np.ndarray  # int64
    node_status: np.ndarray  # int8
    node_hop: np.ndarray  # int32
    done: np.ndarray  # processed txs in order
    sink: np.ndarray  # per processed tx: fee share (forward) / coinbase or missing-input share (backward)
    sink_kind: np.ndarray
    done_hop: np.ndarray  # per processed tx: its hop
    done_best: np.ndarray  # per processed tx: its best (largest) tainted predecessor output
    seg_start: np.ndarray
    seg_cnt: np.ndarray
    seg_amt: np.ndarray
    seg_flag: np.ndarray
    absorbed: int
    peel_free_txs: int = 0  # transactions passed for free along peel chains
    peel_hit: int = -1  # the first transaction the peel allowance no longer covered (-1: never used up)
    _tx_order: np.ndarray | None = field(default=None, repr=False)

    def _pos(self, keys: np.ndarray, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(ids, np.int64)
        if not len(keys):
            return np.zeros(q.shape, np.int64), np.zeros(q.shape, np.bool_)
        pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        return pos, keys[pos] == q

    def _node(self, vals: np.ndarray, ids: Any, default: int) -> Any:
        pos, hit = self._pos(self.nodes, ids)
        res = np.where(hit, vals[pos] if len(vals) else default, default).astype(vals.dtype)
        return res if res.ndim else res.item()

    def taint_of(self, ids: Any) -> Any:
        """The taint of outputs ``ids`` (an int, or an array of them); 0 where the taint did not reach."""
        return self._node(self.node_taint, ids, 0)

    def status_of(self, ids: Any) -> Any:
        return self._node(self.node_status, ids, UNTOUCHED)

    def hop_of(self, ids: Any) -> Any:
        return self._node(self.node_hop, ids, 0)

    def _tx(self, vals: np.ndarray, ids: Any) -> Any:
        if self._tx_order is None:
            self._tx_order = np.argsort(self.done, kind="stable")
        order = self._tx_order
        pos, hit = self._pos(self.done[order], ids)
        res = np.where(hit, vals[order[pos]] if len(order) else -1, -1).astype(vals.dtype)
        return res if res.ndim else res.item()

    def tx_hop_of(self, ids: Any) -> Any:
        """The hop of transactions ``ids``; -1 where not processed."""
        return self._tx(self.done_hop, ids)

    def tx_best_of(self, ids: Any) -> Any:
        """The best tainted predecessor output of transactions ``ids``; -1 where not processed."""
        return self._tx(self.done_best, ids)

    def with_status(self, *codes: int) -> np.ndarray:
        """The reached outputs with one of the status ``codes`` (sorted)."""
        return self.nodes[np.isin(self.node_status, np.asarray(codes, np.int8))]


class _Scratch:
    """The kernel's dense per-output / per-transaction arrays, all zero between runs."""

    __slots__ = ("taint", "status", "hop", "queued", "seg_start", "seg_cnt")

    def __init__(self, nout: int, ntx: int) -> None:
        # np.zeros maps zero pages lazily: a run pays for the pages it touches, never for the whole chain
        self.taint = np.zeros(nout, np.int64)
        self.status = np.zeros(nout, np.int8)
        self.hop = np.zeros(nout, np.int32)
        self.queued = np.zeros(ntx, np.bool_)
        self.seg_start = np.zeros(0, np.int64)  # FIFO keep_order only, made on first use
        self.seg_cnt = np.zeros(0, np.int32)


class ScratchPool:
    """Reusable kernel scratch for one graph: a run takes one (a new one when all are in use, so concurrent
    traces in service threads each have their own), the kernel leaves it zeroed, the run gives it back. At
    most ``keep`` idle ones are kept."""

    def __init__(self, nout: int, ntx: int, keep: int = 2) -> None:
        self.nout, self.ntx, self.keep = nout, ntx, keep
        self._free: list[_Scratch] = []
        self._lock = threading.Lock()

    def take(self) -> _Scratch:
        with self._lock:
            if self._free:
                return self._free.pop()
        return _Scratch(self.nout, self.ntx)

    def give(self, s: _Scratch) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(s)

    def idle(self) -> int:
        with self._lock:
            return len(self._free)


_POOLS_LOCK = threading.Lock()


def scratch_pool(graph: Any) -> ScratchPool:
    """The graph's scratch pool (kept with the graph, in its ``aux`` cache)."""
    with _POOLS_LOCK:
        pool = graph.aux.get("kernel_scratch")
        if pool is None or pool.nout != graph.nout or pool.ntx != graph.ntx:
            pool = graph.aux["kernel_scratch"] = ScratchPool(graph.nout, graph.ntx)
        return pool


def run_utxo(graph, model: str, forward: bool, tx_coinjoin: np.ndarray, addr_stop: np.ndarray,
             seed_nodes: np.ndarray, seed_taint: np.ndarray, max_hops: int, dust: int,
             keep_order: bool = False, peel_txs: int = PEEL_TXS, node_stop: np.ndarray | None = None,
             peel_run: int = PEEL_MIN_RUN) -> UtxoOutcome:
    pool = scratch_pool(graph)
    s = pool.take()
    segs = MODELS[model] == FIFO and keep_order
    if segs and len(s.seg_cnt) != graph.nout:
        s.seg_start = np.zeros(graph.nout, np.int64)
        s.seg_cnt = np.zeros(graph.nout, np.int32)
    r = propagate_utxo(forward, MODELS[model], graph.tx_out_ptr, graph.tx_in_ptr, graph.in_node, graph.in_value,
                       graph.out_value, graph.out_addr, graph.out_tx, graph.out_spent_tx, graph.out_opret,
                       graph.tx_fee, tx_coinjoin, addr_stop, np.asarray(seed_nodes, np.int64),
                       np.asarray(seed_taint, np.int64), int(max_hops), int(dust), bool(keep_order),
                       int(peel_txs), np.zeros(0, np.bool_) if node_stop is None else node_stop, int(peel_run),
                       s.taint, s.status, s.hop, s.queued, s.seg_start if segs else _NO_I64,
                       s.seg_cnt if segs else _NO_I32)
    # returned only after a run that ended normally (the kernel reset what it touched); a run that raised
    # drops its scratch
    pool.give(s)
    return UtxoOutcome(*r[:-3], absorbed=int(r[-3]), peel_free_txs=int(r[-2]), peel_hit=int(r[-1]))


_NO_I64 = np.zeros(0, np.int64)
_NO_I32 = np.zeros(0, np.int32)


# --- EVM: account-level ledgers in Python ints ----------------------------------------------------------

@dataclass(slots=True)
class AcctState:
    bal: int = 0
    taint: int = 0
    lots: deque | None = None  # FIFO: [amount, tainted] lots, oldest first
    hop: int = 0
    pred: int = -1  # the ledger entry that brought the most taint (evidence paths)
    pred_amt: int = 0
    since: int = 0  # time the account was first tainted
    cont: bool = False  # reached by a continuation (its sender forwarded most of its balance on)


@dataclass(slots=True)
class Move:
    """What one ledger entry carried: ``tainted`` of ``amount``, and for FIFO the lots in order."""

    amount: int
    tainted: int
    lots: list | None = None


@dataclass(slots=True)
class EvmTaint:
    """Per-(account, asset) taint over an :class:`~fundtrail.trace.graph.EvmLedger`.

    The service drives it: :meth:`outflow` takes the taint an entry carries out of its sender,
    :meth:`inflow` puts taint into a receiver. Balances come from the ledger's own history, so an
    account first reached at entry ``e`` starts with its clean balance just before ``e``.
    """

    ledger: object
    model: str
    states: dict[tuple[int, int], AcctState] = field(default_factory=dict)
    absorbed: dict[int, int] = field(default_factory=dict)  # asset -> poison growth

    def balance_before(self, acct: int, asset: int, e: int) -> int:
        L = self.ledger
        ents = L.entries(acct)
        pos = int(np.searchsorted(ents, e))
        bal = 0
        for x in ents[:pos].tolist():
            if L.asset[x] != asset:
                continue
            a = L.amount(x)
            if L.dst[x] == acct and L.src[x] != acct and L.kind[x] != KIND_FEE:
                bal += a
            elif L.src[x] == acct and L.dst[x] != acct:
                bal -= a
        return max(bal, 0)

    def state(self, acct: int, asset: int) -> AcctState | None:
        return self.states.get((acct, asset))

    def ensure(self, acct: int, asset: int, e: int, hop: int, when: int) -> AcctState:
        st = self.states.get((acct, asset))
        if st is None:
            bal = self.balance_before(acct, asset, e)
            st = AcctState(bal=bal, taint=0, lots=deque([[bal, False]]) if self.model == "fifo" and bal else
                           (deque() if self.model == "fifo" else None), hop=hop, since=when)
            if self.model == "poison" and bal:
                st.taint = bal
                self.absorbed[asset] = self.absorbed.get(asset, 0) + bal
            self.states[(acct, asset)] = st
        return st

    def outflow(self, st: AcctState, x: int, asset: int) -> Move:
        """Take ``x`` out of the account; returns the taint it carries."""
        if x > st.bal:  # the workspace lacks part of the history: the missing funds count as clean
            gap = x - st.bal
            st.bal += gap
            if self.model == "fifo":
                st.lots.appendleft([gap, False])
            elif self.model == "poison" and st.taint:
                st.taint += gap
                self.absorbed[asset] = self.absorbed.get(asset, 0) + gap
        if self.model == "fifo":
            lots: list = []
            need = x
            tainted = 0
            while need > 0 and st.lots:
                lot = st.lots[0]
                take = min(need, lot[0])
                if lots and lots[-1][1] == lot[1]:
                    lots[-1][0] += take
                else:
                    lots.append([take, lot[1]])
                if lot[1]:
                    tainted += take
                lot[0] -= take
                need -= take
                if lot[0] == 0:
                    st.lots.popleft()
            st.bal -= x
            st.taint -= tainted
            return Move(x, tainted, lots)
        if self.model == "poison":
            t = x if st.taint else 0
        else:
            t = split_exact(st.taint, [x, st.bal - x])[0] if st.taint else 0
        st.bal -= x
        st.taint -= t
        if self.model == "poison" and st.bal == 0:
            st.taint = 0
        return Move(x, t)

    def inflow(self, st: AcctState, mv: Move, asset: int) -> None:
        st.bal += mv.amount
        if self.model == "fifo":
            if mv.lots is not None:
                for a, f in mv.lots:
                    if st.lots and st.lots[-1][1] == f:
                        st.lots[-1][0] += a
                    else:
                        st.lots.append([a, f])
            else:
                if mv.tainted:
                    st.lots.append([mv.tainted, True])
                if mv.amount - mv.tainted:
                    st.lots.append([mv.amount - mv.tainted, False])
            st.taint += mv.tainted
        elif self.model == "poison":
            clean = mv.amount - mv.tainted
            if st.taint or mv.tainted:
                if st.taint == 0 and st.bal - mv.amount:
                    self.absorbed[asset] = self.absorbed.get(asset, 0) + st.bal - mv.amount
                st.taint = st.bal
                if clean:
                    self.absorbed[asset] = self.absorbed.get(asset, 0) + clean
        else:
            st.taint += mv.tainted


KIND_FEE = 6  # EvmLedger.KINDS.index("fee")


def scale_move(mv: Move, new_amount: int, model: str) -> Move:
    """The taint of ``mv`` carried over to ``new_amount`` of another asset or chain (swap, bridge)."""
    if mv.amount == 0 or mv.tainted == 0:
        return Move(new_amount, 0)
    if model == "poison":
        return Move(new_amount, new_amount)
    # pro rata, rounded down (the assets differ, so there is no remainder to place)
    return Move(new_amount, min((mv.tainted * new_amount) // mv.amount, new_amount))


__all__ = ["propagate_utxo", "run_utxo", "UtxoOutcome", "ScratchPool", "scratch_pool", "muldiv", "split_largest_remainder", "split_exact", "EvmTaint",
           "Move", "AcctState", "scale_move"]
