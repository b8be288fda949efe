"""Response times folded from recorded events: who counts, from when, and the percentile used."""

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from coordinator import events as ev
from coordinator.response_times import percentile, response_times

from ..builders import record

T0 = datetime(2026, 11, 26, 20, 0, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def reported(incident_id: str, seconds: float = 0) -> ev.IncidentReported:
    return ev.IncidentReported(incident_id=incident_id, incident_type="structure_fire", priority=1,
                               location={"lat": 37.75, "lon": -122.45}, reported_at=at(seconds), districts=[],
                               agencies=["fd"])


def on_scene(unit_id: str, incident_id: str) -> ev.UnitStatusChanged:
    return ev.UnitStatusChanged(unit_id=unit_id, status="on_scene", previous="en_route", incident_id=incident_id)


def timed(*pairs):
    """Recorded events, each at its own second after T0."""
    found = []
    for seq, (seconds, event) in enumerate(pairs, start=1):
        found.extend(record([event], start_seq=seq, at=T0 + timedelta(seconds=seconds)))
    return found


def test_the_first_arrival_of_each_agency_counts_once():
    records = timed((0, reported("a")), (200, on_scene("E1", "a")), (260, on_scene("E2", "a")),
                    (300, on_scene("M1", "a")))
    found = {t.agency_id: t.seconds for t in response_times(records, T0, T0, {"E1": "fd", "E2": "fd", "M1": "ems"})}
    assert found == {"fd": (200.0,), "ems": (300.0,)}


def test_a_unit_commissioned_in_the_records_is_known_by_its_agency():
    commissioned = ev.UnitCommissioned(unit_id="P9", agency_id="pd", unit_type="patrol", capabilities=["patrol"],
                                       station_id=None, home={"lat": 37.75, "lon": -122.45})
    records = timed((0, commissioned), (1, reported("a", 1)), (61, on_scene("P9", "a")))
    assert [(t.agency_id, t.seconds) for t in response_times(records, T0, T0 + timedelta(hours=1), {})] == [("pd", (60.0,))]


def test_an_arrival_stamped_before_the_call_counts_as_zero_not_negative():
    records = timed((0, reported("a", 30)), (10, on_scene("E1", "a")))
    assert response_times(records, T0, T0 + timedelta(minutes=1), {"E1": "fd"})[0].seconds == (0.0,)


def test_arrivals_at_incidents_outside_the_window_or_at_no_incident_are_ignored():
    records = timed((0, reported("early", -60)), (5, on_scene("E1", "early")), (6, on_scene("E2", "unknown")))
    assert response_times(records, T0, T0 + timedelta(hours=1), {"E1": "fd", "E2": "fd"}) == []


def test_figures_round_and_name_the_agency():
    records = timed((0, reported("a")), (100, on_scene("E1", "a")), (100, reported("b", 100)), (400, on_scene("E2", "b")))
    [fire] = response_times(records, T0, T0 + timedelta(hours=1), {"E1": "fd", "E2": "fd"})
    assert fire.to_json() == {"agency_id": "fd", "count": 2, "median_s": 200.0, "p90_s": 300.0, "max_s": 300.0}


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
       st.floats(min_value=0.01, max_value=1.0))
def test_the_percentile_is_a_value_seen_with_at_least_that_share_at_or_below_it(values, q):
    ordered = sorted(values)
    found = percentile(ordered, q)
    assert found in ordered
    assert sum(v <= found for v in ordered) >= q * len(ordered)
    assert sum(v < found for v in ordered) < q * len(ordered)
