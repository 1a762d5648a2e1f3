"""The follower: one loop that keeps the workspace at the chain tips and turns changes into alerts.

Each cycle, in this order (so that a watched spend is alerted before the slower index rebuild):
1. ingest what is new at every source (monitor/sources.py; the ingest services write the workspace, each
   batch in one workspace transaction, and roll back orphaned blocks themselves);
2. reorganisations: alerts raised on blocks whose stored hash changed (or that are gone) are withdrawn, each
   with a follow-up ``reorg`` alert, and the watch scan restarts below the fork;
3. watches: the new blocks of every watched chain are scanned for spends from watched targets;
4. re-screening: when the exposure index (blocks, tags, incidents, clusters) or the policy changed, every
   registered transfer is screened again (monitor/rescreen.py).
The follower's own progress (heights scanned, index and policy versions screened) is kept in the service
database (``monitor_state``), in the same transaction as the alerts it raised, so a restart neither
repeats nor skips anything (alerts are also unique on their dedupe key).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fundtrail.monitor.alerts import Alert, AlertBook, dumps
from fundtrail.monitor.rescreen import rescreen_transfers
from fundtrail.monitor.sources import Source
from fundtrail.monitor.watches import (
    Movement,
    Targets,
    Watch,
    WatchBook,
    amount_json,
    block_hashes,
    movements,
)
from fundtrail.store import Workspace

log = logging.getLogger("fundtrail.monitor")
REORG_WINDOW = 100  # blocks below the tip checked for orphaned alerts and rescanned after a reorg


@dataclass(slots=True)
class Screening:
    """What the follower needs from the screening service: a version of the data and policy it screens with,
    transfer screening, and (optionally) the entity of an address for the one-hop trace."""

    version: tuple[Any, ...]
    screen_transfer: Callable[[dict[str, Any]], dict[str, Any]]
    entity: Callable[[str, str], dict[str, Any] | None] = lambda chain, address: None
    as_of: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CycleReport:
    ingested: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    seconds: float = 0.0
    ingest_seconds: float = 0.0


class Follower:
    def __init__(self, ws: Workspace, db: Any, sources: tuple[Source, ...] = (), *,
                 screening: Callable[[], Screening | None] | None = None,
                 refresh: Callable[[], Screening | None] | None = None,
                 on_alerts: Callable[[list[Alert]], None] | None = None, poll: float = 1.0) -> None:
        """``screening`` gives the screening as loaded now (cheap); ``refresh`` first brings the exposure
        index and policy up to date (it may rebuild the index), default ``screening``."""
        self.ws = ws
        self.db = db
        self.sources = sources
        self.screening = screening
        self.refresh = refresh or screening
        self.changed = threading.Event()  # set when a cycle ingested blocks: re-screen soon
        self.on_alerts = on_alerts
        self.poll = poll
        self.alerts = AlertBook(db)
        self.watches = WatchBook(db)
        self.stop = threading.Event()
        self.targets = Targets(ws)
        self.last: CycleReport | None = None

    # --- state ----------------------------------------------------------------------------------------
    def _state(self, name: str) -> Any:
        rows = self.db.execute("SELECT value FROM monitor_state WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    @staticmethod
    def _set_state(name: str, value: Any) -> tuple[str, tuple]:
        return ("INSERT INTO monitor_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "value = excluded.value", (name, dumps(value)))

    # --- one cycle ------------------------------------------------------------------------------------
    def cycle(self, rescreen: bool = True) -> CycleReport:
        """Ingest, handle reorgs, scan watches; then (``rescreen``) re-screen the registered transfers."""
        t0 = time.perf_counter()
        rep = CycleReport()
        for s in self.sources:
            if self.stop.is_set():
                break
            try:
                st = s.step(self.ws)
                rep.ingested[str(s.name)] = getattr(st, "blocks", None)
                if getattr(st, "blocks", 0) or getattr(st, "rolled_back", 0):
                    self.changed.set()
            except Exception as e:  # noqa: BLE001 - a node may be down for a while: keep monitoring the rest
                rep.errors.append(f"{s.kind}:{s.name}: {type(e).__name__}: {e}")
                log.warning("ingest from %s failed: %s", s, e)
        rep.ingest_seconds = time.perf_counter() - t0
        self.ws.refresh()
        chains = self.ws.chains()
        watches = self.watches.list()
        for chain in sorted(chains):
            try:
                rep.alerts += self._reorgs(chain)
                rep.alerts += self._scan(chain, [w for w in watches if w.chain == chain])
            except Exception as e:  # noqa: BLE001
                rep.errors.append(f"{chain}: {type(e).__name__}: {e}")
                log.warning("watch scan of %s failed: %s", chain, e)
        if rep.alerts and self.on_alerts is not None:
            self.on_alerts(rep.alerts)
        if rescreen:
            rep.alerts += self.rescreen_cycle(rep.errors)
        rep.seconds = time.perf_counter() - t0
        self.last = rep
        return rep

    def _reorgs(self, chain: str) -> list[Alert]:
        tip = (self.ws.chain(chain) or {}).get("tip_height")
        tip = -1 if tip is None else int(tip)
        scan = self._state(f"scan:{chain}")
        open_ = self.alerts.on_blocks(chain, tip - REORG_WINDOW)
        heights = sorted({h for _, h, _, _ in open_} | ({int(scan["height"])} if scan else set()))
        if not heights:
            return []
        now = block_hashes(self.ws, chain, heights)
        orphaned = [a for a in open_ if now.get(a[1]) != a[2]]
        moved = scan is not None and scan.get("hash") is not None and now.get(int(scan["height"])) != scan["hash"]
        out: list[Alert] = []
        if orphaned:
            log.info("%s: %d alert(s) on orphaned blocks withdrawn", chain, len(orphaned))
            out = self.alerts.withdraw(orphaned, chain, now)
        if moved or orphaned:
            back = [h - 1 for _, h, _, _ in orphaned]
            if scan is not None:
                back.append(int(scan["height"]) - (REORG_WINDOW if moved else 0))
            self.db.many([self._set_state(f"scan:{chain}", {"height": max(-1, min(back)), "hash": None})])
        return out

    def _scan(self, chain: str, watches: list[Watch]) -> list[Alert]:
        st = self.ws.chain(chain) or {}
        tip, tip_hash = st.get("tip_height"), st.get("tip_hash")
        if tip is None:
            return []
        tip = int(tip)
        scan = self._state(f"scan:{chain}")
        done = int(scan["height"]) if scan else tip
        if not watches:
            if scan is None or done != tip:
                self.db.many([self._set_state(f"scan:{chain}", {"height": tip, "hash": tip_hash})])
            return []
        alerts: list[Alert] = []
        self.targets.prepare(watches)  # new watches resolve now, even before a block arrives
        live = [w for w in watches if max(done, w.from_height) < tip]
        if live:
            # one scan of the new blocks for every watch of the chain, then each movement to its watches
            sets = {w.watch_id: self.targets.of(w) for w in live}
            ids = np.unique(np.concatenate(list(sets.values())))
            lo = min(max(done, w.from_height) for w in live)
            found = movements(self.ws, chain, ids, lo, tip, self.targets)
            sc = self._screening_now() if found else None
            members = {k: set(v.tolist()) for k, v in sets.items()} if found else {}
            for m in found:
                for w in live:
                    mine = members[w.watch_id]
                    if m.height <= max(done, w.from_height) or not any(s[0] in mine for s in m.spent):
                        continue
                    if w.target_kind == "cluster" and all(d[0] in mine for d in m.destinations):
                        continue  # stays inside the cluster
                    alerts.append(self._watch_alert(w, m, sc, mine))
        if alerts or scan is None or done != tip or (scan or {}).get("hash") != tip_hash:
            self.alerts.raise_(alerts, [self._set_state(f"scan:{chain}", {"height": tip, "hash": tip_hash})])
        return alerts

    def _screening_now(self) -> Screening | None:
        try:
            return self.screening() if self.screening is not None else None
        except Exception as e:  # noqa: BLE001 - the one-hop trace then lacks entities
            log.warning("screening unavailable: %s", e)
            return None

    def _watch_alert(self, w: Watch, m: Movement, sc: Screening | None, mine: set[int]) -> Alert:
        decimals: dict[str, int] = {}
        dests = []
        for _aid, addr, asset, amount in m.destinations:
            d = {"address": addr, **amount_json(asset, amount, decimals)}
            if sc is not None and addr:
                try:
                    d["entity"] = sc.entity(m.chain, addr)
                except Exception:  # noqa: BLE001 - unknown to the index
                    d["entity"] = None
            dests.append(d)
        spent = [{"address": a, **amount_json(asset, v, decimals)} for i, a, asset, v in m.spent if i in mine]
        return Alert(kind="watched_funds_moved", severity="high",
                     dedupe_key=f"watch:{w.watch_id}:{m.txid}:{m.block_hash}",
                     subject={"watch_id": w.watch_id, "chain": w.chain, w.target_kind: w.target, "note": w.note},
                     details={"txid": m.txid, "height": m.height, "block_hash": m.block_hash, "time": m.time,
                              "spent": spent, "destinations": dests,
                              "text": f"funds at watched {w.target_kind} {w.target} moved in {m.txid} "
                                      f"(block {m.height})"},
                     chain=m.chain, height=m.height, block_hash=m.block_hash)

    def rescreen_cycle(self, errors: list[str] | None = None) -> list[Alert]:
        try:
            out = self._rescreen()
        except Exception as e:  # noqa: BLE001 - retried on the next cycle
            if errors is not None:
                errors.append(f"re-screening: {type(e).__name__}: {e}")
            log.warning("re-screening failed: %s", e)
            return []
        if out and self.on_alerts is not None:
            self.on_alerts(out)
        return out

    def _rescreen(self) -> list[Alert]:
        try:
            sc = self.refresh() if self.refresh is not None else None
        except Exception as e:  # noqa: BLE001
            log.warning("index refresh failed: %s", e)
            sc = None
        if sc is None:
            return []
        ver = list(sc.version)
        last = self._state("screened")
        if last is not None and last.get("version") == ver:
            return []
        cause = {"previous": last.get("version") if last else None, "now": ver, "as_of": sc.as_of}
        out = rescreen_transfers(self.db, sc.screen_transfer, cause)
        self.db.many([self._set_state("screened", {"version": ver})])
        return out

    # --- the loop -------------------------------------------------------------------------------------
    def _rescreen_loop(self) -> None:
        while not self.stop.is_set():
            self.changed.clear()
            self.rescreen_cycle()
            self.changed.wait(self.poll)

    def run(self) -> None:
        """Follow the tips in this thread and re-screen in a second one, so that an index rebuild never
        delays the alerts of a new block."""
        t = threading.Thread(target=self._rescreen_loop, name="rescreen", daemon=True)
        t.start()
        try:
            while not self.stop.is_set():
                try:
                    self.cycle(rescreen=False)
                except Exception as e:  # noqa: BLE001 - keep following; the next cycle retries
                    log.warning("follower cycle failed: %s", e)
                self.stop.wait(self.poll)
        finally:
            self.changed.set()
            t.join(timeout=30)
