"""Which assignments are overdue for an ack: a pure function of state, a time and the timeout."""

from datetime import timedelta

from coordinator import events as ev
from coordinator import state as st
from coordinator.watchdog import overdue

from ..builders import T0, given, record

TIMEOUT = timedelta(seconds=30)


def reported(incident_id="i1"):
    return ev.IncidentReported(incident_id=incident_id, incident_type="structure_fire", priority=1,
                               location={"lat": 37.75, "lon": -122.47}, reported_at="2026-11-26T20:00:00.000000Z",
                               districts=[], agencies=["ems", "fd", "pd"])


def assigned(unit, assignment, incident="i1"):
    return ev.UnitAssigned(incident_id=incident, unit_id=unit, assignment_id=assignment)


def then(state: st.State, *events: ev.Event, after_s: float) -> st.State:
    """``events`` recorded ``after_s`` seconds after T0, on top of ``state``."""
    return st.fold(record(events, start_seq=state.seq + 1, at=T0 + timedelta(seconds=after_s),
                          versions=state.versions), state)


def test_an_assignment_is_overdue_once_the_timeout_has_passed_to_the_microsecond():
    state = given(reported(), assigned("E1", "a1"))
    assert overdue(state, T0 + timedelta(seconds=29.999999), TIMEOUT) == []
    assert overdue(state, T0 + TIMEOUT, TIMEOUT) == ["a1"]


def test_acknowledged_ended_and_already_flagged_assignments_are_never_overdue():
    state = given(reported(), assigned("E1", "a1"), assigned("E2", "a2"), assigned("E3", "a3"), assigned("T1", "a4"),
                  ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1"),
                  ev.AssignmentEnded(incident_id="i1", unit_id="E2", assignment_id="a2", reason="cancelled"),
                  ev.AssignmentUnacknowledged(incident_id="i1", unit_id="E3", assignment_id="a3", waited_s=30.0))
    assert overdue(state, T0 + timedelta(hours=1), TIMEOUT) == ["a4"]


def test_oldest_first_then_by_id():
    state = given(reported(), reported("i2"), assigned("E2", "b", "i2"), assigned("E1", "c"))
    state = then(state, assigned("T1", "a"), after_s=10)
    assert overdue(state, T0 + timedelta(seconds=35), TIMEOUT) == ["b", "c"]
    assert overdue(state, T0 + timedelta(seconds=40), TIMEOUT) == ["b", "c", "a"]


def test_the_timeout_is_the_callers():
    state = given(reported(), assigned("E1", "a1"))
    now = T0 + timedelta(seconds=45)
    assert overdue(state, now, timedelta(seconds=60)) == []
    assert overdue(state, now, timedelta(seconds=5)) == ["a1"]
