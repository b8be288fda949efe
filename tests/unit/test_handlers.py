"""Decisions, written as: given these events, when this command, then these events."""

from datetime import timedelta

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as hs

from coordinator import commands as c
from coordinator import events as ev
from coordinator import state as st
from coordinator.auth import Principal, authorize
from coordinator.errors import Conflict, Forbidden, Invalid, NotFound
from coordinator.handlers import Policy, current_recommendation, decide, rederive
from coordinator.log import format_at
from geo import LatLon, haversine_m

from ..builders import IN_EAST, IN_WEST, ON_BORDER, OUTSIDE, T0, catalog, given

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
        event, recommended = decision.events
        assert isinstance(event, ev.IncidentReported) and isinstance(recommended, ev.RecommendationMade)
        assert [(d["agency_id"], d["district_id"]) for d in event.districts] == [("ems", "Z1"), ("fd", "1"), ("pd", "WEST")]
        assert event.agencies == ["ems", "fd", "pd"]
        assert decision.expect == {"incident/i1": 0}

    def test_a_point_on_a_shared_border_belongs_to_both_beats(self):
        event, _ = decide(given(), report(where=ON_BORDER), catalog()).events
        assert [d["district_id"] for d in event.districts if d["agency_id"] == "pd"] == ["EAST", "WEST"]

    def test_only_agencies_whose_kind_is_in_the_plan_are_involved(self):
        event, _ = decide(given(), report(kind="robbery_in_progress", where=IN_EAST), catalog()).events
        assert "pd" in event.agencies and "fd" not in event.agencies

    def test_outside_every_district_the_nearest_district_of_each_kind_answers_flagged_outside(self):
        state = given()
        event, recommended = decide(state, report(where=OUTSIDE), catalog(state)).events
        assert [(d["agency_id"], d["outside"]) for d in event.districts] == [("ems", True), ("fd", True), ("pd", True)]
        assert all(d["distance_m"] > 100_000 for d in event.districts)   # 38.5 N -121.0 is ~150 km away
        assert event.agencies == ["ems", "fd", "pd"]
        assert all(r["outside"] for r in recommended.responsible)
        assert "outside the nearest district" in recommended.lines[0]["units"][0]["reason"]

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


