"""The acknowledgement watchdog: an assignment its unit has not acknowledged in time is flagged.

``overdue(state, now, timeout)`` is pure: the active assignments nobody acknowledged or flagged,
assigned at least ``timeout`` before ``now``, oldest first. ``flag_overdue_once`` turns each into a
``FlagUnacknowledged`` command through ``node.handle``; the handler emits ``AssignmentUnacknowledged``
and a replacement ``RecommendationMade`` (trigger ``unacknowledged``). ``watch_acks`` repeats that
every ``interval_s`` until cancelled.

Every node may run it. The handler re-checks the assignment after catching up with the log, so a late
ack or another node's flag turns the command into a no-op, and a true race loses on the incident
stream's expected version (a ``Conflict``, ignored here): each assignment is flagged at most once.

Wiring, in the app's lifespan after ``start_node(node)`` (``clock`` is the app's injected clock)::

    watcher = asyncio.create_task(
        watch_acks(node, clock, settings.ack_timeout_s, interval_s=1.0, principal=SYSTEM),
        name="commandpost-ack-watchdog")
    ...
    watcher.cancel()                      # on shutdown, before node.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher

The principal must be an administrator (``authorize`` refuses ``FlagUnacknowledged`` to anyone
else); the events are recorded with its actor, ``admin:system`` for ``app.SYSTEM``.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from .auth import Principal
from .commands import FlagUnacknowledged
from .errors import Conflict, NotFound, Unavailable
from .log import format_at, parse_at
from .node import Node
from .state import State

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def overdue(state: State, now: datetime, timeout: timedelta) -> list[str]:
    """Ids of the active, unacknowledged, not yet flagged assignments assigned at or before ``now - timeout``,
    sorted by assignment time, then id."""
    found = []
    for a in state.assignments.values():
        if not a.active or a.acknowledged_at is not None or a.unacknowledged_at is not None:
            continue
        assigned = parse_at(a.assigned_at)
        if assigned + timeout <= now:
            found.append((assigned, a.id))
    return [assignment_id for _, assignment_id in sorted(found)]


async def flag_overdue_once(node: Node, clock: Clock, timeout: timedelta, principal: Principal) -> list[str]:
    """One pass over the node's state: flag each overdue assignment. Returns the ids this node flagged
    (not those another node or a late ack settled first). A failure on one assignment is logged and
    the pass goes on; an unreachable log ends the pass (the next one retries)."""
    flagged = []
    for assignment_id in overdue(node.state, clock(), timeout):
        try:
            result = await node.handle(FlagUnacknowledged(assignment_id, format_at(clock())), principal)
        except (Conflict, NotFound):  # another node flagged it, or the incident moved on, first
            continue
        except Unavailable as err:
            log.warning("ack watchdog cannot reach the log: %s", err.message)
            break
        except Exception:
            log.exception("ack watchdog failed to flag assignment %s", assignment_id)
            continue
        if result.records:
            flagged.append(assignment_id)
    return flagged


async def watch_acks(node: Node, clock: Clock, timeout_s: float, interval_s: float, principal: Principal) -> None:
    """Run ``flag_overdue_once`` now and then every ``interval_s`` seconds, until cancelled.
    It never dies of an error: each is logged and the next pass tries again."""
    timeout = timedelta(seconds=timeout_s)
    while True:
        try:
            await flag_overdue_once(node, clock, timeout, principal)
        except Exception:
            log.exception("ack watchdog pass failed")
        await asyncio.sleep(interval_s)
