"""The live fleet picture that recommendations read, kept in step with the projection.

Every unit is in a ``geo.FleetIndex`` at its latest AVL fix (else its home station). An
available unit is found under each of its capabilities, and under ``<agency>/<capability>``
so that one agency's units are searched without reading the others'; a busy unit under none.
A status change or a move costs O(number of capabilities); nothing is ever rebuilt per update.

The node calls ``observe`` for every event it applies and ``move`` for every fix it keeps, both
on the event loop, so a decision (synchronous, under the node's lock) never sees a half-update.
"""

from collections.abc import Iterator, Mapping

from agencies.lifecycle import UnitStatus
from agencies.recommend import Candidate
from geo import FleetIndex, LatLon, haversine_m

from .events import Recorded
from .state import State, Unit

AVAILABLE = UnitStatus.AVAILABLE.value
IN_QUARTERS_M = 100.0   # a unit this near its home station is in quarters: it pays turnout time


class Fleet:
    def __init__(self, cell_m: float = 500.0, origin: LatLon | None = None) -> None:
        self.cell_m, self.origin = cell_m, origin
        self.index = FleetIndex(cell_m, origin)
        self._units: dict[str, tuple[str, str, str | None, frozenset[str], LatLon]] = {}

    def reset(self, state: State, positions: Mapping[str, LatLon]) -> None:
        """Rebuild from the projection and the latest fixes (start-up only)."""
        self.index = FleetIndex(self.cell_m, self.origin)
        self._units.clear()
        for unit in state.units.values():
            self._put(unit, positions.get(unit.id))

    def observe(self, rec: Recorded, state: State) -> None:
        if rec.type == "UnitCommissioned":
            self._put(state.units[rec.data["unit_id"]], None)
        elif rec.type == "UnitStatusChanged":
            unit_id = rec.data["unit_id"]
            if unit_id in self._units:
                self.index.retag(unit_id, self._tags(unit_id, rec.data["status"]))

    def move(self, unit_id: str, location: LatLon) -> None:
        if unit_id in self._units:
            self.index.move(unit_id, location)

    def location(self, unit_id: str) -> LatLon | None:
        return self.index.location(unit_id) if unit_id in self.index else None

    def nearest(self, capability: str, point: LatLon, agency_id: str | None = None
                ) -> Iterator[tuple[float, Candidate]]:
        tag = capability if agency_id is None else f"{agency_id}/{capability}"
        for metres, unit_id in self.index.iter_nearest(tag, point):
            agency, unit_type, station, capabilities, home = self._units[unit_id]
            where = self.index.location(unit_id)
            yield metres, Candidate(unit_id, agency, unit_type, station, where, capabilities,
                                    haversine_m(where, home) <= IN_QUARTERS_M)

    def _put(self, unit: Unit, location: LatLon | None) -> None:
        home = LatLon.from_json(unit.home)
        self._units[unit.id] = (unit.agency_id, unit.type, unit.station_id, frozenset(unit.capabilities), home)
        self.index.put(unit.id, location or home, self._tags(unit.id, unit.status))

    def _tags(self, unit_id: str, status: str) -> list[str]:
        if status != AVAILABLE:
            return []
        agency, _, _, capabilities, _ = self._units[unit_id]
        return [*capabilities, *(f"{agency}/{c}" for c in capabilities)]
