"""Two nodes on one log (SQLite file or PostgreSQL): writes interleave and every 2xx is applied once."""

import asyncio
from datetime import timedelta

import pytest

from coordinator import commands as c
from coordinator import state as st
from coordinator.auth import Principal
from coordinator.bus import MemoryBus
from coordinator.errors import Conflict
from coordinator.handlers import decide
from coordinator.log import EventLog
from coordinator.node import Node
from coordinator.tracks import Fix, Tracks
from geo import LatLon

from ..adapters import BACKENDS, fresh_log
from ..builders import IN_WEST, Clock, catalog

ADMIN = Principal("admin", "test")


def node_on(engine, clock) -> Node:
    return Node(EventLog(engine, clock), Tracks(engine), MemoryBus(), catalog(), snapshot_every=25, poll_interval_s=60)


@pytest.mark.parametrize("backend", BACKENDS)
def test_interleaved_writers_on_two_nodes_never_fail_after_the_commit(backend, tmp_path):
    log = fresh_log(backend, tmp_path, Clock())

    async def scenario():
        a, b = node_on(log.engine, log.clock), node_on(log.engine, log.clock)
        await a.start()
        await b.start()
        await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)

        async def report(node, n):
            await node.handle(c.ReportIncident(f"i-{n}", "cardiac_arrest", None, IN_WEST, "2026-11-26T20:00:00Z"), ADMIN)

        await asyncio.gather(*(report(a if n % 2 else b, n) for n in range(60)))
        outcomes = await asyncio.gather(
            a.handle(c.AssignUnits("i-1", ("M1",), ("x1",)), ADMIN),
            b.handle(c.AssignUnits("i-2", ("M1",), ("x2",)), ADMIN), return_exceptions=True)
        await a.catch_up()
        await b.catch_up()
        await a.stop()
        await b.stop()
        return a, b, outcomes

    a, b, outcomes = asyncio.run(scenario())
    assert len(a.state.incidents) == 60
    assert a.state == b.state == st.fold(log.iter_all())
    assert sorted(type(o).__name__ for o in outcomes) == ["AppendResult", "Conflict"]
    assert isinstance(next(o for o in outcomes if isinstance(o, Exception)), Conflict)
    log.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_position_reported_to_one_node_reaches_the_other_nodes_recommendations(backend, tmp_path):
    log = fresh_log(backend, tmp_path, Clock())
    near = LatLon(IN_WEST.lat, IN_WEST.lon + 0.002)

    async def scenario():
        a, b = node_on(log.engine, log.clock), node_on(log.engine, log.clock)
        await a.start()
        await b.start()
        await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
        await a.move("E3", Fix(near, log.clock()), ADMIN)
        await b.catch_up()
        moved = await b.refresh_positions()
        decision = decide(b.state, c.ReportIncident("i-1", "vehicle_fire", None, IN_WEST, "2026-11-26T20:00:00Z"),
                          b.catalog)
        await a.stop()
        await b.stop()
        return moved, decision

    moved, decision = asyncio.run(scenario())
    made = decision.events[1]
    [engine] = [line for line in made.lines if line["capability"] == "engine"]
    assert moved == 1 and [u["unit_id"] for u in engine["units"]] == ["E3"]
    log.engine.dispose()


def test_a_burst_from_another_node_reaches_this_nodes_listeners_in_chunks_with_time_to_drain(tmp_path):
    log = fresh_log("sqlite", tmp_path, Clock())
    delivered: list[int] = []
    chunks: list[int] = []

    async def scenario():
        a, b = node_on(log.engine, log.clock), node_on(log.engine, log.clock)
        await a.start()
        await b.start()
        b.listeners.append(lambda rec: delivered.append(rec.seq))

        async def settle(most_s):
            chunks.append(len(delivered))
            return 0.0

        b.settle = settle
        await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
        for n in range(150):
            await a.handle(c.ReportIncident(f"i-{n}", "fall", None, IN_WEST, "2026-11-26T20:00:00Z"), ADMIN)
        await b.catch_up()
        await b.published()
        await a.stop()
        await b.stop()

    asyncio.run(scenario())
    sizes = [later - earlier for earlier, later in zip([0, *chunks], [*chunks, len(delivered)])]
    assert delivered == list(range(1, 310)) and max(sizes) <= 100 and len(chunks) >= 3
    log.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_node_hearing_only_positions_still_reads_the_log_every_poll_interval(backend, tmp_path):
    """A writer that sends no hint (a lost one): B hears a stream of A's positions on the bus all along,
    and must still read the log within its poll interval, not wait for a quiet moment that never comes."""
    log = fresh_log(backend, tmp_path, Clock())

    async def scenario():
        bus = MemoryBus()
        a = Node(EventLog(log.engine, log.clock), Tracks(log.engine), bus, catalog(), poll_interval_s=60)
        b = Node(EventLog(log.engine, log.clock), Tracks(log.engine), bus, catalog(), poll_interval_s=0.3)
        await a.start()
        await b.start()
        moving = True

        async def drive():  # E1 reports a position every 20 ms
            n = 0
            while moving:
                n += 1
                log.clock.advance(seconds=1)
                await a.move("E1", Fix(LatLon(IN_WEST.lat + n * 1e-4, IN_WEST.lon), log.clock()), ADMIN)
                await asyncio.sleep(0.02)

        try:
            await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
            driver = asyncio.create_task(drive())
            await asyncio.sleep(0.7)  # positions flowing to B for more than two of its poll intervals
            decision = decide(a.state, c.ReportIncident("quiet", "structure_fire", 2, IN_WEST, "2026-11-26T20:00:00Z"),
                              a.catalog)
            EventLog(log.engine, log.clock).append(decision, "test")  # a writer that tells nobody
            loop = asyncio.get_running_loop()
            started = loop.time()
            while "quiet" not in b.state.incidents and loop.time() - started < 3:
                await asyncio.sleep(0.01)
            waited = loop.time() - started
            moving = False
            await driver
            return waited, b.tracks.latest.get("E1"), a.tracks.latest.get("E1")
        finally:
            await a.stop()
            await b.stop()

    waited, heard, sent = asyncio.run(scenario())
    log.engine.dispose()
    assert heard is not None and heard.at > sent.at - timedelta(seconds=5), "B did not hear A's positions"
    assert waited < 0.9, f"node B read the log {waited:.2f} s after a write it heard no hint of (poll: 0.3 s)"
