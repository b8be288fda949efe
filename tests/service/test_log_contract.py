"""The event log's contract, the same on SQLite and on PostgreSQL."""

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from coordinator import events as ev
from coordinator.errors import Conflict, Invalid
from coordinator.handlers import Decision
from coordinator.log import events_table

from ..adapters import BACKENDS, fresh_log
from ..builders import Clock


@pytest.fixture(params=BACKENDS)
def log(request, tmp_path):
    event_log = fresh_log(request.param, tmp_path, Clock())
    yield event_log
    event_log.engine.dispose()


def note(incident="i1", text="hello"):
    return ev.NoteAdded(incident_id=incident, note_id=f"n-{text}", text=text)


def test_appends_number_events_in_order_and_chain_their_hashes(log):
    first = log.append(Decision((note(text="a"), note(text="b")), {"incident/i1": 0}), "dispatcher:d1").records
    second = log.append(Decision((note("i2", "c"),), {"incident/i2": 0}), "dispatcher:d2").records
    assert [r.seq for r in first + second] == [1, 2, 3]
    assert [r.version for r in first + second] == [1, 2, 1]
    assert first[0].prev_hash == ev.GENESIS_HASH
    assert first[1].prev_hash == first[0].hash and second[0].prev_hash == first[1].hash
    assert all(ev.expected_hash(r) == r.hash for r in first + second)
    assert log.read(0) == list(first + second)
    assert log.read(1, limit=1) == [first[1]]
    assert log.head() == 3
    assert log.verify().ok and log.verify().checked == 3


def test_a_read_of_some_types_skips_the_others_and_keeps_their_order(log):
    closed = ev.IncidentClosed(incident_id="i1")
    records = log.append(Decision((note(text="a"), closed, note("i2", "b")), {"incident/i1": 0, "incident/i2": 0}),
                         "dispatcher:d1").records
    assert log.read(0, types=("NoteAdded",)) == [records[0], records[2]]
    assert log.read(0, types=("IncidentClosed", "NoteAdded"), until_seq=2) == list(records[:2])
    assert log.read(1, limit=1, types=("NoteAdded",)) == [records[2]]
    assert log.read(0, types=("UnitAssigned",)) == []


def test_a_read_by_actor_is_the_audit_of_one_person(log):
    alice = log.append(Decision((note(text="a"),), {"incident/i1": 0}), "dispatcher:alice").records
    log.append(Decision((note("i2", "b"),), {"incident/i2": 0}), "dispatcher:bob")
    later = log.append(Decision((note(text="c"),), {"incident/i1": 1}), "dispatcher:alice").records
    assert log.read(0, actor="dispatcher:alice") == list(alice + later)
    assert log.read(0, actor="dispatcher:alice", limit=1, types=("NoteAdded",)) == list(alice)
    assert log.read(0, actor="dispatcher:carol") == []
    assert log.read(0, actor="'; DROP TABLE events; --") == [] and log.head() == 3


def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(log):
    log.append(Decision((note(),), {"incident/i1": 0}), "a")
    with pytest.raises(Conflict, match="incident/i1 has changed"):
        log.append(Decision((note(text="late"), note("i2", "x")), {"incident/i1": 0, "incident/i2": 0}), "b")
    assert log.head() == 1


def test_time_never_runs_backwards_even_if_a_clock_does(log):
    clock = log.clock
    first = log.append(Decision((note(text="a"),), {"incident/i1": 0}), "a").records[0]
    clock.now -= timedelta(minutes=5)  # another node's clock is behind
    second = log.append(Decision((note(text="b"),), {"incident/i1": 1}), "a").records[0]
    assert second.at >= first.at


