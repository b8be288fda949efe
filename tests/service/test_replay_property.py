"""Replaying the log from zero gives exactly the state the live projection holds (DESIGN.md's last rule),
for random command sequences, on SQLite and on PostgreSQL; a rebuild from snapshots agrees too."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from agencies.lifecycle import UnitStatus
from coordinator import commands as c
from coordinator import state as st
from coordinator.auth import Principal
from coordinator.bus import MemoryBus
from coordinator.errors import CommandpostError
from coordinator.log import format_at
from coordinator.node import Node
from coordinator.tracks import Tracks

from ..adapters import BACKENDS, fresh_log
from ..builders import IN_EAST, IN_WEST, ON_BORDER, OUTSIDE, Clock, catalog

ADMIN = Principal("admin", "prop")
PLACES = [IN_WEST, IN_EAST, ON_BORDER, OUTSIDE]
TYPES = ["structure_fire", "cardiac_arrest", "robbery_in_progress", "traffic_collision_injury", "volcano"]
UNITS = [u.id for u in catalog().city.units] + ["GHOST"]
STATUSES = [s.value for s in UnitStatus] + ["flying"]

idx = s.integers(min_value=0, max_value=50)
step = s.one_of(
    s.tuples(s.just("report"), s.sampled_from(TYPES), s.sampled_from(PLACES), s.none() | s.integers(1, 5)),
    s.tuples(s.just("assign"), idx, s.lists(s.sampled_from(UNITS), min_size=1, max_size=3)),
    s.tuples(s.just("cancel"), idx),
    s.tuples(s.just("ack"), idx),
    s.tuples(s.just("flag"), idx),        # the ack watchdog's verdict
    s.tuples(s.just("status"), s.sampled_from(UNITS), s.sampled_from(STATUSES)),
    s.tuples(s.just("note"), idx, s.text(min_size=1, max_size=20)),
    s.tuples(s.just("close"), idx),
    s.tuples(s.just("wait"), s.integers(1, 30)),  # hours: closed incidents leave the live picture after 24
)


def command(node: Node, n: int, op):
    incidents, assignments = list(node.state.incidents), list(node.state.assignments)
    pick = lambda items, i: items[i % len(items)] if items else "none"  # noqa: E731
    match op:
        case ("report", kind, place, priority):
            return c.ReportIncident(f"i{n}", kind, priority, place, "2026-11-26T20:00:00.000000Z")
        case ("assign", i, units):
            return c.AssignUnits(pick(incidents, i), tuple(units), tuple(f"a{n}-{k}" for k in range(len(units))))
        case ("cancel", i):
            return c.CancelAssignment(pick(assignments, i))
        case ("ack", i):
            return c.AckAssignment(pick(assignments, i))
        case ("flag", i):
            return c.FlagUnacknowledged(pick(assignments, i), format_at(node.log.clock()))
        case ("status", unit, status):
            return c.ChangeUnitStatus(unit, status)
        case ("note", i, text):
            return c.AddNote(pick(incidents, i), f"n{n}", text)
        case ("close", i):
            return c.CloseIncident(pick(incidents, i))


async def run(log, steps):
    clock = log.clock
    node = Node(log, Tracks(log.engine), MemoryBus(), catalog(), snapshot_every=7, poll_interval_s=60)
    await node.start()
    await node.handle(c.CommissionUnits(catalog().city.units), ADMIN)
    for n, op in enumerate(steps):
        clock.advance(seconds=n % 3)
        if op[0] == "wait":
            clock.advance(hours=op[1])
            continue
        try:
            await node.handle(command(node, n, op), ADMIN)
        except CommandpostError:
            pass  # refused commands must leave no trace, which the equality below checks
    await node.stop()
    return node


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=s.lists(step, max_size=40))
def test_folding_the_log_from_zero_gives_the_live_state(backend, tmp_path_factory, steps):
    log = fresh_log(backend, tmp_path_factory.mktemp("prop"), Clock())
    try:
        node = asyncio.run(run(log, steps))
        assert st.fold(log.iter_all()) == node.state
        rebuilt, _ = node.rebuild()
        assert rebuilt == node.state
        assert log.verify().ok
    finally:
        log.engine.dispose()
