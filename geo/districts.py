"""Districts (beats, first-due areas, EMS zones) and the index that finds them for a point.

A point exactly on a shared border lies in *both* districts: the index asks
which polygons cover the point ("covered_by"), not which strictly contain it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from geo.coords import LatLon, haversine_m


@dataclass(frozen=True)
class District:
    """One agency's service area. ``geometry`` is in (lon, lat) order."""

    agency_id: str
    district_id: str
    name: str
    geometry: BaseGeometry

    def __post_init__(self) -> None:
        for field in ("agency_id", "district_id"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"a district needs a non-empty {field}, got {value!r}")
        where = f"district {self.agency_id}/{self.district_id}"
        if not isinstance(self.geometry, (Polygon, MultiPolygon)):
            kind = getattr(self.geometry, "geom_type", type(self.geometry).__name__)
            raise ValueError(f"{where} must be a Polygon or MultiPolygon, got {kind}")
        if self.geometry.is_empty:
            raise ValueError(f"{where} has an empty geometry")
        if not self.geometry.is_valid:
            reason = shapely.is_valid_reason(self.geometry)
            raise ValueError(f"{where} has an invalid geometry: {reason}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.agency_id, self.district_id)

    def covers(self, point: LatLon) -> bool:
        """Inside or on the border."""
        return bool(shapely.intersects_xy(self.geometry, point.lon, point.lat))

    def reach(self) -> tuple[LatLon, float]:
        """A point inside the district and the great-circle metres from it to the district's farthest
        corner: every point of the district lies within that circle."""
        inner = self.geometry.representative_point()
        centre = LatLon(inner.y, inner.x)
        hull = self.geometry.convex_hull
        corners = hull.exterior.coords if hasattr(hull, "exterior") else hull.coords
        return centre, max(haversine_m(centre, LatLon(y, x)) for x, y in corners)


class DistrictIndex:
    """Every district of every agency, searchable by point. Immutable once built."""

    def __init__(self, districts: Iterable[District]) -> None:
        ordered = sorted(districts, key=lambda d: d.key)
        seen: set[tuple[str, str]] = set()
        for district in ordered:
            if district.key in seen:
                raise ValueError(
                    f"district {district.agency_id}/{district.district_id} is defined twice"
                )
            seen.add(district.key)
        self._districts: tuple[District, ...] = tuple(ordered)
        self._by_key = {d.key: d for d in ordered}
        self._tree = shapely.STRtree([d.geometry for d in ordered])
        # For "nearest district" only: longitudes shrunk by cos(latitude) so that distances in this
        # frame are roughly proportional to metres, never to raw degrees.
        lats = [c for d in ordered for c in (d.geometry.bounds[1], d.geometry.bounds[3])]
        self._shrink = math.cos(math.radians(sum(lats) / len(lats))) if lats else 1.0
        self._scaled = np.array([shapely.transform(d.geometry, self._scale) for d in ordered], dtype=object)

    def _scale(self, xy: np.ndarray) -> np.ndarray:
        return xy * np.array([self._shrink, 1.0])

    def at(self, point: LatLon) -> list[District]:
        """Every district covering ``point``, borders included, sorted by (agency, district)."""
        hits = self._tree.query(Point(point.lon, point.lat), predicate="covered_by")
        return [self._districts[i] for i in sorted(hits.tolist())]

    def nearest(self, point: LatLon, accept: Callable[[District], bool] = lambda d: True
                ) -> tuple[District, float] | None:
        """The district nearest to ``point`` among those ``accept`` admits, with the great-circle
        distance in metres to its edge (0 inside); ties go to the first by (agency, district).

        A planar search (longitudes shrunk by one cosine, the query also tried 360 degrees east and
        west, so the antimeridian is no wall) shortlists; great-circle metres decide."""
        chosen = [i for i, d in enumerate(self._districts) if accept(d)]
        if not chosen:
            return None
        shifts = (0.0, 360.0, -360.0)
        queries = [Point((point.lon + shift) * self._shrink, point.lat) for shift in shifts]
        gaps = np.min([shapely.distance(self._scaled[chosen], q) for q in queries], axis=0)
        if gaps.min() == 0:
            return self._districts[chosen[int(np.argmin(gaps))]], 0.0
        shortlist = [chosen[k] for k in np.flatnonzero(gaps <= gaps.min() * 1.5 + 1e-9)]
        best = None
        for i in shortlist:
            for shift, query in zip(shifts, queries):
                edge = nearest_points(self._scaled[i], query)[0]
                lon = (edge.x / self._shrink - shift + 180.0) % 360.0 - 180.0
                metres = haversine_m(point, LatLon(edge.y, lon))
                if best is None or (metres, self._districts[i].key) < (best[0], best[1].key):
                    best = (metres, self._districts[i])
        return best[1], best[0]

    def for_agency(self, agency_id: str) -> list[District]:
        return [d for d in self._districts if d.agency_id == agency_id]

    def get(self, agency_id: str, district_id: str) -> District | None:
        return self._by_key.get((agency_id, district_id))

    def __len__(self) -> int:
        return len(self._districts)

    def __iter__(self) -> Iterator[District]:
        return iter(self._districts)
