"""The realtime hub: every applied event and position fix, fanned out to the sockets that may see it.

Each subscription has a bounded queue. ``publish`` never waits: it puts the event in the queue of
every subscription whose filter admits it. A queue that is full means that socket is not keeping
up; it is never left to slow the others and nothing is dropped silently: the subscription is
emptied, marked, and its socket closes with ``RESYNC`` ("resync after=<last seq sent>") so the
client resumes from the log (websockets' broadcast guide; STYLE.md rule 11).

Positions are telemetry, not events: latest-wins, throttled per unit (one message per unit per
``telemetry_interval_s``, the newest fix at the end of the interval), and a queue more than half
full skips telemetry instead of closing the socket.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import Recorded

RESYNC = 4409  # close code of a socket that fell behind; the reason reads "resync after=<seq>"


@dataclass(frozen=True, slots=True)
class Pushed:
    """An event on its way out: the record and its JSON text, encoded once for every socket."""

    record: Recorded
    text: str


@dataclass(frozen=True, slots=True)
class Telemetry:
    unit_id: str
    text: str


OVERFLOW = object()  # the last item of a queue that overflowed


@dataclass(eq=False)
class Subscription:
    admits: Callable[[Recorded], bool]
    sees_unit: Callable[[str], bool] | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    owed: set[str] = field(default_factory=set)  # units whose newest fix was skipped while it was behind

    def offer(self, item: Any) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():  # the client re-reads all of it from the log
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)


class Hub:
    def __init__(self, queue_size: int = 1000, telemetry_interval_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.queue_size = queue_size
        self.telemetry_interval_s = telemetry_interval_s
        self.monotonic = monotonic
        self.subscriptions: set[Subscription] = set()
        self.first: set[Subscription] = set()
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, dict] = {}
        self._latest: dict[str, dict] = {}

    def subscribe(self, admits: Callable[[Recorded], bool],
                  sees_unit: Callable[[str], bool] | None = None, first: bool = False) -> Subscription:
        """``sees_unit``: which units' positions this socket gets (None: no telemetry). ``first``: served
        before the others (a unit's stream: a crew's assignment must not wait behind 1,000 consoles)."""
        sub = Subscription(admits, sees_unit, asyncio.Queue(self.queue_size))
        (self.first if first else self.subscriptions).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.first.discard(sub)
        self.subscriptions.discard(sub)

    def publish(self, rec: Recorded) -> None:
        """Called for every event the node applies, in seq order, on the event loop. Units' streams are
        offered it first, so their tasks are woken, and send, first."""
        pushed = None
        for sub in (*self.first, *self.subscriptions) if self.first else self.subscriptions:
            if not sub.overflowed and sub.admits(rec):
                pushed = pushed or Pushed(rec, json.dumps(rec.to_json(), separators=(",", ":")))
                sub.offer(pushed)

    async def settle(self, most_s: float) -> float:
        """Wait, at most ``most_s``, while some live socket's queue is over half full *and draining*; the
        time spent. Between chunks of a burst: sockets that keep up get to drain, while a socket that
        stopped reading is not waited for (it overflows and resyncs, as it would anyway)."""
        started = self.monotonic()
        while self.monotonic() - started < most_s:
            behind = {sub: sub.queue.qsize() for sub in self.subscriptions
                      if not sub.overflowed and sub.queue.qsize() * 2 > self.queue_size}
            if not behind:
                break
            await asyncio.sleep(0.01)
            if all(sub.overflowed or sub.queue.qsize() >= size for sub, size in behind.items()):
                break  # nobody is draining
        return self.monotonic() - started

    def position(self, unit_id: str, fix: dict) -> None:
        """A unit's latest fix: sent now if the unit's interval has passed, else kept for ``flush``."""
        now = self.monotonic()
        self._latest[unit_id] = fix
        if now - self._last_sent.get(unit_id, -1e18) >= self.telemetry_interval_s:
            self._pending.pop(unit_id, None)
            self._send_position(unit_id, fix, now)
        else:
            self._pending[unit_id] = fix

    def flush(self) -> None:
        """Send the newest held fix of every unit whose interval has passed (call it every interval)."""
        now = self.monotonic()
        for unit_id in [u for u in self._pending if now - self._last_sent.get(u, -1e18) >= self.telemetry_interval_s]:
            self._send_position(unit_id, self._pending.pop(unit_id), now)
        for sub in self.subscriptions:  # what a socket missed while it was behind: the newest fix, once
            if sub.owed and not sub.overflowed and sub.queue.qsize() * 2 <= self.queue_size:
                for unit_id in sorted(sub.owed):
                    sub.offer(_telemetry(unit_id, self._latest[unit_id]))
                sub.owed.clear()

    def _send_position(self, unit_id: str, fix: dict, now: float) -> None:
        self._last_sent[unit_id] = now
        item = None
        for sub in self.subscriptions:
            if sub.sees_unit is None or sub.overflowed or not sub.sees_unit(unit_id):
                continue
            if sub.queue.qsize() * 2 > self.queue_size:
                sub.owed.add(unit_id)
                continue
            sub.owed.discard(unit_id)
            item = item or _telemetry(unit_id, fix)
            sub.offer(item)


def _telemetry(unit_id: str, fix: dict) -> Telemetry:
    return Telemetry(unit_id, json.dumps({"type": "telemetry", "unit_id": unit_id, "position": fix},
                                         separators=(",", ":")))
