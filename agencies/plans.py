"""Incident types and their response plans (run cards), read from a TOML file.

The default file is the package data ``agencies/data/plans.toml``. Every plan
line names a capability and a count for one agency kind; loading refuses a
plan that no unit type of that kind could ever fill. The same file sets the
travel model (road factor, speed per unit type) and each incident type's
family: reports of one family close together may be the same incident.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from agencies.model import AgencyKind, UnitType, parse_kind
from geo.travel import StraightLineTravel


class UnknownIncidentType(ValueError):
    """An incident type id that the plans do not define."""


class UnknownUnitType(ValueError):
    """A unit type id that the plans do not define."""


@dataclass(frozen=True)
class PlanLine:
    kind: AgencyKind
    capability: str
    count: int

    def __post_init__(self) -> None:
        n = self.count
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"{self.kind} {self.capability!r} count must be a whole number >= 1, got {n!r}"
            )


@dataclass(frozen=True)
class ResponsePlan:
    """What one incident type needs; lines sorted by (kind, capability)."""

    lines: tuple[PlanLine, ...]

    def __post_init__(self) -> None:
        ordered = sorted(self.lines, key=lambda line: (line.kind.value, line.capability))
        object.__setattr__(self, "lines", tuple(ordered))

    def kinds(self) -> frozenset[AgencyKind]:
        return frozenset(line.kind for line in self.lines)

    def for_kind(self, kind: AgencyKind) -> tuple[PlanLine, ...]:
        return tuple(line for line in self.lines if line.kind == kind)


@dataclass(frozen=True)
class IncidentType:
    id: str
    label: str
    default_priority: int
    plan: ResponsePlan
    family: str = ""

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.id)
        p = self.default_priority
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 5:
            raise ValueError(
                f"default_priority must be a whole number from 1 (most urgent) to 5, got {p!r}"
            )
        if not self.plan.lines:
            raise ValueError("the response plan is empty; it needs at least one line")


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


@dataclass(frozen=True)
class Plans:
    unit_types: Mapping[str, UnitType]
    incident_types: Mapping[str, IncidentType]
    travel: StraightLineTravel = field(default_factory=StraightLineTravel)
    turnout_s: Mapping[str, float] = field(default_factory=dict)   # unit type -> dispatch to rolling, in quarters

    def providers(self, capability: str) -> tuple[str, ...]:
        """The unit types that provide ``capability``, by id: the fewer, the sooner a plan line is filled."""
        return tuple(sorted(t.id for t in self.unit_types.values() if capability in t.capabilities))

    def incident_type(self, type_id: str) -> IncidentType:
        if type_id in self.incident_types:
            return self.incident_types[type_id]
        known = _known(self.incident_types)
        raise UnknownIncidentType(f"unknown incident type {type_id!r}; known types: {known}")

    def unit_type(self, type_id: str) -> UnitType:
        if type_id in self.unit_types:
            return self.unit_types[type_id]
        known = _known(self.unit_types)
        raise UnknownUnitType(f"unknown unit type {type_id!r}; known types: {known}")


def _unit_type(type_id: str, raw: Mapping) -> UnitType:
    kind = parse_kind(raw.get("kind"))
    capabilities = raw.get("capabilities")
    if not isinstance(capabilities, list) or not capabilities or not all(
        isinstance(c, str) and c for c in capabilities
    ):
        raise ValueError("capabilities must be a non-empty list of names")
    return UnitType(type_id, kind, str(raw.get("label", type_id)), frozenset(capabilities))


def _incident_type(type_id: str, raw: Mapping, unit_types: Mapping[str, UnitType]) -> IncidentType:
    plan = raw.get("plan", {})
    if not isinstance(plan, Mapping):
        raise ValueError("plan must be a table of agency kinds")
    lines = []
    for kind_name, needs in plan.items():
        kind = parse_kind(kind_name)
        if not isinstance(needs, Mapping):
            raise ValueError(f"plan.{kind_name} must be a table of capability = count")
        offered = set().union(*(t.capabilities for t in unit_types.values() if t.kind == kind))
        for capability, count in needs.items():
            if capability not in offered:
                raise ValueError(
                    f"plan.{kind_name} asks for capability {capability!r}, which no {kind_name} "
                    f"unit type provides; {kind_name} capabilities: {_known(offered) or '(none)'}"
                )
            lines.append(PlanLine(kind, capability, count))
    label = str(raw.get("label", type_id))
    family = raw.get("family", type_id)
    if not isinstance(family, str) or not family:
        raise ValueError(f"family must be a non-empty name, got {family!r}")
    return IncidentType(type_id, label, raw.get("default_priority"), ResponsePlan(tuple(lines)), family)


def _travel(doc: Mapping, unit_types: Mapping[str, Mapping]) -> StraightLineTravel:
    travel = doc.get("travel", {})
    if not isinstance(travel, Mapping):
        raise ValueError("[travel] must be a table")
    unknown = set(travel) - {"road_factor", "default_speed_kmh"}
    if unknown:
        raise ValueError(f"[travel] has unknown keys: {_known(unknown)}; known: default_speed_kmh, road_factor")
    speeds = {type_id: raw["speed_kmh"] for type_id, raw in unit_types.items() if "speed_kmh" in raw}
    for type_id, speed in speeds.items():
        if isinstance(speed, bool) or not isinstance(speed, (int, float)):
            raise ValueError(f"unit type {type_id!r}: speed_kmh must be a number, got {speed!r}")
    defaults = StraightLineTravel()
    return StraightLineTravel(road_factor=travel.get("road_factor", defaults.road_factor), speeds_kmh=speeds,
                              default_speed_kmh=travel.get("default_speed_kmh", defaults.default_speed_kmh))


@contextmanager
def _about(what: str) -> Iterator[None]:
    """Prefix any ValueError raised inside with what was being read."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _section(doc: Mapping, name: str) -> Mapping[str, Mapping]:
    section = doc.get(name)
    if not isinstance(section, Mapping) or not section:
        raise ValueError(f"there is no [{name}] table")
    for key, value in section.items():
        if not isinstance(value, Mapping):
            raise ValueError(f"{name}.{key} must be a table")
    return section


