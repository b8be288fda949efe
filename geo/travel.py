"""How long a unit takes to get somewhere: the travel model behind every ETA.

``TravelModel`` is the seam: a road-network model can replace ``StraightLineTravel`` later.
``min_eta_s`` lets a caller read units nearest first and still rank them exactly by ETA: once
the lower bound for the next distance is later than the best ETA waiting, no unread unit can
arrive sooner. ``describe`` is logged with every recommendation so it can be re-derived.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from geo.coords import LatLon, haversine_m


@runtime_checkable
class TravelModel(Protocol):
    def eta_s(self, origin: LatLon, destination: LatLon, unit_type: str) -> float: ...

    def min_eta_s(self, metres: float, unit_types: Iterable[str] | None = None) -> float:
        """A lower bound of ``eta_s`` over this straight-line distance for any of ``unit_types``
        (all types when None): the tighter it is, the fewer units a caller must read."""
        ...

    def describe(self) -> dict:
        """JSON-safe parameters, enough to build the same model again."""
        ...


def _positive(value: object, what: str, least: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < least or (strict and value == least):
        bound = f"> {least:g}" if strict else f">= {least:g}"
        raise ValueError(f"{what} must be a finite number {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StraightLineTravel:
    """Great-circle distance times a road factor, at a speed per unit type."""

    road_factor: float = 1.3
    speeds_kmh: Mapping[str, float] = field(default_factory=dict, hash=False)  # unit type id -> km/h
    default_speed_kmh: float = 40.0
    _fastest_kmh: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "road_factor", _positive(self.road_factor, "road_factor", 1.0, strict=False))
        set_(self, "default_speed_kmh", _positive(self.default_speed_kmh, "default_speed_kmh", 0.0, strict=True))
        if not isinstance(self.speeds_kmh, Mapping):  # bad data from a file or the log, like the rest
            raise ValueError(  # noqa: TRY004
                f"speeds_kmh must map unit type ids to km/h, got {type(self.speeds_kmh).__name__}")
        speeds = {}
        for unit_type, speed in self.speeds_kmh.items():
            if not isinstance(unit_type, str) or not unit_type:
                raise ValueError(f"speeds_kmh keys must be non-empty unit type ids, got {unit_type!r}")
            speeds[unit_type] = _positive(speed, f"the speed of unit type {unit_type!r}", 0.0, strict=True)
        # A read-only view of a private sorted copy: the caller's dict can't change the model later.
        set_(self, "speeds_kmh", MappingProxyType(dict(sorted(speeds.items()))))
        set_(self, "_fastest_kmh", max([self.default_speed_kmh, *speeds.values()]))

    def speed_kmh(self, unit_type: str) -> float:
        return self.speeds_kmh.get(unit_type, self.default_speed_kmh)

    def eta_s(self, origin: LatLon, destination: LatLon, unit_type: str) -> float:
        return haversine_m(origin, destination) * self.road_factor / (self.speed_kmh(unit_type) / 3.6)

    def min_eta_s(self, metres: float, unit_types: Iterable[str] | None = None) -> float:
        # The same arithmetic as eta_s with the fastest speed, so the bound holds to the last bit.
        fastest = self._fastest_kmh if unit_types is None else max(map(self.speed_kmh, unit_types), default=0.0)
        if fastest <= 0.0:
            return math.inf   # no unit type can come at all
        return metres * self.road_factor / (fastest / 3.6)

    def describe(self) -> dict:
        return {"model": "straight_line", "road_factor": self.road_factor,
                "default_speed_kmh": self.default_speed_kmh, "speeds_kmh": dict(self.speeds_kmh)}

    @classmethod
    def from_description(cls, d: Mapping) -> StraightLineTravel:
        """The model ``describe`` described; refuses anything else rather than guess."""
        if not isinstance(d, Mapping):
            raise ValueError(  # noqa: TRY004
                f"a travel model description must be an object, got {type(d).__name__}")
        if d.get("model") != "straight_line":
            raise ValueError(f"not a straight-line travel model description: model is {d.get('model')!r}")
        keys = {"model", "road_factor", "default_speed_kmh", "speeds_kmh"}
        missing = ", ".join(sorted(keys - set(d))) or "-"
        unknown = ", ".join(sorted(map(str, set(d) - keys))) or "-"
        if missing != "-" or unknown != "-":
            raise ValueError(f"a straight-line travel model description needs exactly {', '.join(sorted(keys))}; "
                             f"missing: {missing}; unknown: {unknown}")
        return cls(d["road_factor"], d["speeds_kmh"], d["default_speed_kmh"])
