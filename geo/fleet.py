"""Available units per tag, and the exact k nearest of them by great-circle distance.

A tag is whatever a unit can be found under ("engine", "als", "fd1/engine"); a busy unit has
none. Units report a position every few seconds and queries are far rarer, so the index is a
uniform grid in metres: a move touches one cell per tag and nothing is ever rebuilt.

Projection. Equirectangular about an origin (the city centre): ``y = R*lat`` and
``x = R*cos(lat0)*wrap(lon - lon0)``, in radians, with the longitude difference wrapped into
[-pi, pi) so that a city across the antimeridian stays contiguous. A unit lives in cell
``(floor(x/cell_m), floor(y/cell_m))``, one cell dict per tag. The projection only decides
which cells to read first; every distance reported is ``haversine_m`` itself, computed the same
way to the bit, and ranking is by those metres, never by degrees.

Search. Rings of cells r = 0, 1, 2, ... around the query's cell go into a heap keyed (metres,
unit id). After ring r every unread unit lies outside the block searched so far, so it is at
least L away, a rigorous lower bound of its great-circle distance:

- across the block's north/south edge at projected distance b_y: L_y = b_y, because the
  meridian arc R*|dlat| never exceeds the great-circle distance;
- across its east/west edge at b_x: the longitude gap is at least dlon = b_x / (R*cos(lat0))
  (capped by how far the query is from the wrap seam opposite the origin), and haversine's
  ``sin^2(d/2R) >= cos(lat1)*cos(lat2)*sin^2(dlon/2)`` gives L_x = 2R*asin(c*sin(dlon/2)),
  where c is the cosine of the largest |latitude| of the query and of any unit ever put.

L = min(L_x, L_y). Heap items nearer than L (less a millimetre for float rounding) are final and
are yielded; equal distances come out by unit id because no unread unit can tie with them. The
search ends when every unit with the tag is read or the block covers the tag's extent (the
box of cells it has occupied; it only grows, until the tag empties).

Worst cases (a sparse tag, a query far outside the city, an origin far from the units): once
the rings have looked up ten times more cells than the tag has units (a look-up costs about a
tenth of reading a unit; measured in bench/nearest.py), the search reads the occupied cells
directly, so a query never costs much more than a brute-force scan. The index is not safe to
change while a search is reading it; a search that notices a change raises RuntimeError.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from heapq import heappop, heappush

from geo.coords import EARTH_RADIUS_M, LatLon

_DEG = math.pi / 180.0  # the factor math.radians multiplies by, so metres match haversine_m exactly
_TWO_R = 2.0 * EARTH_RADIUS_M
_SLACK_M = 1e-3  # far above float rounding in the bound (~1e-8 m), far below anything that matters


class _Unit:
    __slots__ = ("cx", "cy", "key", "location", "point", "tags")


class _Layer:
    """The units holding one tag: cell key -> {unit id: (lat radians, cos lat, lon degrees)}."""

    __slots__ = ("cells", "count", "x0", "x1", "y0", "y1")

    def __init__(self, cx: int, cy: int) -> None:
        self.cells: dict[int, dict[str, tuple[float, float, float]]] = {}
        self.count = 0
        self.x0 = self.x1 = cx
        self.y0 = self.y1 = cy

    def grow(self, cx: int, cy: int) -> None:
        """Widen the extent searched to take in cell (cx, cy); it never shrinks."""
        self.x0, self.x1 = min(self.x0, cx), max(self.x1, cx)
        self.y0, self.y1 = min(self.y0, cy), max(self.y1, cy)


def _check_location(location: object, what: str) -> None:
    if not isinstance(location, LatLon):
        raise TypeError(f"{what} must be a LatLon, got {type(location).__name__}")


def _check_id(unit_id: object) -> None:
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"a unit id must be a non-empty string, got {unit_id!r}")


def _tagset(tags: Iterable[str], unit_id: str) -> frozenset[str]:
    if isinstance(tags, str):  # frozenset("als") would be {"a", "l", "s"}
        raise TypeError(f"tags of unit {unit_id!r} must be a collection of names, not the string {tags!r}")
    tagset = frozenset(tags)
    for tag in tagset:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tags of unit {unit_id!r} must be non-empty strings, got {tag!r}")
    return tagset


def _ring(qx: int, qy: int, r: int, x0: int, x1: int, y0: int, y1: int, stride: int) -> list[range]:
    """Keys of the cells at Chebyshev distance ``r`` from (qx, qy) that lie in [x0, x1] x [y0, y1].

    The ring must meet that box (the caller starts at the first ring that does), so keys never
    leave it and never alias another cell.
    """
    if r == 0:
        return [range(qx * stride + qy, qx * stride + qy + 1)]
    lo_x, hi_x, lo_y, hi_y = qx - r, qx + r, qy - r, qy + r
    xa, xb, ya, yb = max(lo_x, x0), min(hi_x, x1), max(lo_y + 1, y0), min(hi_y - 1, y1)
    spans = []
    if lo_y >= y0:
        spans.append(range(xa * stride + lo_y, xb * stride + lo_y + 1, stride))
    if hi_y <= y1:
        spans.append(range(xa * stride + hi_y, xb * stride + hi_y + 1, stride))
    if lo_x >= x0:
        spans.append(range(lo_x * stride + ya, lo_x * stride + yb + 1))
    if hi_x <= x1:
        spans.append(range(hi_x * stride + ya, hi_x * stride + yb + 1))
    return spans


def _inside(key: int, rows: int, stride: int, qx: int, qy: int, r: int) -> bool:
    """Whether cell ``key`` is in the block of radius ``r`` cells around (qx, qy)."""
    cx, cy = divmod(key + rows, stride)
    return abs(cx - qx) <= r and abs(cy - rows - qy) <= r


class FleetIndex:
    """Units by tag in a grid of ``cell_m`` metres; exact nearest-first search, O(1) updates."""

    def __init__(self, cell_m: float = 500.0, origin: LatLon | None = None) -> None:
        ok = isinstance(cell_m, (int, float)) and not isinstance(cell_m, bool) and math.isfinite(cell_m)
        if not ok or cell_m <= 0:
            raise ValueError(f"cell_m must be a positive number of metres, got {cell_m!r}")
        self._cell_m = float(cell_m)
        self._units: dict[str, _Unit] = {}
        self._layers: dict[str, _Layer] = {}
        self._max_abs_lat = 0.0  # only grows: the bound needs the smallest cos(lat) there is
        self._version = 0  # bumped by every change, so a running search can notice one
        self._origin: LatLon | None = None
        if origin is not None:
            self._set_origin(origin)

    def _set_origin(self, origin: LatLon) -> None:
        _check_location(origin, "origin")
        self._origin = origin
        self._lon0 = origin.lon
        cos0 = max(math.cos(origin.lat * _DEG), 1e-9)  # at a pole any positive scale keeps L valid
        self._kx = EARTH_RADIUS_M * cos0 * _DEG / self._cell_m  # x cells per degree of longitude
        self._ky = EARTH_RADIUS_M * _DEG / self._cell_m  # y cells per degree of latitude
        self._rad_per_x = _DEG / self._kx  # longitude radians per x cell
        self._rows = math.ceil(90.0 * self._ky) + 1  # cy lies in [-rows, rows]
        self._stride = 2 * self._rows + 1  # so key = cx*stride + cy is one int per cell

    def _place(self, u: _Unit, location: LatLon) -> None:
        lat, lon = location.lat, location.lon
        u.location = location
        u.point = (lat * _DEG, math.cos(lat * _DEG), lon)
        u.cx = math.floor(((lon - self._lon0 + 180.0) % 360.0 - 180.0) * self._kx)
        u.cy = math.floor(lat * self._ky)
        u.key = u.cx * self._stride + u.cy
        self._max_abs_lat = max(self._max_abs_lat, abs(lat))

    def _enter(self, tag: str, unit_id: str, u: _Unit) -> None:
        layer = self._layers.get(tag)
        if layer is None:
            layer = self._layers[tag] = _Layer(u.cx, u.cy)
        layer.grow(u.cx, u.cy)
        layer.cells.setdefault(u.key, {})[unit_id] = u.point
        layer.count += 1

    def _leave(self, tag: str, unit_id: str, u: _Unit) -> None:
        layer = self._layers[tag]
        cell = layer.cells[u.key]
        del cell[unit_id]
        if not cell:
            del layer.cells[u.key]
        layer.count -= 1
        if not layer.count:
            del self._layers[tag]  # an empty tag forgets its extent

    def put(self, unit_id: str, location: LatLon, tags: Iterable[str] = ()) -> None:
        """Add or replace a unit: where it is and the tags it can be found under."""
        _check_id(unit_id)
        _check_location(location, f"the location of unit {unit_id!r}")
        tagset = _tagset(tags, unit_id)
        if self._origin is None:
            self._set_origin(location)
        self.remove(unit_id)
        self._version += 1
        u = _Unit()
        self._place(u, location)
        u.tags = tagset
        self._units[unit_id] = u
        for tag in tagset:
            self._enter(tag, unit_id, u)

    def move(self, unit_id: str, location: LatLon) -> None:
        """The hot path (every AVL fix): one cell per tag changes, or none if the cell is the same."""
        u = self._units.get(unit_id)
        if u is None:
            raise KeyError(f"unknown unit {unit_id!r}: put it in the fleet index before moving it")
        if type(location) is not LatLon:
            _check_location(location, f"the location of unit {unit_id!r}")
        self._version += 1
        old = u.key
        self._place(u, location)
        if not u.tags:
            return
        key, point, layers = u.key, u.point, self._layers
        if key == old:
            for tag in u.tags:
                layers[tag].cells[key][unit_id] = point
            return
        cx, cy = u.cx, u.cy
        for tag in u.tags:
            layer = layers[tag]
            cells = layer.cells
            cell = cells[old]
            del cell[unit_id]
            if not cell:
                del cells[old]
            cell = cells.get(key)
            if cell is None:
                cells[key] = {unit_id: point}
            else:
                cell[unit_id] = point
            if not (layer.x0 <= cx <= layer.x1 and layer.y0 <= cy <= layer.y1):
                layer.grow(cx, cy)

    def retag(self, unit_id: str, tags: Iterable[str]) -> None:
        """Change what a unit can be found under (an empty collection: found under nothing)."""
        u = self._units.get(unit_id)
        if u is None:
            raise KeyError(f"unknown unit {unit_id!r}: put it in the fleet index before retagging it")
        new = _tagset(tags, unit_id)
        if new == u.tags:
            return
        self._version += 1
        for tag in u.tags - new:
            self._leave(tag, unit_id, u)
        for tag in new - u.tags:
            self._enter(tag, unit_id, u)
        u.tags = new

    def remove(self, unit_id: str) -> None:
        u = self._units.pop(unit_id, None)
        if u is not None:
            self._version += 1
            for tag in u.tags:
                self._leave(tag, unit_id, u)

    def _unit(self, unit_id: str) -> _Unit:
        u = self._units.get(unit_id)
        if u is None:
            raise KeyError(f"unknown unit {unit_id!r}: not in the fleet index")
        return u

    def location(self, unit_id: str) -> LatLon:
        return self._unit(unit_id).location

    def tags(self, unit_id: str) -> frozenset[str]:
        return self._unit(unit_id).tags

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._units

    def __len__(self) -> int:
        return len(self._units)

    def count(self, tag: str) -> int:
        layer = self._layers.get(tag)
        return layer.count if layer is not None else 0

    def iter_nearest(self, tag: str, point: LatLon) -> Iterator[tuple[float, str]]:
        """Every unit with ``tag`` as (metres, unit id), lazily, nearest first, ties by unit id.

        Reads only as many cells as the items taken need. Don't change the index while
        iterating: the next item raises RuntimeError, as a dict does.
        """
        _check_location(point, "the query point")
        layer = self._layers.get(tag)
        if layer is None:
            return
        version, cells, total = self._version, layer.cells, layer.count
        x0, x1, y0, y1 = layer.x0, layer.x1, layer.y0, layer.y1
        latq, lonq = point.lat, point.lon
        phq = latq * _DEG
        cq = math.cos(phq)
        w = (lonq - self._lon0 + 180.0) % 360.0 - 180.0
        xq, yq = w * self._kx, latq * self._ky
        qx, qy = math.floor(xq), math.floor(yq)
        stride, rows, cell_m, rad_per_x = self._stride, self._rows, self._cell_m, self._rad_per_x
        c = math.cos(max(self._max_abs_lat, abs(latq)) * _DEG)
        seam = (180.0 - abs(w)) * _DEG  # beyond it, a longitude gap shrinks again
        sin, sqrt, asin, push, two_r, deg, inf = math.sin, math.sqrt, math.asin, heappush, _TWO_R, _DEG, math.inf
        heap: list[tuple[float, str]] = []
        read = looked = 0  # units read, cells looked up
        r = max(0, x0 - qx, qx - x1, y0 - qy, qy - y1)  # nearer rings miss every occupied cell
        while True:
            spans = _ring(qx, qy, r, x0, x1, y0, y1, stride)
            looked += sum(map(len, spans))
            if looked > 10 * total:  # a cell look-up costs ~1/10 of a unit read: past this, read them all
                spans = [[key for key in cells if not _inside(key, rows, stride, qx, qy, r - 1)]]
            for keys in spans:
                for key in keys:
                    cell = cells.get(key)
                    if cell:
                        for unit_id, (ph, cph, lon) in cell.items():
                            h = sin((ph - phq) / 2) ** 2 + cq * cph * sin((lon - lonq) * deg / 2) ** 2
                            push(heap, (two_r * asin(min(1.0, sqrt(h))), unit_id))
                        read += len(cell)
            lo_x, hi_x, lo_y, hi_y = qx - r, qx + r, qy - r, qy + r
            done = read == total or (lo_x <= x0 and hi_x >= x1 and lo_y <= y0 and hi_y >= y1)
            bound = inf
            if not done:  # how near an unread unit can be: beyond the block's nearest edge
                bx = min(xq - lo_x if lo_x > x0 else inf, hi_x + 1 - xq if hi_x < x1 else inf)
                by = min(yq - lo_y if lo_y > y0 else inf, hi_y + 1 - yq if hi_y < y1 else inf)
                bound = by * cell_m
                if bx < inf:
                    bound = min(bound, two_r * asin(c * sin(min(bx * rad_per_x, seam) / 2)))
                bound -= _SLACK_M
            while heap and heap[0][0] < bound:
                yield heappop(heap)
                if self._version != version:
                    raise RuntimeError("the fleet index changed while a nearest search was reading it")
            if done:
                return
            r += 1

    def nearest(self, tag: str, point: LatLon, k: int,
                accept: Callable[[str], bool] | None = None) -> list[tuple[float, str]]:
        """The first ``k`` of ``iter_nearest(tag, point)`` that ``accept`` (if given) admits."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a whole number >= 0, got {k!r}")
        found: list[tuple[float, str]] = []
        if k == 0:
            return found
        for item in self.iter_nearest(tag, point):
            if accept is None or accept(item[1]):
                found.append(item)
                if len(found) == k:
                    break
        return found
