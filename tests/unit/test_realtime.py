"""The hub: bounded queues that overflow into a resync mark, never a silent drop; telemetry
throttled per unit, latest wins."""

import json

from coordinator.realtime import OVERFLOW, Hub, Pushed, Telemetry

from coordinator import events as ev

from ..builders import IN_WEST, record


class Tick:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drain(sub):
    items = []
    while not sub.queue.empty():
        items.append(sub.queue.get_nowait())
    return items


def events(n, start=1):
    return record([ev.IncidentReported(incident_id=f"i{start + k}", incident_type="fall", priority=3,
                                       location=IN_WEST.to_json(), reported_at="2026-11-26T20:00:00.000000Z",
                                       districts=[], agencies=[]) for k in range(n)], start_seq=start)


def test_each_event_goes_once_to_every_subscription_that_admits_it_encoded_once():
    hub = Hub()
    everything, odd = hub.subscribe(lambda rec: True), hub.subscribe(lambda rec: rec.seq % 2 == 1)
    for rec in events(4):
        hub.publish(rec)
    sent = drain(everything)
    assert [p.record.seq for p in sent] == [1, 2, 3, 4]
    assert [p.record.seq for p in drain(odd)] == [1, 3]
    assert all(isinstance(p, Pushed) and json.loads(p.text)["seq"] == p.record.seq for p in sent)


def test_a_full_queue_is_emptied_and_marked_for_resync_while_the_others_carry_on():
    hub = Hub(queue_size=3)
    slow, fast = hub.subscribe(lambda rec: True), hub.subscribe(lambda rec: True)
    for n, rec in enumerate(events(5)):
        hub.publish(rec)
        if n % 2:
            drain(fast)                # the fast one keeps up
    assert slow.overflowed and drain(slow) == [OVERFLOW]
    hub.publish(events(1, start=6)[0])
    assert drain(slow) == []           # nothing more after the mark: the client resyncs from the log
    assert not fast.overflowed and [p.record.seq for p in drain(fast)] == [5, 6]


def test_unsubscribed_sockets_get_nothing():
    hub = Hub()
    sub = hub.subscribe(lambda rec: True)
    hub.unsubscribe(sub)
    hub.publish(events(1)[0])
    assert drain(sub) == []


def test_telemetry_is_throttled_per_unit_and_the_newest_fix_is_sent_at_the_end_of_the_interval():
    tick = Tick()
    hub = Hub(telemetry_interval_s=1.0, monotonic=tick)
    console = hub.subscribe(lambda rec: True, sees_unit=lambda unit_id: unit_id != "SECRET")
    blind = hub.subscribe(lambda rec: True)            # no telemetry wanted
    hub.position("E1", {"lat": 1.0})
    tick.now = 0.3
    hub.position("E1", {"lat": 2.0})
    hub.position("E1", {"lat": 3.0})
    hub.position("E2", {"lat": 9.0})
    hub.position("SECRET", {"lat": 0.0})
    first = [json.loads(t.text) for t in drain(console)]
    assert [(m["unit_id"], m["position"]["lat"]) for m in first] == [("E1", 1.0), ("E2", 9.0)]
    hub.flush()
    assert drain(console) == []                        # E1's interval has not passed yet
    tick.now = 1.0
    hub.flush()
    [late] = drain(console)
    assert isinstance(late, Telemetry) and json.loads(late.text)["position"]["lat"] == 3.0
    assert drain(blind) == []


def test_telemetry_skips_a_queue_more_than_half_full_instead_of_forcing_a_resync():
    hub = Hub(queue_size=4)
    sub = hub.subscribe(lambda rec: True, sees_unit=lambda unit_id: True)
    for rec in events(3):
        hub.publish(rec)
    hub.position("E1", {"lat": 1.0})
    assert not sub.overflowed and len(drain(sub)) == 3


def test_settle_waits_for_queues_that_drain_and_not_for_a_socket_that_stopped_reading():
    import asyncio

    async def scenario():
        hub = Hub(queue_size=10)
        sub = hub.subscribe(lambda rec: True)
        for rec in events(8):
            hub.publish(rec)

        async def reader():
            while not sub.queue.empty():
                await asyncio.sleep(0.001)
                sub.queue.get_nowait()

        task = asyncio.create_task(reader())
        waited = await hub.settle(5.0)
        assert sub.queue.qsize() <= 5 and waited < 1.0        # returned once the reader drained it
        await task
        stuck = hub.subscribe(lambda rec: True)
        for rec in events(8, start=9):
            hub.publish(rec)
        assert await hub.settle(5.0) < 0.5                        # nobody reads it: not waited for
        assert not stuck.overflowed and stuck.queue.qsize() == 8

    asyncio.run(scenario())


def test_a_fix_skipped_while_a_socket_was_behind_is_sent_once_it_has_caught_up():
    tick = Tick()
    hub = Hub(queue_size=4, telemetry_interval_s=1.0, monotonic=tick)
    sub = hub.subscribe(lambda rec: True, sees_unit=lambda unit_id: True)
    for rec in events(3):
        hub.publish(rec)
    hub.position("E1", {"lat": 1.0})          # behind: skipped, owed
    tick.now = 0.5
    hub.position("E1", {"lat": 2.0})          # the unit parks here and says no more
    hub.flush()
    assert [type(x).__name__ for x in drain(sub)] == ["Pushed"] * 3
    tick.now = 2.0
    hub.flush()
    [owed] = drain(sub)
    assert json.loads(owed.text)["position"] == {"lat": 2.0}
    hub.flush()
    assert drain(sub) == []


def test_units_streams_are_offered_each_event_before_the_consoles():
    hub = Hub()
    order = []
    for n in range(5):
        hub.subscribe(lambda rec, n=n: order.append(f"console{n}") or True)
    hub.subscribe(lambda rec: order.append("unit") or True, first=True)
    hub.publish(events(1)[0])
    assert order[0] == "unit" and len(order) == 6