class TestRecommendationAtIntake:
    def test_the_recommendation_is_logged_with_its_inputs_and_rederives_exactly(self):
        state = given()
        cat = catalog(state)
        _, made = decide(state, report(), cat).events
        assert made.trigger == "intake" and made.shortfall == []
        units = {u["unit_id"] for u in made.inputs["units"]}
        picks = [u["unit_id"] for line in made.lines for u in line["units"]]
        assert set(picks) <= units and len(picks) == len(set(picks))
        assert rederive(ev.to_data(made), cat).to_json()["lines"] == made.lines

    def test_busy_units_are_not_proposed_and_a_move_changes_who_is_nearest(self):
        state = given(reported("i0"), *assigned("E1", "a1", "i0"))
        cat = catalog(state, positions={"E3": IN_WEST})
        _, made = decide(state, report(kind="vehicle_fire"), cat).events
        [engine] = [line for line in made.lines if line["capability"] == "engine"]
        assert [u["unit_id"] for u in engine["units"]] == ["E3"] and engine["units"][0]["distance_m"] == 0.0

    def test_auto_dispatch_assigns_the_recommendation_when_the_policy_covers_type_and_priority(self):
        state = given()
        policy = Policy(auto_dispatch={"cardiac_arrest": 1})
        events = decide(state, report(kind="cardiac_arrest"), catalog(state, policy=policy)).events
        assigned_units = [x.unit_id for x in events if isinstance(x, ev.UnitAssigned)]
        assert sorted(assigned_units) == ["E1", "M1", "M2"]
        assert [x.status for x in events if isinstance(x, ev.UnitStatusChanged)] == ["dispatched"] * 3
        not_urgent = decide(state, report(kind="cardiac_arrest", priority=2), catalog(state, policy=policy)).events
        assert not any(isinstance(x, ev.UnitAssigned) for x in not_urgent)

    def test_a_report_near_an_open_incident_of_the_same_family_is_flagged_as_a_possible_duplicate(self):
        state = given(reported("i0", kind="fire_alarm"), reported("far", kind="structure_fire"))
        near = LatLon(IN_WEST.lat + 0.001, IN_WEST.lon)     # ~110 m north
        event, _ = decide(state, report("i1", where=near), catalog(state)).events
        assert event.possible_duplicate_of == ["far", "i0"]   # both 110 m away: nearest first, then by id

    def test_other_families_distant_reports_and_old_ones_are_not_duplicates(self):
        state = given(reported("i0", kind="shooting"))
        event, _ = decide(state, report("i1"), catalog(state)).events
        assert event.possible_duplicate_of == []
        two_km = LatLon(IN_WEST.lat + 0.018, IN_WEST.lon)
        state = given(reported("i0", kind="structure_fire"))
        assert decide(state, report("i1", where=two_km), catalog(state)).events[0].possible_duplicate_of == []
        later = c.ReportIncident("i1", "structure_fire", None, IN_WEST, format_at(T0 + timedelta(hours=1)))
        assert decide(state, later, catalog(state)).events[0].possible_duplicate_of == []

    @settings(max_examples=60, deadline=None)
    @for_all(centre=hs.sampled_from([IN_WEST, LatLon(64.0, 179.999), LatLon(-33.9, -179.9995), LatLon(89.9985, 10.0)]),
             offsets=hs.lists(hs.tuples(hs.floats(-0.004, 0.004), hs.floats(-0.01, 0.01), hs.booleans()), max_size=25),
             radius=hs.sampled_from([50.0, 200.0, 450.0]))
    def test_the_duplicate_check_by_cells_finds_what_a_scan_of_every_incident_finds(self, centre, offsets, radius):
        """Near the antimeridian and the pole too: the cells and the longitude box never hide a duplicate."""
        events = []
        for n, (dlat, dlon, closed) in enumerate(offsets):
            lat = max(-90.0, min(90.0, centre.lat + dlat))
            lon = (centre.lon + dlon + 180.0) % 360.0 - 180.0
            events.append(ev.IncidentReported(incident_id=f"i{n}", incident_type="structure_fire", priority=1,
                                              location={"lat": lat, "lon": lon}, reported_at=AT, districts=[],
                                              agencies=["fd"]))
            if closed:
                events.append(ev.IncidentClosed(incident_id=f"i{n}"))
        state = given(*events)
        state_again = st.from_doc(st.to_doc(state))  # rebuilt from a snapshot: the same bands
        found = decide(state, report("new", where=centre), catalog(state, policy=Policy(duplicate_radius_m=radius)))
        expected = sorted((haversine_m(centre, LatLon.from_json(i.location)), i.id) for i in state.incidents.values()
                          if i.status == "open" and haversine_m(centre, LatLon.from_json(i.location)) <= radius)
        assert found.events[0].possible_duplicate_of == [incident_id for _, incident_id in expected]
        assert state_again.open_cells == state.open_cells

    def test_a_possible_duplicate_is_never_auto_dispatched(self):
        state = given(reported("i0", kind="cardiac_arrest"))
        policy = Policy(auto_dispatch={"*": 5})
        events = decide(state, report("i1", kind="cardiac_arrest"), catalog(state, policy=policy)).events
        assert events[0].possible_duplicate_of == ["i0"] and len(events) == 2


class TestCurrentRecommendation:
    def test_units_already_assigned_count_toward_the_plan(self):
        state = given(reported(), *assigned("E1", "a1"), *assigned("E2", "a2"))
        now = current_recommendation(state, "i1", catalog(state))
        [engine] = [line for line in now.lines if line.capability == "engine"]
        assert engine.already == 2 and [p.unit_id for p in engine.picks] == ["E3"]

    def test_a_closed_incident_has_nothing_to_recommend(self):
        state = given(reported(), ev.IncidentClosed(incident_id="i1"))
        with pytest.raises(Conflict, match="closed"):
            current_recommendation(state, "i1", catalog(state))


def flag(assignment="a1", after_s=31):
    return c.FlagUnacknowledged(assignment, format_at(T0 + timedelta(seconds=after_s)))


def unacknowledged(unit="E1", assignment="a1", incident="i1", waited_s=31.0):
    return ev.AssignmentUnacknowledged(incident_id=incident, unit_id=unit, assignment_id=assignment, waited_s=waited_s)


