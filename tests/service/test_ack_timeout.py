"""The ack watchdog on real nodes (SQLite, or PostgreSQL when configured), with an injected clock:
an assignment not acknowledged within the timeout is flagged once, with a replacement recommendation."""

import asyncio
from datetime import timedelta

import pytest

from coordinator import commands as c
from coordinator import state as st
from coordinator.auth import Principal
from coordinator.handlers import rederive
from coordinator.settings import from_env
from coordinator.watchdog import flag_overdue_once, watch_acks

from ..adapters import BACKENDS, fresh_log
from ..builders import IN_WEST, Clock, catalog
from .test_two_nodes import node_on

SYSTEM = Principal("admin", "system")
TIMEOUT = timedelta(seconds=30)
AT = "2026-11-26T20:00:00Z"


async def dispatched(node, incident_id="i1", units=("E1", "P1")):
    """A vehicle fire (one engine, one patrol car) with ``units`` assigned as ``<incident>-<unit>``."""
    await node.handle(c.ReportIncident(incident_id, "vehicle_fire", None, IN_WEST, AT), SYSTEM)
    await node.handle(c.AssignUnits(incident_id, units, tuple(f"{incident_id}-{u}" for u in units)), SYSTEM)


async def ack(node, unit_id, assignment_id):
    await node.handle(c.AckAssignment(assignment_id), Principal("unit", unit_id, unit=unit_id))


async def started(*nodes):
    for node in nodes:
        await node.start()
    await nodes[0].handle(c.CommissionUnits(catalog().city.units), SYSTEM)
    for node in nodes[1:]:
        await node.catch_up()


def after(log, seq):
    return [r for r in log.iter_all() if r.seq > seq]


def proposed(data, capability):
    [line] = [x for x in data["lines"] if x["capability"] == capability]
    return [u["unit_id"] for u in line["units"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unacknowledged_assignment_is_flagged_with_a_replacement_and_an_acknowledged_one_never(backend, tmp_path):
    clock = Clock()
    log = fresh_log(backend, tmp_path, clock)

    async def scenario():
        node = node_on(log.engine, clock)
        await started(node)
        await dispatched(node)
        await ack(node, "P1", "i1-P1")
        clock.advance(seconds=29)
        early = await flag_overdue_once(node, clock, TIMEOUT, SYSTEM)
        mark = node.state.seq
        clock.advance(seconds=2)
        flagged = await flag_overdue_once(node, clock, TIMEOUT, SYSTEM)
        clock.advance(minutes=10)
        again = await flag_overdue_once(node, clock, TIMEOUT, SYSTEM)
        await ack(node, "E1", "i1-E1")               # late, but it still counts
        await node.stop()
        return node, early, mark, flagged, again

    node, early, mark, flagged, again = asyncio.run(scenario())
    assert early == [] and flagged == ["i1-E1"] and again == []
    unacked, made, acked = after(log, mark)
    assert unacked.type == "AssignmentUnacknowledged" and unacked.actor == "admin:system"
    assert unacked.data == {"incident_id": "i1", "unit_id": "E1", "assignment_id": "i1-E1", "waited_s": 31.0}
    assert made.type == "RecommendationMade" and made.data["trigger"] == "unacknowledged"
    assert proposed(made.data, "engine") == ["E2"] and proposed(made.data, "patrol") == []
    assert rederive(made.data, node.catalog).to_json()["lines"] == made.data["lines"]
    assert acked.type == "AssignmentAcknowledged" and acked.data["assignment_id"] == "i1-E1"
    assignment = node.state.assignments["i1-E1"]
    assert assignment.active and assignment.unacknowledged_at and assignment.acknowledged_at
    assert node.state.incidents["i1"].recommendation["trigger"] == "unacknowledged"
    assert node.state.assignments["i1-P1"].unacknowledged_at is None
    assert st.fold(log.iter_all()) == node.state
    log.engine.dispose()


def test_the_watch_loop_flags_on_its_own_and_stops_when_cancelled(tmp_path):
    clock = Clock()
    log = fresh_log("sqlite", tmp_path, clock)

    async def scenario():
        node = node_on(log.engine, clock)
        await started(node)
        await dispatched(node, units=("E1",))
        watcher = asyncio.create_task(watch_acks(node, clock, 30.0, 0.01, SYSTEM))
        await asyncio.sleep(0.05)
        quiet = node.state.assignments["i1-E1"].unacknowledged_at
        clock.advance(seconds=31)
        for _ in range(500):                            # at most 5 s; a pass takes milliseconds
            if node.state.assignments["i1-E1"].unacknowledged_at:
                break
            await asyncio.sleep(0.01)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
        await node.stop()
        return quiet, watcher

    quiet, watcher = asyncio.run(scenario())
    assert quiet is None and watcher.cancelled()
    assert [r.type for r in log.iter_all()][-2:] == ["AssignmentUnacknowledged", "RecommendationMade"]
    log.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_nodes_watching_one_log_flag_each_assignment_exactly_once(backend, tmp_path):
    clock = Clock()
    log = fresh_log(backend, tmp_path, clock)

    async def scenario():
        a, b = node_on(log.engine, clock), node_on(log.engine, clock)
        await started(a, b)
        for n in range(4):
            await dispatched(a if n % 2 else b, f"i{n}", units=(("E1", "E2", "M1", "M2")[n],))
        await a.catch_up()
        await b.catch_up()
        clock.advance(seconds=31)
        passes = await asyncio.gather(*(flag_overdue_once(node, clock, TIMEOUT, SYSTEM) for node in (a, b, a, b)))
        watchers = [asyncio.create_task(watch_acks(node, clock, 30.0, 0.005, SYSTEM)) for node in (a, b)]
        await asyncio.sleep(0.1)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await a.catch_up()
        await b.catch_up()
        await a.stop()
        await b.stop()
        return a, b, passes

    a, b, passes = asyncio.run(scenario())
    assert sorted(x for flagged in passes for x in flagged) == ["i0-E1", "i1-E2", "i2-M1", "i3-M2"]
    flags = [r.data["assignment_id"] for r in log.iter_all() if r.type == "AssignmentUnacknowledged"]
    assert sorted(flags) == ["i0-E1", "i1-E2", "i2-M1", "i3-M2"]
    replacements = [r for r in log.iter_all() if r.type == "RecommendationMade" and r.data["trigger"] == "unacknowledged"]
    assert len(replacements) == 4
    assert a.state == b.state == st.fold(log.iter_all())
    log.engine.dispose()


def test_the_timeout_defaults_to_30_s_and_is_configurable_within_bounds():
    assert from_env({}).ack_timeout_s == 30.0
    assert from_env({"CP_ACK_TIMEOUT_S": "90"}).ack_timeout_s == 90.0


@pytest.mark.parametrize("raw", ["0", "0.5", "3601", "nan", "inf", "-30"])
def test_a_timeout_out_of_bounds_is_refused_with_a_message(raw):
    with pytest.raises(ValueError, match=f"CP_ACK_TIMEOUT_S must be a number of seconds from 1 to 3,600, got '{raw}'"):
        from_env({"CP_ACK_TIMEOUT_S": raw})


def test_a_timeout_that_is_not_a_number_is_refused_with_a_message():
    with pytest.raises(ValueError, match="CP_ACK_TIMEOUT_S must be a number, got 'soon'"):
        from_env({"CP_ACK_TIMEOUT_S": "soon"})