def test_the_same_idempotency_key_returns_the_first_result(log):
    first = log.append(Decision((note(),), {"incident/i1": 0}), "a", key="k1", body_hash="h1")
    appending = log.begin(keys=[("k1", "h1"), ("k2", "h1"), ("k1", "h2")])
    appending.abort()
    assert appending.earlier[("k1", "h1")] == type(first)(first.records, replayed=True)
    assert ("k2", "h1") not in appending.earlier
    assert isinstance(appending.earlier[("k1", "h2")], Invalid)
    assert "already used for a different request" in appending.earlier[("k1", "h2")].message
    again = log.append(Decision((note(text="retry"),), {"incident/i1": 0}), "a", key="k1", body_hash="h1")
    assert again.replayed and again.records == first.records


def test_verify_names_the_first_altered_event(log):
    for n in range(5):
        log.append(Decision((note(text=str(n)),), {"incident/i1": n}), "a")
    with log.engine.begin() as conn:  # someone with database access drops the guard and rewrites history
        if log.dialect == "postgresql":
            conn.execute(sa.text("DROP TRIGGER events_append_only ON events"))
        else:
            conn.execute(sa.text("DROP TRIGGER events_no_update"))
        conn.execute(events_table.update().where(events_table.c.seq == 3).values(
            data={"incident_id": "i1", "note_id": "n-2", "text": "nothing happened"}))
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 3 and "altered" in result.reason


def test_the_log_refuses_updates_and_deletes(log):
    log.append(Decision((note(),), {"incident/i1": 0}), "a")
    for statement in (events_table.update().values(actor="mallory"), events_table.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with log.engine.begin() as conn:
                conn.execute(statement)
    assert log.read(0)[0].actor == "a"


def test_snapshots_are_found_by_time_and_seq(log):
    log.save_snapshot(10, "2026-11-26T20:00:00.000000Z", '{"a": 1}')
    log.save_snapshot(20, "2026-11-26T21:00:00.000000Z", '{"a": 2}')
    assert log.latest_snapshot() == (20, '{"a": 2}')
    from coordinator.log import parse_at
    assert log.latest_snapshot(at_or_before=parse_at("2026-11-26T20:30:00Z")) == (10, '{"a": 1}')
    assert log.latest_snapshot(at_or_before=parse_at("2026-11-26T19:00:00Z")) is None


def test_two_writers_racing_leave_seq_contiguous_and_the_chain_unbroken(log):
    errors = []

    def writer(name):
        try:
            for n in range(1000):
                log.append(Decision((note(f"{name}-{n}", name),), {f"incident/{name}-{n}": 0}), name)
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = list(log.iter_all())
    assert [r.seq for r in records] == list(range(1, 2001))
    assert log.verify().ok


def test_two_writers_expecting_the_same_version_one_wins(log):
    log.append(Decision((note(),), {"incident/i1": 0}), "a")
    outcomes = []
    barrier = threading.Barrier(2)

    def writer(name):
        barrier.wait()
        try:
            log.append(Decision((note(text=name),), {"incident/i1": 1}), name)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert log.head() == 2


def test_negative_zero_hashes_as_it_is_stored(log):
    event = ev.IncidentReported(incident_id="i0", incident_type="medical_emergency", priority=2,
                                location={"lat": -0.0, "lon": -0.0}, reported_at="2026-11-26T20:00:00.000000Z",
                                districts=[], agencies=[])
    [written] = log.append(Decision((event,), {"incident/i0": 0}), "a").records
    assert log.read(0) == [written]
    assert log.verify().ok


def test_seq_at_a_time_is_the_last_event_committed_by_then(log):
    from coordinator.log import parse_at
    clock = log.clock
    first = log.append(Decision((note(text="a"),), {"incident/i1": 0}), "a").records[0]
    clock.now += timedelta(minutes=1)
    log.append(Decision((note(text="b"),), {"incident/i1": 1}), "a")
    assert log.seq_at(parse_at(first.at)) == 1
    assert log.seq_at(parse_at(first.at) + timedelta(seconds=30)) == 1
    assert log.seq_at(parse_at(first.at) - timedelta(seconds=1)) == 0
    assert log.seq_at(clock.now) == 2
    assert [r.seq for r in log.iter_all(until_seq=1)] == [1]
