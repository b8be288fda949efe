"""Node: one process's orchestrator.

``handle(cmd)`` queues the command; the committer takes everything queued as one batch (group
commit): open the append transaction holding the log's write lock -> apply what other nodes
appended -> for each command: authorize -> decide -> number -> apply to the working state ->
write the whole batch in one transaction -> apply to the published state -> answer -> hint the bus.

Two projections: ``state`` holds only committed events (every reader, socket and snapshot sees
it); ``_working`` runs ahead of it inside a batch, so each decision sees the ones before it. If
the batch does not commit, the working state is copied back from ``state``: nothing half-written
is ever seen. ``_follow`` applies what other nodes wrote: on a bus hint, or every poll interval.
The log calls are synchronous SQLAlchemy run in a worker thread here, and only here.
"""

import asyncio
import hashlib
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Awaitable, Callable

from anyio import CapacityLimiter, to_thread

from . import auth, handlers
from . import state as st
from .bus import Bus
from .commands import Command
from .dispatch import Fleet
from .errors import CommandpostError, Invalid, NotFound, Unavailable
from .events import Recorded
from .log import Appending, AppendResult, Entry, EventLog, head_after, number
from .log import Head as LogHead
from .tracks import Fix, Tracks

log = logging.getLogger(__name__)
Listener = Callable[[Recorded], None]
PUBLISH_CHUNK = 100  # events handed to the sockets between two chances for them to drain
SETTLE_S = 0.25      # the longest pause for draining sockets between two chunks
MAX_BATCH = 100      # commands decided and committed together at most (the lock is held meanwhile)
FIXES_EVERY_S = 0.05  # positions kept here go to the other nodes over the bus this often


@dataclass
class Ticket:
    """A command waiting for the committer, and where its answer goes."""
    cmd: Command
    principal: auth.Principal
    key: str | None
    body_hash: str | None
    future: asyncio.Future
    alone: bool = False  # commit in a batch of its own (after a batch failed on one bad value)


