"""Builders for tests: a tiny city drawn by hand, recorded events, a clock that moves when told."""

from datetime import datetime, timedelta, timezone

from shapely.geometry import box

from agencies.city import City, UnitSpec
from agencies.model import Agency, AgencyKind, Station
from agencies.plans import load_plans
from coordinator import events as ev
from coordinator import state as st
from coordinator.dispatch import Fleet
from coordinator.handlers import Catalog, Policy
from coordinator.log import format_at
from geo import District, DistrictIndex, LatLon

# A 0.1 x 0.1 degree square; police split it at lon -122.45 into WEST and EAST.
WEST, SOUTH, EAST, NORTH, MIDDLE = -122.50, 37.70, -122.40, 37.80, -122.45
IN_WEST = LatLon(37.75, -122.47)
IN_EAST = LatLon(37.75, -122.42)
ON_BORDER = LatLon(37.75, MIDDLE)
OUTSIDE = LatLon(38.5, -121.0)


def tiny_city() -> City:
    agencies = (Agency("pd", "Tiny Police", AgencyKind.POLICE), Agency("fd", "Tiny Fire", AgencyKind.FIRE),
                Agency("ems", "Tiny EMS", AgencyKind.EMS))
    districts = DistrictIndex([
        District("pd", "WEST", "West beat", box(WEST, SOUTH, MIDDLE, NORTH)),
        District("pd", "EAST", "East beat", box(MIDDLE, SOUTH, EAST, NORTH)),
        District("fd", "1", "First due 1", box(WEST, SOUTH, EAST, NORTH)),
        District("ems", "Z1", "Zone 1", box(WEST, SOUTH, EAST, NORTH)),
    ])
    station = Station("1", "fd", "Station 1", LatLon(37.75, -122.45))
    home = station.location
    units = tuple(UnitSpec(uid, agency, kind, sid, home) for uid, agency, kind, sid in [
        ("P1", "pd", "patrol", None), ("P2", "pd", "patrol", None),
        ("E1", "fd", "engine", "1"), ("E2", "fd", "engine", "1"), ("E3", "fd", "engine", "1"),
        ("T1", "fd", "truck", "1"), ("B1", "fd", "chief", "1"),
        ("M1", "ems", "als", None), ("M2", "ems", "als", None),
    ])
    return City("Tiny", agencies, (station,), districts, units)


def catalog(state: st.State | None = None, positions: dict | None = None, policy: Policy | None = None) -> Catalog:
    """The tiny city's catalog; its fleet holds ``state``'s units at ``positions`` (else at home)."""
    fleet = Fleet()
    if state is not None:
        fleet.reset(state, positions or {})
    return Catalog(tiny_city(), load_plans(), fleet, policy or Policy())


T0 = datetime(2026, 11, 26, 20, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def record(events, start_seq: int = 1, at: datetime = T0, actor: str = "test:given", versions=None):
    """Wrap events as the log would (without real hashes): for building state in decision tests."""
    versions = dict(versions or {})
    out = []
    for n, event in enumerate(events):
        stream = event.stream()
        versions[stream] = versions.get(stream, 0) + 1
        out.append(ev.Recorded(start_seq + n, f"id-{start_seq + n}", type(event).__name__, format_at(at), stream,
                               versions[stream], actor, ev.to_data(event), "", f"h{start_seq + n}"))
    return out


def commissioned(city: City | None = None) -> list[ev.Event]:
    plans = load_plans()
    return [ev.UnitCommissioned(unit_id=u.id, agency_id=u.agency_id, unit_type=u.type,
                                capabilities=sorted(plans.unit_type(u.type).capabilities),
                                station_id=u.station_id, home=u.home.to_json())
            for u in (city or tiny_city()).units]


def given(*events: ev.Event, fleet: bool = True) -> st.State:
    """State after the city's units are commissioned and then ``events`` happened."""
    return st.fold(record([*(commissioned() if fleet else []), *events]))
