"""Points on the Earth: a validated latitude/longitude pair and great-circle distance.

Coordinates are WGS 84 degrees. JSON uses ``{"lat": .., "lon": ..}``; GeoJSON
positions are ``[lon, lat]``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def _check(value: object, what: str, limit: float) -> float:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -limit <= value <= limit
    )
    if not ok:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = float(value)
        raise ValueError(f"{what} must be a number between -{limit:g} and {limit:g}, got {value!r}")
    return float(value) + 0.0  # -0.0 becomes 0.0: one spelling, so stores that drop the sign agree


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS 84 point; refuses anything that is not a finite in-range number."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lat", _check(self.lat, "latitude", 90))
        object.__setattr__(self, "lon", _check(self.lon, "longitude", 180))

    def to_json(self) -> dict:
        return {"lat": self.lat, "lon": self.lon}

    @classmethod
    def from_json(cls, d: Mapping) -> LatLon:
        if not isinstance(d, Mapping):
            raise ValueError(f"a location must be an object with 'lat' and 'lon', got {d!r}")
        missing = [key for key in ("lat", "lon") if key not in d]
        if missing:
            raise ValueError(f"a location needs 'lat' and 'lon'; missing: {', '.join(missing)}")
        return cls(d["lat"], d["lon"])

    def position(self) -> list[float]:
        """The GeoJSON position, ``[lon, lat]``."""
        return [self.lon, self.lat]


def haversine_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in metres on a sphere of the mean Earth radius."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