class Node:
    def __init__(self, log: EventLog, tracks: Tracks, bus: Bus, catalog: handlers.Catalog,
                 snapshot_every: int = 2000, poll_interval_s: float = 1.0, max_batch: int = MAX_BATCH):
        self.id = uuid.uuid4().hex[:12]  # tells this node's own bus messages from the others'
        self.log = log
        self.tracks = tracks
        self.bus = bus
        self.catalog = catalog
        self.fleet = catalog.fleet if catalog is not None else Fleet()
        self.snapshot_every = snapshot_every
        self.poll_interval_s = poll_interval_s
        self.max_batch = max_batch
        self.state = st.State()
        self._working = st.State()
        self.listeners: list[Listener] = []
        self.position_listeners: list[Callable[[str, Fix], None]] = []
        self.settle: Callable[[float], Awaitable[float]] | None = None  # wait up to N s for listeners; time spent
        self._outbox: deque[Recorded] = deque()
        self._outbox_ready = asyncio.Event()
        self._queue: deque[Ticket] = deque()
        self._queue_ready = asyncio.Event()
        self._hint_ready = asyncio.Event()
        self._fixes_out: dict[str, Fix] = {}
        self._lock = asyncio.Lock()
        self._snapshot_seq = 0
        self._tasks: list[asyncio.Task] = []
        self._committer: asyncio.Task | None = None
        self.follow_error: str | None = None
        self.bus_error: str | None = None
        self.batches = 0  # committed batches, and the commands in them (for /metrics and the benchmark)
        self.batched = 0
        self._log_threads = CapacityLimiter(2)  # the committer's own: never queued behind 40 blocked track writes
        self._stopping = False
        self._subscription = None

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.state, self._snapshot_seq = await to_thread.run_sync(self.rebuild)
        self._working = st.copy(self.state)
        await to_thread.run_sync(self.tracks.load)
        self._reset_fleet()
        self._subscription = self.bus.subscribe()
        self._committer = asyncio.create_task(self._commit_queued(), name="commandpost-commit")
        self._tasks = [asyncio.create_task(self._follow(), name="commandpost-follow"),
                       asyncio.create_task(self._publish(), name="commandpost-publish"),
                       self._committer, asyncio.create_task(self._tell_others(), name="commandpost-hint")]

    async def stop(self, drain_s: float = 5.0) -> None:
        """Commit what is queued (for up to ``drain_s``), then stop following and publishing. The committer
        ends between batches: cancelling it inside one would leave a worker thread on its connection."""
        self._stopping = True
        self._queue_ready.set()
        if self._committer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._committer), drain_s)
            except (TimeoutError, asyncio.TimeoutError):
                log.warning("the committer did not finish within %s s; stopping it", drain_s)
            except Exception:
                log.exception("the committer had failed")
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("a node task had failed")
        for ticket in self._queue:
            if not ticket.future.done():
                ticket.future.set_exception(Unavailable("This node is shutting down; send the request again"))
        self._queue.clear()
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
        """Decide and append ``cmd``; the answer once its events are durable (or the error)."""
        if self._stopping or self._committer is None or self._committer.done():
            raise Unavailable("This node is not taking changes now; send the request to another node or again shortly")
        scoped_key = hashlib.sha256(f"{principal.identity}\n{key}".encode()).hexdigest() if key else None
        ticket = Ticket(cmd, principal, scoped_key, body_hash, asyncio.get_running_loop().create_future())
        self._queue.append(ticket)
        self._queue_ready.set()
        # A caller that goes away (a dropped request) does not take the batch down with it.
        return await asyncio.shield(ticket.future)

    async def _commit_queued(self) -> None:
        while not self._stopping or self._queue:
            await self._queue_ready.wait()
            self._queue_ready.clear()
            while self._queue:
                batch = [self._queue.popleft()]
                while self._queue and len(batch) < self.max_batch and not batch[0].alone and not self._queue[0].alone:
                    batch.append(self._queue.popleft())
                try:
                    async with self._lock:
                        await self._commit(batch)
                except Exception:  # a bug: never let the committer die and leave every caller waiting
                    log.exception("committing a batch of %d commands failed; reading the picture again", len(batch))
                    for ticket in batch:
                        _answer(ticket, Unavailable("This node could not take the change; send it again with "
                                                    "the same Idempotency-Key"))
                    await self._reload()
                snapshot = self._snapshot_doc()
                if snapshot is not None:
                    await self._save_snapshot(*snapshot)

    async def _reload(self) -> None:
        """Both projections and the fleet index read again from the log (after a failure that may have left
        them half-updated); the node refuses commands until it succeeds."""
        try:
            async with self._lock:
                self.state, self._snapshot_seq = await to_thread.run_sync(self.rebuild)
                self._restore()
            self.follow_error = None
        except Exception as err:
            self.follow_error = f"the picture could not be read again: {type(err).__name__}: {err}"
            log.exception("reloading the picture failed")

    async def _commit(self, batch: list[Ticket]) -> None:
        """Open the append transaction holding the log's lock, take in what other nodes appended, decide
        the batch on the working projection and write it. Deciding under the lock keeps what a node
        answers as fresh as the log: a note on an incident another node reported a moment ago is found,
        a second report of one fire is a duplicate wherever it arrives. (Deciding before the lock and
        chaining after other nodes' events was tried: +34 % for two nodes, but it answered from a picture
        behind the log; bench/README.md.)"""
        keys = [(t.key, t.body_hash) for t in batch if t.key is not None]
        appending = None
        try:
            appending = await to_thread.run_sync(self.log.begin, self.state.seq, keys, limiter=self._log_threads)
            self._apply(appending.gap)  # others' events: committed, so into both projections
            if appending.head.seq != self.state.seq:  # a log restored behind this node, say: never write past it
                raise Unavailable(f"The log ends at seq {appending.head.seq} but this node has applied "
                                  f"{self.state.seq}; it must restart")
            entries, answers = self._decide(batch, appending.earlier)
            if entries:
                await to_thread.run_sync(appending.commit, entries, None, limiter=self._log_threads)
            else:
                await to_thread.run_sync(appending.abort, limiter=self._log_threads)
        except BaseException as err:
            await self._undo(appending)
            if isinstance(err, Invalid) and len(batch) > 1:  # one value the log cannot store: find it alone
                for ticket in reversed(batch):
                    ticket.alone = True
                    self._queue.appendleft(ticket)
                return
            failure = err if isinstance(err, CommandpostError) else Unavailable(
                "The event log may not have taken this change; send it again with the same Idempotency-Key")
            for ticket in batch:
                _answer(ticket, failure)
            if not isinstance(err, Exception):
                raise
            if not isinstance(err, CommandpostError):
                log.exception("a batch of %d commands failed", len(batch))
            return
        records = [r for records, _, _ in entries for r in records]
        self.batches, self.batched = self.batches + 1, self.batched + len(batch)
        for ticket, answer in answers:  # durable now: each caller gets its answer whatever happens next
            if isinstance(answer, tuple):  # (index of its entry, replayed): its records as written
                answer = AppendResult(tuple(entries[answer[0]][0]), replayed=answer[1])
            _answer(ticket, answer)
        if records:
            self._hint_ready.set()
        self._apply(records, working=False)

    def _decide(self, batch: list[Ticket], earlier: dict) -> tuple[list[Entry], list]:
        """Each command against the working state, which takes its events at once (so the next command
        sees them). Returns what to write and, per ticket, its answer once it is durable: an error, an
        earlier result, or (index of its entry, replayed)."""
        entries: list[Entry] = []
        answers: list[tuple[Ticket, object]] = []
        head = LogHead(self._working.seq, self._working.at, self._working.last_hash)
        mine: dict[str, tuple[str | None, int]] = {}  # keys first used in this batch -> body hash, entry
        for ticket in batch:
            answer = earlier.get((ticket.key, ticket.body_hash)) if ticket.key is not None else None
            if answer is None and ticket.key in mine:  # a retry that raced its original into this batch
                body_hash, index = mine[ticket.key]
                answer = ((index, True) if body_hash == ticket.body_hash else
                          Invalid("This Idempotency-Key was already used for a different request"))
            if answer is not None:  # a retry: the first answer, even if state moved on since
                answers.append((ticket, answer))
                continue
            try:
                auth.authorize(ticket.principal, ticket.cmd, self._working)
                decision = handlers.decide(self._working, ticket.cmd, self.catalog)
            except Exception as err:  # refused (4xx), or a bug (500): this command only
                answers.append((ticket, err))
                continue
            records = number(decision, ticket.principal.actor, head, self.log.clock(), self.log.new_id)
            head = head_after(head, records)
            for rec in records:
                st.apply(self._working, rec)
                self.fleet.observe(rec, self._working)
            if not records:
                answers.append((ticket, AppendResult(())))
                continue
            entries.append((records, ticket.key, ticket.body_hash))
            if ticket.key is not None:
                mine[ticket.key] = (ticket.body_hash, len(entries) - 1)
            answers.append((ticket, (len(entries) - 1, False)))
        return entries, answers

    def _restore(self) -> None:
        """Back to the committed projection: the working one, and the fleet index with it."""
        self._working = st.copy(self.state)
        self._reset_fleet()

    async def _undo(self, appending: Appending | None) -> None:
        """The batch did not commit (or may not have: then the next catch-up brings it from the log)."""
        if appending is not None:
            try:
                await to_thread.run_sync(appending.abort)
            except Exception:
                log.warning("could not roll back an append transaction", exc_info=True)
        self._restore()

    def _reset_fleet(self) -> None:
        self.fleet.reset(self._working, {unit_id: fix.location for unit_id, fix in self.tracks.latest.items()})

    async def move(self, unit_id: str, fix: Fix, principal: auth.Principal) -> bool:
        if unit_id not in self.state.units:
            raise NotFound(f"No unit {unit_id}")
        auth.may_move(principal, self.state, unit_id)
        stored = await to_thread.run_sync(self.tracks.record, unit_id, fix)
        if self.tracks.latest.get(unit_id) is fix:  # not a late packet: the fleet index and consoles follow
            self._moved(unit_id, fix)
            self._fixes_out[unit_id] = fix
            self._hint_ready.set()
        return stored

    def _moved(self, unit_id: str, fix: Fix) -> None:
        self.fleet.move(unit_id, fix.location)
        for listener in self.position_listeners:
            listener(unit_id, fix)

    def _heard(self, fixes: dict[str, dict]) -> None:
        """Positions another node received, from the bus: telemetry, so the newest fix wins."""
        for unit_id, doc in fixes.items():
            if unit_id in self.state.units:
                fix = Fix.from_json(doc)
                if self.tracks.observe(unit_id, fix):
                    self._moved(unit_id, fix)

    async def refresh_positions(self) -> int:
        """Positions other nodes stored since the last look, into the tracks and the fleet index."""
        changed = await to_thread.run_sync(self.tracks.refresh)
        for unit_id, fix in changed:
            if self.tracks.latest.get(unit_id) is fix:  # no newer local fix came in meanwhile
                self._moved(unit_id, fix)
        return len(changed)

    # -- reads (the log and tracks, in a worker thread) ---------------------------------------------
    async def read(self, after: int, limit: int, until_seq: int | None = None,
                   types: tuple[str, ...] = (), actor: str | None = None) -> list[Recorded]:
        return await to_thread.run_sync(self.log.read, after, limit, until_seq, types, actor)

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
        """Apply what other nodes wrote: at once on their hint, and every poll interval anyway, whatever else
        the bus brings (a lost hint, or no bus at all, only delays). Their units' positions come over it too."""
        loop = asyncio.get_running_loop()
        polled = loop.time()
        while True:
            message = await self._subscription.get(timeout=max(0.0, polled + self.poll_interval_s - loop.time()))
            if isinstance(message, dict) and message.get("node") == self.id:
                message = {}
            poll = message is None or loop.time() - polled >= self.poll_interval_s or self._subscription.lagged
            try:
                if isinstance(message, dict) and isinstance(message.get("fixes"), dict):
                    self._heard(message["fixes"])
                hinted = isinstance(message, dict) and (
                    "reconnected" in message or (isinstance(message.get("seq"), int) and message["seq"] > self.state.seq))
                if poll or hinted:
                    self._subscription.lagged = False
                    await self.catch_up()
                if poll or (isinstance(message, dict) and "reconnected" in message):
                    polled = loop.time()
                    await self.refresh_positions()  # sampled fixes stored while the bus was quiet or down
                self.follow_error = None
            except Unavailable as err:
                self.follow_error = err.message
                log.warning("follower cannot read the log: %s", err.message)
            except Exception as err:  # keep following; readiness reports it
                self.follow_error = f"{type(err).__name__}: {err}"
                log.exception("follower failed to apply the log")

    def _apply(self, records, working: bool = True) -> None:
        """Committed events into the published projection (and out to the listeners); with ``working``,
        into the working projection and the fleet index too (events this node did not decide)."""
        for rec in records:
            if st.apply(self.state, rec):
                if working and st.apply(self._working, rec):
                    self.fleet.observe(rec, self._working)
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

    async def _tell_others(self) -> None:
        """Tell the other nodes over the bus: the newest seq at once after each commit (they read the
        events from the log), and the positions kept here at most every FIXES_EVERY_S (telemetry,
        newest wins). A bus that is down costs nothing but this: the others poll."""
        told_seq, fixes_at = 0, 0.0
        loop = asyncio.get_running_loop()
        while True:
            await self._hint_ready.wait()
            self._hint_ready.clear()
            message: dict = {"node": self.id}
            if self.state.seq > told_seq:
                message["seq"] = told_seq = self.state.seq
            if self._fixes_out:
                wait = fixes_at + FIXES_EVERY_S - loop.time()
                if wait > 0:  # gather more fixes; come back for them
                    loop.call_later(wait, self._hint_ready.set)
                else:
                    fixes, self._fixes_out, fixes_at = self._fixes_out, {}, loop.time()
                    message["fixes"] = {unit_id: fix.to_json() for unit_id, fix in fixes.items()}
            if len(message) == 1:
                continue
            try:
                await self.bus.publish(message)
                if self.bus_error is not None:
                    log.warning("the bus is back; hints flow again")
                self.bus_error = None
            except Exception as err:  # the events are durable already; the others poll the log
                if self.bus_error is None:
                    log.warning("bus publish failed (%s); other nodes will catch up by polling", err)
                self.bus_error = f"{type(err).__name__}: {err}"

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


def _answer(ticket: Ticket, result) -> None:
    if ticket.future.done():
        return
    if isinstance(result, BaseException):
        ticket.future.set_exception(result)
    else:
        ticket.future.set_result(result)