def _build(doc: Mapping) -> Plans:
    unit_types: dict[str, UnitType] = {}
    incident_types: dict[str, IncidentType] = {}
    for type_id, raw in _section(doc, "unit_types").items():
        with _about(f"unit type {type_id!r}"):
            unit_types[type_id] = _unit_type(type_id, raw)
    for type_id, raw in _section(doc, "incident_types").items():
        with _about(f"incident type {type_id!r}"):
            incident_types[type_id] = _incident_type(type_id, raw, unit_types)
    with _about("travel"):
        travel = _travel(doc, _section(doc, "unit_types"))
    turnout = {}
    for type_id, raw in _section(doc, "unit_types").items():
        seconds = raw.get("turnout_s", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
            raise ValueError(f"unit type {type_id!r}: turnout_s must be seconds from 0 to 3600, got {seconds!r}")
        turnout[type_id] = float(seconds)
    return Plans(MappingProxyType(unit_types), MappingProxyType(incident_types), travel, MappingProxyType(turnout))


def load_plans(path: str | os.PathLike | None = None) -> Plans:
    """Read and check a plans file; ``None`` reads the packaged ``agencies/data/plans.toml``."""
    if path is None:
        source = "agencies/data/plans.toml"
        data = resources.files("agencies").joinpath("data/plans.toml").read_bytes()
    else:
        with open(path, "rb") as f:
            source, data = os.fspath(path), f.read()
    try:
        return _build(tomllib.loads(data.decode("utf-8")))
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError too
        raise ValueError(f"plans file {source}: {exc}") from None
