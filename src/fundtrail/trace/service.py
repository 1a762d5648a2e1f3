"""``trace``: follow funds from seeds (addresses or transactions) forward or backward, under one taint model.

The service resolves seeds to graph nodes, runs one *leg* per chain (:mod:`fundtrail.trace.frontier`:
Bitcoin, the numba output-level kernel over the cached :class:`~fundtrail.trace.graph.UtxoGraph`; EVM, the
account-level engine over the cached :class:`~fundtrail.trace.graph.EvmLedger`), turns bridge crossings of
one leg into injections of taint into another chain's leg, and repeats until no new crossing appears (at
most ``MAX_ROUNDS`` rounds; each round recomputes every leg from its seeds and the crossings found so far,
so the result is deterministic). :mod:`fundtrail.trace.assemble` then rolls the legs up into a
:class:`~fundtrail.model.trace.TraceResult` with a conservation :class:`~fundtrail.model.trace.Balance` per
chain and asset.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from typing import Any

from fundtrail.errors import UsageError
from fundtrail.model.trace import PEEL_TXS, Seed, TraceResult
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import Workspace
from fundtrail.trace import crossing as X
from fundtrail.trace.asof import as_of
from fundtrail.trace.assemble import assemble
from fundtrail.trace.context import Ctx, to_unix
from fundtrail.trace.frontier.evm import evm_leg, evm_seeds
from fundtrail.trace.frontier.utxo import utxo_leg, utxo_seeds
from fundtrail.trace.graph import release_memory
from fundtrail.trace.leg import Injection, Leg
from fundtrail.trace.taint import MODELS, S_MIXER, S_SERVICE

MAX_ROUNDS = 4


def trace(ws: Workspace, seeds: Sequence[Seed], *, model: str = "haircut", direction: str = "forward",
          max_hops: int = 20, dust: Any = None, since: Any = None, follow_mixers: bool = False,
          prices: Any = None, progress: Progress = NullProgress(), peel_budget: bool | int = True,
          as_of_height: Any = None, tags_as_of: Any = None) -> TraceResult:
    """Trace funds from ``seeds``. ``dust``: an int in base units for every asset, or a decimal string
    in whole units (converted per asset); ``since``: a date/ISO time, or unix seconds; ``peel_budget``:
    a peel chain costs one hop however long (docs/tracing.md): True allows ``PEEL_TXS`` transactions
    passed for free per chain leg (a limit notice when used up), an int that many, False (or 0) counts
    every transaction as a hop.
    ``as_of_height`` (H, ``CHAIN=H`` or a mapping) and ``tags_as_of`` (a time) trace the workspace as it
    stood then (trace/asof.py)."""
    ws = as_of(ws, as_of_height, tags_as_of)
    if model not in MODELS:
        raise UsageError(f"unknown taint model {model!r} (poison, haircut, fifo)")
    if direction not in ("forward", "backward"):
        raise UsageError(f"unknown direction {direction!r} (forward, backward)")
    if not seeds:
        raise UsageError("a trace needs at least one seed (an address or a transaction)")
    if max_hops < 0:
        raise UsageError("--max-hops must be 0 or more")
    peel_txs = (PEEL_TXS if peel_budget else 0) if isinstance(peel_budget, bool) else int(peel_budget)
    if peel_txs < 0:
        raise UsageError("--peel-txs must be 0 or more")
    task = progress.task("trace", total=None, unit="rounds")
    t0 = _time.perf_counter()
    ctx = Ctx(ws, model, direction == "forward", int(max_hops), dust, to_unix(since), follow_mixers,
              X.cross_book(ws), peel_txs=peel_txs)
    by_chain: dict[str, list[Seed]] = {}
    for s in seeds:
        by_chain.setdefault(s.chain, []).append(s)
    seed_sets: dict[str, dict[int, int]] = {}
    kinds: dict[str, str] = {}
    for chain, ss in by_chain.items():
        kinds[chain] = ctx.kind(chain)
        seed_sets[chain] = (utxo_seeds if kinds[chain] == "utxo" else evm_seeds)(ctx, chain, ss)
    injections: dict[str, list[Injection]] = {}
    legs: dict[str, Leg] = {}
    rounds = 0
    for _round in range(1, MAX_ROUNDS + 1):
        rounds = _round
        legs = {}
        for chain in sorted(set(seed_sets) | set(injections)):
            kind = kinds.get(chain) or ctx.kind(chain)
            kinds[chain] = kind
            run = utxo_leg if kind == "utxo" else evm_leg
            legs[chain] = run(ctx, chain, seed_sets.get(chain, {}), injections.get(chain, []))
        new: dict[str, list[Injection]] = {}
        for leg in legs.values():
            for i in leg.injections:
                new.setdefault(i.chain, []).append(i)
        new = {c: sorted(v, key=lambda i: (i.target, i.tainted, i.hop)) for c, v in new.items()}
        task.advance(1)
        if new == injections:
            break
        injections = new
    task.close()
    elapsed = _time.perf_counter() - t0
    release_memory()  # what the legs freed (Arrow batches, Python objects): give its pages back
    return assemble(ctx, seeds, legs, prices, {"max_hops": max_hops, "dust": None if dust is None else str(dust),
                                                "since": None if since is None else str(since),
                                                "follow_mixers": follow_mixers, "rounds": rounds,
                                                "peel_budget": peel_txs > 0, "peel_txs": peel_txs,
                                                "transactions_traced": sum(leg.txs for leg in legs.values()),
                                                "peel_free_txs": sum(leg.peel_free_txs for leg in legs.values()),
                                                "seconds": round(elapsed, 4),
                                                "warnings": clustering_warnings(ws, sorted(legs)),
                                                **_as_of_params(ws)})


def _as_of_params(ws: Workspace) -> dict[str, Any]:
    """The pins of an as-of view (trace/asof.py) for ``TraceResult.params``; nothing for a plain workspace."""
    pins = getattr(ws, "pins", None)
    return {"as_of": pins} if pins is not None else {}


def clustering_warnings(ws: Workspace, chains: Sequence[str]) -> list[str]:
    """Chains traced without clusters up to their tip. Attribution through clusters (an exchange's
    untagged deposit addresses) is then missing, and funds look as if they went on to the hot wallet."""
    out = []
    for chain in chains:
        state = ws.chain(chain) or {}
        tip = state.get("tip_height")
        done = (ws.setting(f"cluster:{chain}") or {}).get("height")
        if done is None:
            out.append(f"chain {chain} has not been clustered: run `fundtrail cluster --chain {chain}` so that "
                       "untagged addresses of attributed services (deposit addresses) count as endpoints")
        elif tip is not None and done < tip:
            out.append(f"chain {chain} is clustered through height {done} but ingested to {tip}: run "
                       f"`fundtrail cluster --chain {chain}` to bring its clusters up to date")
    return out


def trace_models(ws: Workspace, seeds: Sequence[Seed], models: Sequence[str] = ("poison", "haircut", "fifo"),
                 **kw: Any) -> dict[str, TraceResult]:
    """The same trace under several models (``--model all``)."""
    return {m: trace(ws, seeds, model=m, **kw) for m in models}


__all__ = ["trace", "trace_models", "clustering_warnings", "MAX_ROUNDS", "S_MIXER", "S_SERVICE"]
