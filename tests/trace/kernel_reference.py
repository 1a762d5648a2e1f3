"""The UTXO taint kernel as it was before it became sparse (dense arrays of the chain's size on every call),
kept verbatim as the reference the sparse kernel is compared with (test_kernel_sparse.py)."""

from __future__ import annotations

import numpy as np
from numba import njit

from fundtrail.trace.taint import (
    FIFO,
    FOLLOWED,
    HAIRCUT,
    POISON,
    SINK_COINBASE,
    SINK_FEE,
    SINK_MISSING,
    STOP_HOPS,
    UNTOUCHED,
    _classify,
    _grow,
    _hpop,
    _hpush,
    peel_big,
    peel_link,
    split_largest_remainder,
)


@njit(cache=True)
def propagate_dense(forward: bool, model: int, tx_out_ptr: np.ndarray, tx_in_ptr: np.ndarray,
                   in_node: np.ndarray, in_value: np.ndarray, out_value: np.ndarray, out_addr: np.ndarray,
                   out_tx: np.ndarray, out_spent_tx: np.ndarray, out_opret: np.ndarray, tx_fee: np.ndarray,
                   tx_coinjoin: np.ndarray, addr_stop: np.ndarray, seed_nodes: np.ndarray,
                   seed_taint: np.ndarray, max_hops: int, dust: int, keep_order: bool,
                   peel_txs: int, node_stop: np.ndarray, peel_run: int):
    """Propagate taint from seed outputs. ``peel_txs``: how many transactions the trace may pass for free
    along peel chains (:func:`peel_big`, :func:`peel_link`: a chain costs one hop); 0 counts every
    transaction as a hop. Returns per-node taint/status/hop, the processed txs (in order)
    with their hop, sink amount (fee forward; coinbase/missing backward) and kind, the best tainted
    predecessor of each processed tx (for evidence paths), the FIFO segments, the absorbed amount
    (poison's growth), the number of transactions passed for free and the first transaction the peel
    allowance no longer covered (-1: it was never used up)."""
    nout = len(out_value)
    ntx = len(tx_fee)
    taint = np.zeros(nout, np.int64)
    status = np.zeros(nout, np.int8)
    hop = np.zeros(nout, np.int32)
    queued = np.zeros(ntx, np.bool_)
    tx_hop = np.full(ntx, -1, np.int32)
    tx_best = np.full(ntx, -1, np.int64)
    fifo = model == FIFO
    seg_start = np.full(nout if fifo else 0, -1, np.int64)
    seg_cnt = np.zeros(nout if fifo else 0, np.int32)
    seg_amt = np.empty(1024 if fifo else 0, np.int64)
    seg_flag = np.empty(1024 if fifo else 0, np.int8)
    nseg = 0
    heap = np.empty(1024, np.int64)
    hn = 0
    done = np.empty(256, np.int64)
    sink = np.empty(256, np.int64)
    sink_kind = np.empty(256, np.int8)
    nd = 0
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
        tx_hop[t] = h
        tx_best[t] = best
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
                    if tainted and seg_start[p] >= 0:
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
                    if status[o] == FOLLOWED and seg_start[o] >= 0:
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
            taint[node] = share[s]
            hop[node] = h
            nt = _classify(node, False, forward, taint, status, out_addr, addr_stop, out_opret, out_spent_tx,
                           out_tx, dust, node_stop)
            if nt >= 0 and not queued[nt]:
                queued[nt] = True
                heap, hn = _hpush(heap, hn, nt if forward else -nt)
        done = _grow(done, nd + 1)
        sink = _grow(sink, nd + 1)
        sink_kind = _grow(sink_kind, nd + 1)
        done[nd] = t
        sink[nd] = sink_amt
        if forward:
            sink_kind[nd] = SINK_FEE
        elif i1 == i0:
            sink_kind[nd] = SINK_COINBASE
        else:
            sink_kind[nd] = SINK_MISSING
        nd += 1
    return (taint, status, hop, done[:nd], sink[:nd], sink_kind[:nd], tx_hop, tx_best, seg_start, seg_cnt,
            seg_amt[:nseg], seg_flag[:nseg], absorbed, n_free, peel_hit)
