"""The Redis Streams bus against a real Redis (CP_TEST_REDIS_URL), and the in-process bus by the same
contract; two nodes on one log hear each other's events and positions over it, not by polling."""

import asyncio
import os
import time
import uuid

import pytest
import redis

from coordinator import commands as c
from coordinator.auth import Principal
from coordinator.bus import MemoryBus, RedisBus, make_bus
from coordinator.log import EventLog
from coordinator.node import Node
from coordinator.tracks import Fix, Tracks
from geo import LatLon

from ..adapters import BACKENDS, fresh_log
from ..builders import IN_WEST, Clock, catalog
from ..conftest import service_url

ADMIN = Principal("admin", "test")


def redis_url() -> str:
    return service_url("CP_TEST_REDIS_URL", "Redis contract")


@pytest.fixture
def prefix():
    """A key prefix of this test's own, and its keys deleted afterwards."""
    name = f"{os.environ.get('CP_TEST_REDIS_PREFIX', 'cp-test')}:{uuid.uuid4().hex[:8]}"
    yield name
    if os.environ.get("CP_TEST_REDIS_URL"):
        import redis

        client = redis.from_url(os.environ["CP_TEST_REDIS_URL"])
        keys = list(client.scan_iter(f"{name}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def buses(kind: str, prefix: str):
    if kind == "memory":
        bus = MemoryBus()
        return bus, bus
    return make_bus(redis_url(), prefix), make_bus(redis_url(), prefix)


async def received(subscription, n: int, timeout: float = 3.0) -> list[dict]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        message = await subscription.get(timeout=deadline - time.monotonic())
        if message is not None and "reconnected" not in message:
            got.append(message)
    return got


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_every_subscriber_gets_each_message_in_order(kind, prefix):
    async def scenario():
        publisher, listener = buses(kind, prefix)
        first, second = listener.subscribe(), listener.subscribe()
        await asyncio.sleep(0.2)  # the readers are blocked in XREAD before anything is published
        for n in range(50):
            await publisher.publish({"seq": n, "node": "a"})
        got = await received(first, 50), await received(second, 50)
        assert await publisher.ping() and await listener.ping()
        first.close()
        second.close()
        await publisher.close()
        await listener.close()
        return got

    for got in asyncio.run(scenario()):
        assert [m["seq"] for m in got] == list(range(50))


def test_an_unknown_bus_url_is_refused_with_a_message():
    with pytest.raises(ValueError, match="redis://host:port/db"):
        make_bus("amqp://127.0.0.1")


def test_a_bus_that_cannot_be_reached_fails_fast_and_says_so():
    """Nothing listens on port 1: publish raises at once, ping says no (a node logs it and polls)."""
    async def scenario():
        bus = RedisBus("redis://127.0.0.1:1/0", "cp-unreachable")
        started = time.monotonic()
        with pytest.raises((redis.RedisError, OSError)):
            await bus.publish({"seq": 1})
        alive = await bus.ping()
        await bus.close()
        return alive, time.monotonic() - started

    alive, took = asyncio.run(scenario())
    assert alive is False and took < 3.0


@pytest.mark.redis
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_nodes_hear_each_others_events_and_positions_over_redis_not_by_polling(backend, tmp_path, prefix):
    """The follower polls only once a minute here, so anything that arrives within a second came by the bus."""
    url = redis_url()
    log = fresh_log(backend, tmp_path, Clock())

    async def scenario():
        a, b = (Node(EventLog(log.engine, log.clock), Tracks(log.engine), make_bus(url, prefix), catalog(),
                     poll_interval_s=60) for _ in range(2))
        await a.start()
        await b.start()
        await asyncio.sleep(0.2)  # both readers are in XREAD
        try:
            await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
            started = time.monotonic()
            await a.handle(c.ReportIncident("i-1", "structure_fire", 2, IN_WEST, "2026-11-26T20:00:00Z"), ADMIN)
            while "i-1" not in b.state.incidents and time.monotonic() - started < 5:
                await asyncio.sleep(0.005)
            event_s = time.monotonic() - started
            near = LatLon(IN_WEST.lat + 0.001, IN_WEST.lon)
            started = time.monotonic()
            await a.move("E2", Fix(near, log.clock()), ADMIN)
            while b.fleet.location("E2") != near and time.monotonic() - started < 5:
                await asyncio.sleep(0.005)
            fix_s = time.monotonic() - started
            return event_s, fix_s, b.state == a.state, b.tracks.latest.get("E2")
        finally:
            for node in (a, b):
                await node.stop()
                await node.bus.close()

    event_s, fix_s, same, fix = asyncio.run(scenario())
    log.engine.dispose()
    assert event_s < 1.0, f"node B applied node A's report after {event_s:.2f} s: not through the bus"
    assert same, "the two projections differ"
    assert fix_s < 1.0, f"node B learned node A's position after {fix_s:.2f} s"
    assert fix is not None and fix.location == LatLon(IN_WEST.lat + 0.001, IN_WEST.lon)
