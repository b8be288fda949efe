"""Decisions, written as: given these events, when this command, then these events."""

import pytest

from coordinator import commands as c
from coordinator import events as ev
from coordinator.errors import Conflict, Invalid, NotFound
from coordinator.handlers import decide

from ..builders import IN_EAST, IN_WEST, ON_BORDER, OUTSIDE, T0, catalog, given
from coordinator.log import format_at

AT = format_at(T0)


def report(incident_id="i1", kind="structure_fire", where=IN_WEST, priority=None):
    return c.ReportIncident(incident_id, kind, priority, where, AT, "1 Main St", "smoke showing")


def reported(incident_id="i1", kind="structure_fire", agencies=("ems", "fd", "pd")):
    return ev.IncidentReported(incident_id=incident_id, incident_type=kind, priority=1,
                               location=IN_WEST.to_json(), reported_at=AT, districts=[], agencies=list(agencies))


def assigned(unit="E1", assignment="a1", incident="i1"):
    return [ev.UnitAssigned(incident_id=incident, unit_id=unit, assignment_id=assignment),
            ev.UnitStatusChanged(unit_id=unit, status="dispatched", previous="available", incident_id=incident)]


class TestReportIncident:
    def test_records_the_districts_that_cover_the_point_and_the_agencies_the_plan_needs(self):
        decision = decide(given(), report(), catalog())
        [event] = decision.events
        assert isinstance(event, ev.IncidentReported)
        assert [(d["agency_id"], d["district_id"]) for d in event.districts] == [("ems", "Z1"), ("fd", "1"), ("pd", "WEST")]
        assert event.agencies == ["ems", "fd", "pd"]
        assert decision.expect == {"incident/i1": 0}

    def test_a_point_on_a_shared_border_belongs_to_both_beats(self):
        [event] = decide(given(), report(where=ON_BORDER), catalog()).events
        assert [d["district_id"] for d in event.districts if d["agency_id"] == "pd"] == ["EAST", "WEST"]

    def test_only_agencies_whose_kind_is_in_the_plan_are_involved(self):
        [event] = decide(given(), report(kind="robbery_in_progress", where=IN_EAST), catalog()).events
        assert "pd" in event.agencies and "fd" not in event.agencies

    def test_outside_every_district_the_incident_is_still_recorded_with_no_district(self):
        [event] = decide(given(), report(where=OUTSIDE), catalog()).events
        assert event.districts == [] and event.agencies == []

    def test_priority_defaults_to_the_type_and_can_be_overridden(self):
        default = catalog().plans.incident_type("structure_fire").default_priority
        assert decide(given(), report(), catalog()).events[0].priority == default
        assert decide(given(), report(priority=4), catalog()).events[0].priority == 4

    def test_an_unknown_type_is_refused_with_the_known_types_named(self):
        with pytest.raises(Invalid, match="unknown incident type 'volcano'.*structure_fire"):
            decide(given(), report(kind="volcano"), catalog())

    def test_the_same_id_twice_is_a_conflict(self):
        with pytest.raises(Conflict):
            decide(given(reported()), report(), catalog())


class TestAssignUnits:
    def test_dispatches_each_unit_expecting_the_versions_it_saw(self):
        state = given(reported())
        decision = decide(state, c.AssignUnits("i1", ("E1", "M1"), ("a1", "a2")), catalog())
        assert decision.events == (*assigned("E1", "a1"), *assigned("M1", "a2"))
        assert decision.expect == {"incident/i1": 1, "unit/E1": 1, "unit/M1": 1}

    def test_a_unit_already_dispatched_is_a_conflict_naming_where_it_is(self):
        state = given(reported(), *assigned("E1"), reported("i2"))
        with pytest.raises(Conflict, match="E1 is no longer available: it is dispatched .*incident i1"):
            decide(state, c.AssignUnits("i2", ("E1",), ("a9",)), catalog())

    def test_unknown_unit_and_unknown_incident_are_not_found(self):
        with pytest.raises(NotFound, match="No unit X9"):
            decide(given(reported()), c.AssignUnits("i1", ("X9",), ("a1",)), catalog())
        with pytest.raises(NotFound, match="No incident nope"):
            decide(given(), c.AssignUnits("nope", ("E1",), ("a1",)), catalog())

    def test_the_same_unit_twice_in_one_request_is_invalid(self):
        with pytest.raises(Invalid):
            decide(given(reported()), c.AssignUnits("i1", ("E1", "E1"), ("a1", "a2")), catalog())

    def test_a_closed_incident_takes_no_units(self):
        with pytest.raises(Conflict, match="closed"):
            decide(given(reported(), ev.IncidentClosed(incident_id="i1")), c.AssignUnits("i1", ("E1",), ("a1",)), catalog())