def proposed(made, capability):
    [line] = [x for x in made.lines if x["capability"] == capability]
    return [u["unit_id"] for u in line["units"]]


class TestFlagUnacknowledged:
    def test_flags_the_assignment_then_recommends_a_replacement_expecting_the_incident_stream(self):
        state = given(reported(kind="vehicle_fire"), *assigned("E1", "a1"), *assigned("P1", "a2"))
        decision = decide(state, flag("a1"), catalog(state))
        flagged, made = decision.events
        assert flagged == unacknowledged("E1", "a1", waited_s=31.0)
        assert isinstance(made, ev.RecommendationMade) and made.trigger == "unacknowledged"
        assert decision.expect == {"incident/i1": state.version("incident/i1")}

    def test_the_replacement_proposes_another_unit_never_the_silent_one_and_counts_the_others(self):
        state = given(reported(kind="vehicle_fire"), *assigned("E1", "a1"), *assigned("P1", "a2"))
        _, made = decide(state, flag("a1"), catalog(state)).events
        assert proposed(made, "engine") == ["E2"]
        assert proposed(made, "patrol") == []             # P1, acknowledged or not, counts as there
        assert made.inputs["exclude"] == ["E1"]
        assert [a["agency_id"] for a in made.inputs["already"]] == ["pd"]    # P1 only, not E1
        assert "E1" not in {u["unit_id"] for u in made.inputs["units"]}

    def test_the_replacement_rederives_exactly_from_its_logged_inputs(self):
        state = given(reported(), *assigned("E1", "a1"), *assigned("E2", "a2"), *assigned("M1", "a3"))
        cat = catalog(state)
        _, made = decide(state, flag("a3"), cat).events
        assert proposed(made, "als") == ["M2"] and proposed(made, "engine") == ["E3"]
        assert rederive(ev.to_data(made), cat).to_json()["lines"] == made.lines

    def test_the_unit_stays_assigned_and_a_later_ack_still_counts(self):
        state = given(reported(), *assigned(), unacknowledged())
        assert state.assignments["a1"].active and state.assignments["a1"].unacknowledged_at is not None
        assert state.units["E1"].status == "dispatched" and state.units["E1"].assignment_id == "a1"
        assert decide(state, c.AckAssignment("a1"), catalog(state)).events == (
            ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1"),)

    @pytest.mark.parametrize("settled", [
        [ev.AssignmentAcknowledged(incident_id="i1", unit_id="E1", assignment_id="a1")],
        [ev.AssignmentEnded(incident_id="i1", unit_id="E1", assignment_id="a1", reason="cancelled"),
         ev.UnitStatusChanged(unit_id="E1", status="available", previous="dispatched", incident_id="i1")],
        [unacknowledged()],
    ], ids=["acknowledged", "ended", "already-flagged"])
    def test_an_assignment_acknowledged_ended_or_already_flagged_changes_nothing(self, settled):
        state = given(reported(), *assigned(), *settled)
        decision = decide(state, flag("a1"), catalog(state))
        assert decision.events == () and decision.expect == {}

    def test_an_unknown_assignment_is_not_found(self):
        with pytest.raises(NotFound, match="No assignment nope"):
            decide(given(reported()), flag("nope"), catalog())

    def test_a_time_without_a_zone_is_invalid(self):
        state = given(reported(), *assigned())
        with pytest.raises(Invalid, match="no time zone"):
            decide(state, c.FlagUnacknowledged("a1", "2026-11-26T20:00:31"), catalog(state))

    def test_only_an_administrator_may_flag(self):
        state = given(reported(), *assigned())
        authorize(Principal("admin", "system"), flag("a1"), state)
        for who in (Principal("dispatcher", "d"), Principal("commander", "c"), Principal("unit", "E1", unit="E1")):
            with pytest.raises(Forbidden, match="Only the system's acknowledgement watchdog"):
                authorize(who, flag("a1"), state)

    def test_a_snapshot_taken_before_the_flag_existed_still_loads(self):
        state = given(reported(), *assigned(), unacknowledged())
        doc = st.to_doc(state)
        assert st.from_doc(doc) == state
        for assignment in doc["assignments"].values():
            del assignment["unacknowledged_at"]
        assert st.from_doc(doc).assignments["a1"].unacknowledged_at is None
