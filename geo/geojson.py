"""GeoJSON in and out: district FeatureCollections and point features.

Takes already-parsed documents (dicts); reading files is the caller's job.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from geo.coords import LatLon
from geo.districts import District


def _features(doc: Mapping) -> list:
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, Mapping) else type(doc).__name__
        raise ValueError(f"expected a GeoJSON FeatureCollection, got {got!r}")
    if not isinstance(doc.get("features"), list):
        raise ValueError("the FeatureCollection has no 'features' list")
    return doc["features"]


def _unpack(feature: object, i: int) -> tuple[dict, dict]:
    """(properties, geometry) of feature number ``i``."""
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise ValueError(f"feature {i} is not a GeoJSON Feature")
    if not isinstance(feature.get("geometry"), Mapping):
        raise ValueError(f"feature {i} has no geometry")
    return dict(feature.get("properties") or {}), dict(feature["geometry"])


def _area(geometry: Mapping, where: str) -> BaseGeometry:
    """A shapely (Multi)Polygon from a GeoJSON geometry in lon/lat degrees, unrepaired."""
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"{where} must be a Polygon or MultiPolygon, got {geometry.get('type')!r}")
    _check_numbers(geometry.get("coordinates"), where)
    try:
        geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValueError(f"{where} has malformed coordinates: {exc}") from None
    minx, miny, maxx, maxy = (0, 0, 0, 0) if geom.is_empty else geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ValueError(f"{where} has coordinates outside WGS 84 longitude/latitude degrees")
    return geom


def _check_numbers(coordinates: object, where: str) -> None:
    """Every coordinate a finite number: GEOS fails on NaN with its own exception, and JSON's true/false
    would pass as 1 and 0."""
    stack = [coordinates] if isinstance(coordinates, (list, tuple)) else []
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} has a coordinate that is not a number: {value!r}")
        elif not math.isfinite(value):
            raise ValueError(f"{where} has a coordinate that is not a finite number: {value!r}")


MAX_REPAIR = 1e-6  # relative area change: real outlines touching themselves change ~1e-15; a bow-tie 100 %


def _checked_district(geom: BaseGeometry, where: str) -> BaseGeometry:
    """A district's area as imported: repaired when it merely touches itself, refused when repair would
    change what it covers (a bow-tie) or when it spans more than half the globe (an outline crossing the
    antimeridian, which GeoJSON wants split at +/-180 degrees; read planar it covers everything else)."""
    if not geom.is_empty:
        for part in shapely.get_parts(geom):
            minx, _, maxx, _ = part.bounds
            if maxx - minx > 180:
                raise ValueError(f"{where} spans {maxx - minx:g} degrees of longitude; an outline crossing the "
                                 f"antimeridian must be split into parts on either side of it (RFC 7946 3.1.9)")
    repaired = _polygonal(geom)
    if not geom.is_valid and abs(repaired.area - geom.area) > MAX_REPAIR * max(repaired.area, geom.area):
        raise ValueError(f"{where} crosses itself ({explain_validity(geom)}): repair would change its area from "
                         f"{geom.area:.6g} to {repaired.area:.6g} square degrees; fix its outline")
    return repaired


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Only the polygons of ``geom``, valid; make_valid may leave stray lines or points."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, (Polygon, MultiPolygon))]
    return shapely.union_all(parts) if parts else Polygon()


def read_districts(
    doc: Mapping, agency_id: str, id_property: str, name_property: str | None = None
) -> list[District]:
    """One District per distinct ``id_property`` value; features sharing an id are unioned."""
    parts: dict[str, list[BaseGeometry]] = {}
    names: dict[str, str] = {}
    for i, feature in enumerate(_features(doc)):
        properties, geometry = _unpack(feature, i)
        if properties.get(id_property) in (None, ""):
            raise ValueError(f"feature {i} has no {id_property!r} property to use as district id")
        district_id = str(properties[id_property])
        where = f"feature {i} (district {district_id!r})"
        parts.setdefault(district_id, []).append(_checked_district(_area(geometry, where), where))
        name = properties.get(name_property) if name_property else None
        names.setdefault(district_id, district_id if name in (None, "") else str(name))

    districts = []
    for district_id, geoms in parts.items():
        geom = geoms[0] if len(geoms) == 1 else _polygonal(shapely.union_all(geoms))
        if geom.is_empty or isinstance(geom, GeometryCollection):
            raise ValueError(f"district {district_id!r} has no area after repairing its geometry")
        districts.append(District(agency_id, district_id, names[district_id], geom))
    if not districts:
        raise ValueError("the FeatureCollection contains no districts")
    return districts


def _lists(value: object) -> object:
    """mapping() gives nested tuples; JSON gives lists. Use lists so both compare equal."""
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _lists(v) for k, v in value.items()}
    return value


def districts_to_features(districts: Iterable[District]) -> list[dict]:
    return [
        {
            "type": "Feature",
            "properties": {"agency_id": d.agency_id, "district_id": d.district_id, "name": d.name},
            "geometry": _lists(mapping(d.geometry)),
        }
        for d in districts
    ]


def district_outlines(districts: Iterable[District], tolerance_deg: float = 0.0) -> dict:
    """Districts as a FeatureCollection to draw on a map: each outline simplified within ``tolerance_deg``
    (topology kept, so no ring collapses or crosses itself) and rounded to 6 decimals (about 0.1 m)."""
    features = []
    for d in districts:
        geometry = d.geometry.simplify(tolerance_deg, preserve_topology=True) if tolerance_deg > 0 else d.geometry
        features.append({
            "type": "Feature",
            "properties": {"agency_id": d.agency_id, "district_id": d.district_id, "name": d.name},
            "geometry": _lists(mapping(shapely.set_precision(geometry, 1e-6))),
        })
    return {"type": "FeatureCollection", "features": features}


def districts_from_features(features: Iterable[Mapping]) -> list[District]:
    """The inverse of :func:`districts_to_features`."""
    districts = []
    for i, feature in enumerate(features):
        properties, geometry = _unpack(feature, i)
        missing = [k for k in ("agency_id", "district_id", "name") if k not in properties]
        if missing:
            raise ValueError(f"feature {i} lacks district properties: {', '.join(missing)}")
        agency_id, district_id, name = (
            str(properties[k]) for k in ("agency_id", "district_id", "name")
        )
        geom = _area(geometry, f"feature {i} (district {agency_id}/{district_id})")
        districts.append(District(agency_id, district_id, name, geom))
    return districts


def read_points(doc: Mapping) -> list[tuple[dict, LatLon]]:
    """(properties, location) for each Point feature; any other geometry is an error."""
    points = []
    for i, feature in enumerate(_features(doc)):
        properties, geometry = _unpack(feature, i)
        if geometry.get("type") != "Point":
            raise ValueError(f"feature {i} must be a Point, got {geometry.get('type')!r}")
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, (list, tuple)) or len(coordinates) < 2:
            raise ValueError(f"feature {i} needs Point coordinates [lon, lat], got {coordinates!r}")
        try:
            points.append((properties, LatLon(lat=coordinates[1], lon=coordinates[0])))
        except ValueError as exc:
            raise ValueError(f"feature {i}: {exc}") from None
    return points
