"""Node: one process's orchestrator.

``handle(cmd)`` = lock -> catch up -> authorize -> decide -> append -> apply -> hint the bus.
``follow()`` applies what other nodes wrote: on a bus hint, or every poll interval anyway.
The log calls are synchronous SQLAlchemy run in a worker thread here, and only here.
"""

import asyncio
import hashlib
import json
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Awaitable, Callable

from anyio import to_thread

from . import auth, handlers
from . import state as st
from .bus import Bus
from .commands import Command
from .dispatch import Fleet
from .errors import NotFound, Unavailable
from .events import Recorded
from .log import AppendResult, EventLog
from .tracks import Fix, Tracks

log = logging.getLogger(__name__)
Listener = Callable[[Recorded], None]
PUBLISH_CHUNK = 100  # events handed to the sockets between two chances for them to drain
SETTLE_S = 0.25      # the longest pause for draining sockets between two chunks


class Node:
    def __init__(self, log: EventLog, tracks: Tracks, bus: Bus, catalog: handlers.Catalog,
                 snapshot_every: int = 2000, poll_interval_s: float = 1.0):
        self.log = log
        self.tracks = tracks
        self.bus = bus
        self.catalog = catalog
        self.fleet = catalog.fleet if catalog is not None else Fleet()
        self.snapshot_every = snapshot_every
        self.poll_interval_s = poll_interval_s
        self.state = st.State()
        self.listeners: list[Listener] = []
        self.position_listeners: list[Callable[[str, Fix], None]] = []
        self.settle: Callable[[float], Awaitable[float]] | None = None  # wait up to N s for listeners; time spent
        self._outbox: deque[Recorded] = deque()
        self._outbox_ready = asyncio.Event()
        self._publisher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._snapshot_seq = 0
        self._follower: asyncio.Task | None = None
        self.follow_error: str | None = None
        self._subscription = None

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.state, self._snapshot_seq = await to_thread.run_sync(self.rebuild)
        await to_thread.run_sync(self.tracks.load)
        self.fleet.reset(self.state, {unit_id: fix.location for unit_id, fix in self.tracks.latest.items()})
        self._subscription = self.bus.subscribe()
        self._follower = asyncio.create_task(self._follow(), name="commandpost-follow")
        self._publisher = asyncio.create_task(self._publish(), name="commandpost-publish")

    async def stop(self) -> None:
        for task in (self._follower, self._publisher):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self._subscription is not None:
            self._subscription.close()

    def rebuild(self, at: datetime | None = None) -> tuple[st.State, int]:
        """State from the latest snapshot (at or before ``at``) plus the events after it."""
        snapshot = self.log.latest_snapshot(at_or_before=at)
        state = st.from_doc(json.loads(snapshot[1])) if snapshot else st.State()
        st.fold(self.log.iter_all(after=state.seq, until_seq=self.log.seq_at(at) if at else None), state)
        return state, snapshot[0] if snapshot else 0

    async def state_at(self, at: datetime) -> st.State:
        state, _ = await to_thread.run_sync(self.rebuild, at)
        return state

    # -- commands --------------------------------------------------------------------------------
    async def handle(self, cmd: Command, principal: auth.Principal, key: str | None = None,
                     body_hash: str | None = None) -> AppendResult:
        scoped_key = hashlib.sha256(f"{principal.identity}\n{key}".encode()).hexdigest() if key else None
        async with self._lock:
            await self._catch_up()
            if scoped_key is not None:
                earlier = await to_thread.run_sync(self.log.lookup, scoped_key, body_hash)
                if earlier is not None:  # a retry: the first answer, even if state moved on since
                    return earlier
            auth.authorize(principal, cmd, self.state)
            decision = handlers.decide(self.state, cmd, self.catalog)
            result = await to_thread.run_sync(self.log.append, decision, principal.actor, scoped_key, body_hash)
            if result.records and result.records[0].seq != self.state.seq + 1:
                await self._catch_up()  # another node appended in between: the log brings theirs and ours
            else:
                self._apply(result.records)
            snapshot = self._snapshot_doc()
        if snapshot is not None:
            await self._save_snapshot(*snapshot)
        if result.records:
            await self._hint()
        return result

    async def move(self, unit_id: str, fix: Fix, principal: auth.Principal) -> bool:
        if unit_id not in self.state.units:
            raise NotFound(f"No unit {unit_id}")
        auth.may_move(principal, self.state, unit_id)
        stored = await to_thread.run_sync(self.tracks.record, unit_id, fix)
        if self.tracks.latest.get(unit_id) is fix:  # not a late packet: the fleet index and consoles follow
            self._moved(unit_id, fix)
        return stored

    def _moved(self, unit_id: str, fix: Fix) -> None:
        self.fleet.move(unit_id, fix.location)
        for listener in self.position_listeners:
            listener(unit_id, fix)

    async def refresh_positions(self) -> int:
        """Positions other nodes stored since the last look, into the tracks and the fleet index."""
        changed = await to_thread.run_sync(self.tracks.refresh)
        for unit_id, fix in changed:
            if self.tracks.latest.get(unit_id) is fix:  # no newer local fix came in meanwhile
                self._moved(unit_id, fix)
        return len(changed)

    # -- reads (the log and tracks, in a worker thread) ---------------------------------------------
    async def read(self, after: int, limit: int, until_seq: int | None = None) -> list[Recorded]:
        return await to_thread.run_sync(self.log.read, after, limit, until_seq)

    async def window(self, frm: datetime, to: datetime) -> tuple[int, int]:
        """The seqs just before ``frm`` and at ``to``: a time window as a seq range, by the time index."""
        def bounds() -> tuple[int, int]:
            return self.log.seq_at(frm - timedelta(microseconds=1)), self.log.seq_at(to)
        return await to_thread.run_sync(bounds)

    async def head(self) -> int:
        """The log's last seq (this node may not have applied all of it yet)."""
        return await to_thread.run_sync(self.log.head)

    async def timeline(self, incident_id: str) -> list[Recorded]:
        return await to_thread.run_sync(self.log.incident_timeline, incident_id)

    async def archived(self, incident_id: str) -> st.State | None:
        """An incident closed long enough ago to have left the live picture, rebuilt from the log."""
        archived = st.replay_incident(await self.timeline(incident_id))
        if archived is not None:
            archived.units = self.state.units  # read-only here: for scope checks by unit agency
        return archived

    async def positions_at(self, at: datetime) -> dict[str, Fix]:
        return await to_thread.run_sync(self.tracks.positions_at, at)

    async def verify(self):
        return await to_thread.run_sync(self.log.verify)

    # -- following -------------------------------------------------------------------------------
    async def catch_up(self) -> int:
        async with self._lock:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        applied = 0
        while True:
            batch = await to_thread.run_sync(self.log.read, self.state.seq, 5000)
            self._apply(batch)
            applied += len(batch)
            if len(batch) < 5000:
                return applied

    async def _follow(self) -> None:
        while True:
            await self._subscription.get(timeout=self.poll_interval_s)
            try:
                await self.catch_up()
                await self.refresh_positions()
                self.follow_error = None
            except Unavailable as err:
                self.follow_error = err.message
                log.warning("follower cannot read the log: %s", err.message)
            except Exception as err:  # keep following; readiness reports it
                self.follow_error = f"{type(err).__name__}: {err}"
                log.exception("follower failed to apply the log")

    def _apply(self, records) -> None:
        for rec in records:
            if st.apply(self.state, rec):
                self.fleet.observe(rec, self.state)
                if self.listeners:
                    self._outbox.append(rec)
        if self._outbox:
            self._outbox_ready.set()

    async def _publish(self) -> None:
        """Hand applied events to the listeners (the sockets' hub) in apply order, outside the node's
        lock: a burst caught up from another node goes out PUBLISH_CHUNK at a time with ``settle``
        between chunks, so sockets that keep up get to drain and none of it holds up intake."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            sent = 0
            while self._outbox:
                if sent >= PUBLISH_CHUNK and self.settle is not None:
                    await self.settle(SETTLE_S)
                    sent = 0
                rec = self._outbox.popleft()
                for listener in self.listeners:
                    try:
                        listener(rec)
                    except Exception:  # one bad listener must not starve the others or stop publishing
                        log.exception("a listener failed on event %s", rec.seq)
                sent += 1

    async def published(self) -> None:
        """Until every applied event has gone to the listeners (for tests and an orderly stop)."""
        while self._outbox:
            await asyncio.sleep(0.001)

    async def _hint(self) -> None:
        try:
            await self.bus.publish({"seq": self.state.seq})
        except Exception:  # the event is durable already; followers poll
            log.warning("bus publish failed; other nodes will catch up by polling", exc_info=True)

    # -- snapshots -------------------------------------------------------------------------------
    def _snapshot_doc(self) -> tuple[int, str, dict] | None:
        """Under the lock: a cheap shallow copy. Serialising and writing happen in a worker thread."""
        if self.state.seq - self._snapshot_seq < self.snapshot_every:
            return None
        self._snapshot_seq = self.state.seq
        return self.state.seq, self.state.at, st.to_doc(self.state)

    def _write_snapshot(self, seq: int, at: str, doc: dict) -> None:
        self.log.save_snapshot(seq, at, json.dumps(doc, separators=(",", ":")))

    async def _save_snapshot(self, seq: int, at: str, doc: dict) -> None:
        try:
            await to_thread.run_sync(self._write_snapshot, seq, at, doc)
        except Exception:
            log.warning("snapshot at seq %s not saved; start-up will fold a little more", seq, exc_info=True)