class TestUnitStatus:
    def test_the_lifecycle_is_enforced(self):
        with pytest.raises(Invalid, match="E1 cannot go from available to on_scene"):
            decide(given(), c.ChangeUnitStatus("E1", "on_scene"), catalog())

    def test_dispatch_happens_only_through_an_assignment(self):
        with pytest.raises(Invalid, match="assigning it to an incident"):
            decide(given(), c.ChangeUnitStatus("E1", "dispatched"), catalog())

    def test_an_unknown_status_is_invalid(self):
        with pytest.raises(Invalid, match="unknown unit status 'flying'"):
            decide(given(), c.ChangeUnitStatus("E1", "flying"), catalog())

    def test_en_route_acknowledges_an_unacknowledged_assignment(self):
        decision = decide(given(reported(), *assigned()), c.ChangeUnitStatus("E1", "en_route"), catalog())
        assert decision.events == (
            ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1"),
            ev.UnitStatusChanged(unit_id="E1", status="en_route", previous="dispatched", incident_id="i1"),
        )

    def test_available_while_engaged_clears_the_assignment(self):
        state = given(reported(), *assigned(), ev.UnitStatusChanged(unit_id="E1", status="en_route",
                                                                    previous="dispatched", incident_id="i1"))
        decision = decide(state, c.ChangeUnitStatus("E1", "available"), catalog())
        assert decision.events == (
            ev.AssignmentEnded(incident_id="i1", unit_id="E1", assignment_id="a1", reason="cleared"),
            ev.UnitStatusChanged(unit_id="E1", status="available", previous="en_route", incident_id="i1"),
        )
        assert set(decision.expect) == {"unit/E1", "incident/i1"}


class TestAcknowledgeCancelClose:
    def test_ack_once_then_a_repeat_changes_nothing(self):
        state = given(reported(), *assigned())
        assert decide(state, c.AckAssignment("a1"), catalog()).events == (
            ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1"),)
        state = given(reported(), *assigned(), ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1"))
        assert decide(state, c.AckAssignment("a1"), catalog()).events == ()

    def test_cancel_frees_the_unit(self):
        decision = decide(given(reported(), *assigned()), c.CancelAssignment("a1", "wrong unit"), catalog())
        assert decision.events == (
            ev.AssignmentEnded(incident_id="i1", unit_id="E1", assignment_id="a1", reason="cancelled"),
            ev.UnitStatusChanged(unit_id="E1", status="available", previous="dispatched", incident_id="i1"),
        )

    def test_cancel_twice_is_a_conflict(self):
        state = given(reported(), *assigned(),
                      ev.AssignmentEnded(incident_id="i1", unit_id="E1", assignment_id="a1", reason="cancelled"),
                      ev.UnitStatusChanged(unit_id="E1", status="available", previous="dispatched", incident_id="i1"))
        with pytest.raises(Conflict, match="already ended"):
            decide(state, c.CancelAssignment("a1"), catalog())

    def test_close_releases_every_unit_still_assigned(self):
        decision = decide(given(reported(), *assigned("E1", "a1"), *assigned("M1", "a2")),
                          c.CloseIncident("i1", "fire out"), catalog())
        assert [type(e).__name__ for e in decision.events] == [
            "AssignmentEnded", "UnitStatusChanged", "AssignmentEnded", "UnitStatusChanged", "IncidentClosed"]
        assert decision.events[-1] == ev.IncidentClosed(incident_id="i1", disposition="fire out")
        assert {e.reason for e in decision.events if isinstance(e, ev.AssignmentEnded)} == {"incident_closed"}

    def test_close_twice_is_a_conflict(self):
        with pytest.raises(Conflict, match="already closed"):
            decide(given(reported(), ev.IncidentClosed(incident_id="i1")), c.CloseIncident("i1"), catalog())


class TestCommissionUnits:
    def test_a_unit_of_a_type_from_another_agency_kind_is_invalid(self):
        from agencies.city import UnitSpec
        spec = UnitSpec("X1", "pd", "engine", None, IN_WEST)
        with pytest.raises(Invalid, match="X1 is a fire unit type"):
            decide(given(), c.CommissionUnits((spec,)), catalog())

    def test_commissioning_twice_is_a_conflict(self):
        from agencies.city import UnitSpec
        with pytest.raises(Conflict, match="E1 is already in service"):
            decide(given(), c.CommissionUnits((UnitSpec("E1", "fd", "engine", "1", IN_WEST),)), catalog())
